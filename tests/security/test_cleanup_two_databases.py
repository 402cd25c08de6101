"""The cleanup after a lost worker kills only that worker's processes of that database: two databases
whose workers have the same id, the first worker is killed -9, and the other database's running job
survives and completes."""

from __future__ import annotations

import os
import random
import signal
import textwrap

import psutil
import psycopg

from tests.conftest import Torc, _counter, _with_db, wait_for


def _second_db(admin_url, template_db):
    name = f"torc_t_{os.getpid()}_{next(_counter)}_b"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    return name, _with_db(admin_url, name)


def _job_processes(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_lost_worker_cleanup_spares_the_other_databases_job(admin_url, template_db, db_url, tmp_path):
    # Markers unique to this run: another run of this test on the machine must not find (or kill) ours.
    tag = random.randrange(10**5, 10**6)
    long_job, short_job = f"sleep 300.{tag}1", f"sleep 20.{tag}2"
    name_b, url_b = _second_db(admin_url, template_db)
    try:
        a = Torc(db_url, tmp_path / "a")
        b = Torc(url_b, tmp_path / "b")
        for t, secs in ((a, 300), (b, 20)):
            t.cwd.mkdir()
            t.write("wf.yaml", textwrap.dedent(f"""
                name: sleeper
                jobs:
                  - name: nap
                    command: {long_job if t is a else short_job}
                """))
        # The same worker id in both databases, and one no other test on a shared machine uses (older torc
        # code elsewhere kills by TORC_WORKER_ID alone, which is the very cross-talk tested here).
        shared_id = random.randrange(10**6, 10**9)
        for url in (db_url, url_b):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT setval(pg_get_serial_sequence('workers', 'id'), %s, false)", (shared_id,))
        run_a, run_b = a.popen("run", "wf.yaml"), b.popen("run", "wf.yaml")
        wait_for(lambda: _job_processes(long_job) and _job_processes(short_job), timeout=60,
                 what="both jobs to run")
        for t in (a, b):
            assert t.json("jobs", "list", "1")[0]["worker_id"] == shared_id
        os.kill(run_a.pid, signal.SIGKILL)
        run_a.wait(timeout=30)
        a("workflows", "status", "1")      # reconciles: the worker of database a is lost, its job killed
        wait_for(lambda: not _job_processes(long_job), timeout=30, what="database a's job to be killed")
        assert _job_processes(short_job), "database b's job was killed by database a's cleanup"
        out, err = run_b.communicate(timeout=120)
        assert run_b.returncode == 0, out + err
        assert b.json("jobs", "list", "1")[0]["status"] == "completed"
        job_a = a.json("jobs", "list", "1")[0]
        assert job_a["status"] in ("terminated", "failed") and job_a["return_code"] == 154
    finally:
        for p in _job_processes(long_job) + _job_processes(short_job):
            p.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name_b}" WITH (FORCE)')

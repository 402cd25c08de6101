"""A worker holds one connection for its whole life (claims, completions, heartbeats, idle checks and
notifications share it), opens it with back-off before it registers, and still hears NOTIFY on it
(issue 11 item 1, issue 9 item 12). Real `torc` processes against real PostgreSQL servers."""

import textwrap
import time

import psycopg
import pytest

from tests.conftest import Torc, wait_for
from tests.pgserver import PrivatePostgres, unavailable_reason


def torc_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True, application_name="test-counter") as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name = 'torc'").fetchone()[0]


def statuses(url: str, wf: int) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True, application_name="test-counter") as c:
        return dict(c.execute("SELECT name, status::text FROM jobs WHERE workflow_id = %s", (wf,)).fetchall())


def test_each_worker_holds_one_connection_busy_or_idle(torc):
    torc.write("gate.yaml", textwrap.dedent("""
        name: one_connection
        jobs:
          - {name: gate, command: "while [ ! -e gate ]; do sleep 0.05; done"}
          - {name: "after_{i}", command: "sleep 0.2", depends_on: [gate], parameters: {i: "1:4"}}
        """))
    wf = torc.json("workflows", "create", "gate.yaml")["id"]
    busy = torc.popen("worker", wf, "-j", "4", "--idle-timeout", "30")
    wait_for(lambda: statuses(torc.url, wf)["gate"] == "running", what="the gate running")
    idle = torc.popen("worker", wf, "-j", "4", "--idle-timeout", "30")
    try:
        wait_for(lambda: torc_backends(torc.url) == 2, timeout=30, what="both workers connected")
        time.sleep(2.5)   # the idle worker's checks, the busy one's heartbeat and LISTENs: still one each
        assert torc_backends(torc.url) == 2
        (torc.cwd / "gate").touch()
        busy.communicate(timeout=60)
        idle.communicate(timeout=60)
    finally:
        for p in (busy, idle):
            if p.poll() is None:
                p.kill()
    assert busy.returncode == 0 and idle.returncode == 0
    assert set(statuses(torc.url, wf).values()) == {"completed"}


def test_an_idle_worker_is_woken_by_notify_on_its_one_connection(torc):
    """A job that becomes ready while the worker idles (backed off to its slowest poll) is claimed within
    a fraction of that poll: the NOTIFY arrived on the connection that also claims."""
    from torc_hpc.worker.pump import IDLE_POLL_MAX_S

    torc.write("wf.yaml", textwrap.dedent("""
        name: woken
        jobs:
          - {name: first, command: "true"}
          - {name: second, command: "true", depends_on: [first]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    with psycopg.connect(torc.url, autocommit=True, application_name="test-driver") as c:
        # Somebody else "runs" `first`: the worker finds nothing ready and idles.
        c.execute("UPDATE jobs SET status = 'running', started_at = now() WHERE workflow_id = %s AND name = 'first'", (wf,))
        proc = torc.popen("worker", wf, "--idle-timeout", "60")
        try:
            wait_for(lambda: c.execute("SELECT count(*) FROM workers WHERE workflow_id = %s", (wf,)).fetchone()[0],
                     what="the worker registered")
            time.sleep(4 * IDLE_POLL_MAX_S)   # its poll has backed off to the slowest
            with c.transaction():
                c.execute("UPDATE jobs SET status = 'ready' WHERE workflow_id = %s AND name = 'first'", (wf,))
                c.execute("SELECT pg_notify(notify_channel, '') FROM workflows WHERE id = %s", (wf,))
            t0 = time.monotonic()
            wait_for(lambda: statuses(torc.url, wf)["second"] == "completed", timeout=30, interval=0.01,
                     what="both jobs completed")
            woke = time.monotonic() - t0
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert woke < IDLE_POLL_MAX_S, f"took {woke:.2f}s: the NOTIFY did not wake the worker"


_pg_reason = unavailable_reason()


@pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")
def test_a_worker_refused_at_start_waits_for_a_connection(tmp_path):
    """Issue 9 item 12: `too many connections` when a worker starts. It must wait (back-off) and register
    once a connection is free, not die or be recorded lost; the jobs then run."""
    with PrivatePostgres(settings={"max_connections": "6", "superuser_reserved_connections": "0"}) as pg:
        pg.create_database("torc")
        torc = Torc(pg.url("torc"), tmp_path)
        torc.write("wf.yaml", "name: refused\njobs:\n  - {name: 'j_{i}', command: 'true', parameters: {i: '1:3'}}\n")
        wf = torc.json("workflows", "create", "wf.yaml")["id"]
        holders = []
        try:
            while True:   # take every connection slot
                holders.append(psycopg.connect(pg.url("torc"), autocommit=True))
        except psycopg.OperationalError as e:
            assert "too many clients" in str(e)
        proc = torc.popen("worker", wf, "--idle-timeout", "10")
        try:
            time.sleep(3)
            assert proc.poll() is None, f"the worker gave up: {proc.communicate()[1]}"
            assert holders[0].execute("SELECT count(*) FROM workers").fetchone()[0] == 0
            for h in holders[1:]:
                h.close()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "refused the connection" in err   # it said why it waited
        rows = holders[0].execute("SELECT status::text, count(*) FROM jobs WHERE workflow_id = %s GROUP BY 1",
                                  (wf,)).fetchall()
        assert rows == [("completed", 3)]
        assert holders[0].execute("SELECT count(*), count(*) FILTER (WHERE stop_reason = 'lost') FROM workers"
                                  ).fetchone() == (1, 0)
        holders[0].close()


def test_a_run_reaches_small_jobs_behind_more_unrunnable_ones_than_a_claim_looks_at(torc):
    """Claims look at the first CLAIM_WINDOW ready jobs; a worker for which none of those fits looks deeper
    before it decides it is done: the small jobs behind them run, the big ones are reported."""
    from torc_hpc.worker.pump import CLAIM_WINDOW

    torc.write("wf.yaml", textwrap.dedent(f"""
        name: deep
        jobs:
          - {{name: "big_{{i}}", command: "true", resource_requirements: {{num_cpus: 512}},
              parameters: {{i: "1:{CLAIM_WINDOW + 200}"}}}}
          - {{name: "small_{{i}}", command: "true", priority: -1, parameters: {{i: "1:3"}}}}
        """))
    proc = torc("run", "wf.yaml", "--format", "json", check=False, timeout=180)
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 1
    assert out["counts"] == {"ready": CLAIM_WINDOW + 200, "completed": 3}, out["counts"]
    assert out["unrunnable"] and out["unrunnable"][0].startswith("big_")


class _Sampler:
    """The most torc backends on the test database at once, sampled every 20 ms."""

    def __init__(self, url: str):
        import threading

        self.url, self.most, self._stop = url, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with psycopg.connect(self.url, autocommit=True, application_name="test-counter") as c:
            while not self._stop.wait(0.02):
                n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND application_name = 'torc'").fetchone()[0]
                self.most = max(self.most, n)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_the_cli_and_the_watcher_hold_one_connection_at_a_time(torc):
    torc.env["TORC_NO_SLURM"] = "1"
    torc.write("wf.yaml", "name: one\njobs:\n  - {name: 'j_{i}', command: 'sleep 0.5', parameters: {i: '1:4'}}\n")
    with _Sampler(torc.url) as run:
        torc("run", "wf.yaml", "-j", "4")
    with _Sampler(torc.url) as others:
        torc("watch", "last", "--once")
        torc("workflows", "status", "last")
        torc("jobs", "list", "last")
    assert run.most == 1 and others.most == 1

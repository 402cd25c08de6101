"""Test databases: a real PostgreSQL (the server at 127.0.0.1:5432 when it answers, else the embedded one).

Each test that needs a database gets its own, cloned from a migrated template (fast and isolated).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from torc_hpc.db import migrate as migrations

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _server_admin_url() -> str:
    explicit = os.environ.get("TORC_TEST_ADMIN_URL")
    if explicit:
        return explicit
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        url = "postgresql://postgres@127.0.0.1:5432/postgres"
        psycopg.connect(url, connect_timeout=3).close()
        return url
    except OSError:
        pass
    except psycopg.OperationalError:
        pass
    from torc_hpc.db.connection import embedded_url

    os.environ.setdefault("TORC_DATA_DIR", tempfile.mkdtemp(prefix="torc-test-pg-"))
    return embedded_url()


def _with_db(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _server_admin_url()


@pytest.fixture(scope="session")
def template_db(admin_url):
    name = f"torc_tmpl_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_with_db(admin_url, name), autocommit=True) as conn:
        migrations.migrate(conn)
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(admin_url, template_db):
    name = f"torc_t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_db(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url):
    from torc_hpc.db import Database

    d = Database(db_url)
    yield d
    d.close()


class Torc:
    """Runs the real `torc` CLI in a subprocess, in a temporary working directory."""

    def __init__(self, url: str, cwd: Path):
        self.url = url
        self.cwd = cwd
        self.env = dict(os.environ, TORC_DATABASE_URL=url, COLUMNS="200")

    def __call__(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", *map(str, args)], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode not in (0,):
            raise AssertionError(f"torc {' '.join(map(str, args))} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def popen(self, *args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "torc_hpc.cli.app", *map(str, args)], cwd=self.cwd,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def json(self, *args):
        import json

        return json.loads(self(*args, "--format", "json").stdout)

    def write(self, name: str, text: str, executable: bool = False) -> Path:
        p = self.cwd / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if executable:
            p.chmod(0o755)
        return p


@pytest.fixture
def torc(db_url, tmp_path) -> Torc:
    return Torc(db_url, tmp_path)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

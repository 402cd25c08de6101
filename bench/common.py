"""Shared pieces: a fresh database per benchmark, timing, and the result line."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from torc_hpc.db import migrate as migrations


def admin_url() -> str:
    url = os.environ.get("TORC_BENCH_ADMIN_URL")
    if url:
        return url
    try:
        url = "postgresql://postgres@127.0.0.1:5432/postgres"
        psycopg.connect(url, connect_timeout=3).close()
        return url
    except psycopg.OperationalError:
        from torc_hpc.db.connection import embedded_url

        return embedded_url()


def with_db(url: str, name: str) -> str:
    p = conninfo_to_dict(url)
    p["dbname"] = name
    return make_conninfo(**p)


@contextmanager
def fresh_database(name: str):
    """A new, migrated database for one benchmark; dropped afterwards."""
    admin = admin_url()
    db = f"torc_bench_{name}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    url = with_db(admin, db)
    with psycopg.connect(url, autocommit=True) as c:
        migrations.migrate(c)
    role = os.environ.get("TORC_BENCH_ROLE")
    if role:
        # Run torc as a granted role that does not own the tables, so row-level security is evaluated
        # (the table owner bypasses it). The role must exist on the server (bench/rls.py makes one).
        from torc_hpc.db import grants

        with psycopg.connect(url, autocommit=True) as c:
            grants.grant(c, role)
        url = as_role(url, role)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def as_role(url: str, role: str) -> str:
    p = conninfo_to_dict(url)
    p["user"] = role
    p.pop("password", None)
    return make_conninfo(**p)


def owner_url(url: str) -> str:
    """The same database as the schema owner (VACUUM and ANALYZE need it)."""
    return as_role(url, conninfo_to_dict(admin_url()).get("user", "postgres")) \
        if os.environ.get("TORC_BENCH_ROLE") else url


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def server_version(url: str) -> str:
    with psycopg.connect(url) as c:
        return c.execute("SHOW server_version").fetchone()[0]


def emit(result: dict) -> dict:
    """Print the human lines, then the JSON line (always last)."""
    result.setdefault("machine", machine())
    ok = result.get("meets_target")
    print(f"# {result['name']}: {result['value']:.4g} {result['unit']} vs {result['peer']} "
          f"{result['peer_value']:.4g} → ratio {result['ratio']:.3g} (target {result['target']})"
          + ("" if ok is None else (" ✓" if ok else " ✗")), file=sys.stderr)
    print(json.dumps(result, default=str), flush=True)
    return result


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def pgbench_tps(url: str, clients: int, seconds: int, extra: list[str] | None = None) -> float:
    """Run pgbench -i then pgbench on the same server; return tps (excluding connection time)."""
    p = conninfo_to_dict(url)
    env = dict(os.environ, PGHOST=p.get("host", ""), PGPORT=str(p.get("port", "5432")), PGUSER=p.get("user", ""),
               PGDATABASE=p["dbname"])
    subprocess.run(["pgbench", "-i", "-q", "-s", "10"], env=env, check=True, capture_output=True)
    out = subprocess.run(["pgbench", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)), "-T",
                          str(seconds), *(extra or [])], env=env, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("tps") and ("without initial connection time" in line or "excluding" in line):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(f"cannot read pgbench output:\n{out}")


def create_workflow(url: str, spec_text: str, working_dir: str, name: str = "bench.yaml") -> int:
    """Create a workflow from spec text, its logs under working_dir/out (where run_local will write them)."""
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    s, loc = load_spec_text(spec_text, name)
    with Database(url) as db:
        return db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir=working_dir,
                                  output_dir=os.path.join(working_dir, "out"))

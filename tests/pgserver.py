"""A private PostgreSQL instance for tests that need what the machine's shared server cannot give:
password authentication, roles, restarts and kills, poolers, many connections.

It uses the machine's PostgreSQL binaries (Debian's postgresql-15: initdb, pg_ctl), runs as a non-root
user (the `postgres` system user when the tests run as root), lives in a temporary directory, listens
on a free port on 127.0.0.1 (and its own socket directory), and is stopped by the fixture that made it.
The machine's own server is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def pg_bindir() -> Path | None:
    """Where initdb and pg_ctl live (TORC_TEST_PG_BINDIR, Debian's layout, or PATH)."""
    explicit = os.environ.get("TORC_TEST_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def unavailable_reason() -> str | None:
    """Why a private server cannot be started here (for pytest.skip), or None."""
    if pg_bindir() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed (Debian: postgresql-15)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a private server as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """initdb + pg_ctl in a temporary directory. `auth` is the pg_hba method for TCP and socket
    connections: "trust" or "scram-sha-256" (then the superuser `postgres` gets `superuser_password`)."""

    def __init__(self, *, auth: str = "trust", superuser_password: str = "postgres-secret",
                 settings: dict[str, str] | None = None):
        self.auth = auth
        self.superuser_password = superuser_password
        self.settings = {"max_connections": "200", "shared_buffers": "64MB", "fsync": "off",
                         "synchronous_commit": "off", "full_page_writes": "off", **(settings or {})}
        self.bindir = pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="torc-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    # ---- lifecycle ---------------------------------------------------------------------------

    def _run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if self._as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def init(self) -> "PrivatePostgres":
        self.sockdir.mkdir()
        if self._as_root:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.sockdir, "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(self.superuser_password + "\n")
        if self._as_root:
            shutil.chown(pwfile, "postgres")
        proc = self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                          "--locale=C", f"--auth={self.auth}", f"--pwfile={pwfile}"], timeout=120)
        pwfile.unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stderr or proc.stdout}")
        conf = "\n".join(f"{k} = '{v}'" for k, v in {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": str(self.sockdir), **self.settings}.items())
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n" + conf + "\n")
        return self

    def start(self) -> "PrivatePostgres":
        proc = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                          "-t", "60", "start"], timeout=90)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr or proc.stdout}\n{self.log_text()}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], timeout=90)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); its backends die with it. start() recovers."""
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    # ---- connecting ---------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """A TCP URL; the password is included only when given (tests of pgpass leave it out)."""
        if password is None and user == "postgres" and self.auth != "trust":
            password = self.superuser_password
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str, owner: str = "postgres") -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def __enter__(self) -> "PrivatePostgres":
        return self.init().start()

    def __exit__(self, *exc) -> None:
        self.destroy()

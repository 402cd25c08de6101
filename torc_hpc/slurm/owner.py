"""Acting as a workflow's owner: which Unix user a PostgreSQL role is, and writing and submitting an
allocation's script as that user.

The cluster watcher runs from root's cron with its own database role and submits every workflow's
allocations. It never runs sbatch as root for someone else: for each submission it starts a small child
process that has dropped to the owner's Unix identity (initgroups, setgid, setuid; HOME, USER, LOGNAME
and SHELL of the owner; done by subprocess before exec), and that child reads the template, writes the
script into the owner's output directory and runs sbatch. So the script, its directory and Slurm's job
belong to the owner, Slurm checks the owner's associations, the job inherits the owner's environment (not
root's), and root never opens a path a user chose (a symlink planted in an output directory can only
make the owner write where the owner could anyway). `sbatch --uid` would leave the script root's, the
environment root's, and it exists only for root on some Slurm versions.

A role maps to the Unix user of the same name. A site whose role names differ lists `ROLE USER` pairs, one
a line (`#` comments), in the file named by TORC_USER_MAP (e.g. in the cron line).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from torc_hpc.errors import SlurmError, TorcError

ENV_USER_MAP = "TORC_USER_MAP"
# Variables the owner's child keeps from the watcher's environment (Slurm, locale, where torc is installed);
# everything else (root's PATH extras, credentials, TORC_* settings) stays behind.
_KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "SLURM_CONF", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class Identity:
    role: str
    user: str
    uid: int
    gid: int
    home: str
    shell: str


def user_map(path: str | None = None) -> dict[str, str]:
    path = path or os.environ.get(ENV_USER_MAP)
    if not path:
        return {}
    mapping = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise TorcError(f"cannot read the role → Unix user map {path} ({ENV_USER_MAP}): {e}") from e
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TorcError(f"{path}:{n}: expected 'ROLE UNIX_USER', got {line!r}")
        mapping[parts[0]] = parts[1]
    return mapping


def identity_of(role: str) -> Identity:
    user = user_map().get(role, role)
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise TorcError(f"the workflow's owner is PostgreSQL role {role!r}, and there is no Unix user {user!r} "
                        f"to submit its allocations as; create the user, or map the role in the file "
                        f"named by {ENV_USER_MAP}") from None
    return Identity(role, user, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell or "/bin/sh")


def submitter_for(owner: str, current_role: str) -> Identity | None:
    """Whom to submit as: None = this process as it is (it is the owner, or acts for itself), else the
    owner's identity (this process must be root to become it)."""
    if owner == current_role:
        return None
    ident = identity_of(owner)
    # Before "is it me?": the cluster watcher runs as root, and another role mapped to uid 0 (a role named
    # root, a wrong map line) must not get its jobs run as root by it.
    if ident.uid == 0:
        raise TorcError(f"refusing to submit role {owner!r}'s allocations as root (its Unix user {ident.user!r} "
                        f"has uid 0); map the role to an ordinary user in {ENV_USER_MAP}")
    if ident.uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        raise TorcError(f"workflow owned by {owner!r} must be submitted as Unix user {ident.user!r}, and this "
                        f"process runs as {me!r}: run the cluster watcher as root (it drops to each owner for "
                        f"sbatch), or let {ident.user} run `torc watch` for their own workflows")
    return ident


def owner_env(ident: Identity) -> dict[str, str]:
    sbatch = shutil.which("sbatch")
    path = ["/usr/local/bin", "/usr/bin", "/bin"]
    if sbatch and os.path.dirname(sbatch) not in path:
        path.insert(0, os.path.dirname(sbatch))
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    env.update(HOME=ident.home, USER=ident.user, LOGNAME=ident.user, SHELL=ident.shell, PATH=":".join(path))
    return env


def run_as_kwargs(ident: Identity | None) -> dict:
    """subprocess arguments that run a child as `ident` (nothing for None)."""
    if ident is None:
        return {}
    return {"user": ident.uid, "group": ident.gid, "extra_groups": os.getgrouplist(ident.user, ident.gid),
            "env": owner_env(ident)}


# ---- the work done as the owner -------------------------------------------------------------------------

def write_and_submit(job: dict, client=None) -> dict:
    """Render the template, write the script (a new file, never through a symlink) and sbatch it.
    Returns {"slurm_job_id"} or {"error", "stderr"}; the script is kept either way."""
    from torc_hpc.slurm import script as scripts
    from torc_hpc.slurm.client import CliSlurmClient

    path = Path(job["script_path"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = scripts.render(Path(job["template"]), job["values"])
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o700)
        except FileExistsError:  # a leftover of an earlier database: replace it, never write through it
            path.unlink()
            fd = os.open(path, flags, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except (OSError, TorcError) as e:
        return {"error": f"could not write {path}: {e}", "stderr": ""}
    try:
        return {"slurm_job_id": (client or CliSlurmClient()).submit(path)}
    except SlurmError as e:
        return {"error": str(e), "stderr": e.stderr or ""}


def submit_as(ident: Identity | None, job: dict, client=None, timeout_s: float = 300) -> dict:
    """write_and_submit in this process (ident None) or in a child running as the owner."""
    if ident is None:
        return write_and_submit(job, client)
    proc = subprocess.run(
        [sys.executable, "-m", "torc_hpc.slurm.owner"], input=json.dumps(job), capture_output=True, text=True,
        timeout=timeout_s, cwd=ident.home if os.path.isdir(ident.home) else "/", **run_as_kwargs(ident))
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise TorcError(f"submitting as {ident.user} failed (exit {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-2000:]}\n  hint: {ident.user} must be able to "
                        f"read torc's virtualenv ({sys.prefix}) and its code") from None


def _main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(write_and_submit(job)))


if __name__ == "__main__":
    _main()

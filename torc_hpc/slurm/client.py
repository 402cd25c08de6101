"""The Slurm client interface and its implementation over the CLI tools (the tested path).

Every command goes through `_run`: an argument list (never a shell), a timeout, and retries for
transient controller/database errors. A pyslurm-backed client can implement the same interface where
its version matches the site's Slurm.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Protocol

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from torc_hpc.errors import SlurmError
from torc_hpc.slurm.parse import (SACCT_FIELDS, SQUEUE_FORMAT, AcctRow, QueueRow, parse_sacct,
                                  parse_sbatch_parsable, parse_squeue)

# Messages Slurm prints when the controller or slurmdbd is busy or restarting: retry, never conclude.
TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Connection refused|Zero Bytes were transmitted|"
    r"Resource temporarily unavailable|slurmdbd|Slurm backup controller in standby mode|"
    r"Transport endpoint is not connected|Unable to establish connection|Communication connection failure|"
    r"timed out after", re.IGNORECASE)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, SlurmError) and bool(TRANSIENT.search(exc.stderr or "") or
                                                TRANSIENT.search(str(exc)))


class SlurmClient(Protocol):
    def submit(self, script: Path, extra_args: list[str] | None = None) -> str: ...
    def status(self, job_ids: Iterable[str]) -> dict[str, QueueRow]: ...
    def accounting(self, job_ids: Iterable[str]) -> dict[str, AcctRow]: ...
    def cancel(self, job_ids: Iterable[str]) -> None: ...
    def end_time(self, job_id: str) -> datetime | None: ...


class CliSlurmClient:
    """sbatch / squeue / sacct / scancel as subprocesses."""

    def __init__(self, timeout_s: float = 60, attempts: int = 5, max_wait_s: float = 20):
        self.timeout_s = timeout_s
        self._retrying = retry(retry=retry_if_exception(_is_transient), stop=stop_after_attempt(attempts),
                               wait=wait_exponential(multiplier=0.5, max=max_wait_s), reraise=True)

    @staticmethod
    def available() -> bool:
        return all(shutil.which(t) for t in ("sbatch", "squeue", "sacct", "scancel"))

    def _run(self, argv: list[str], ok_errors: tuple[str, ...] = ()) -> str:
        def once() -> str:
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                raise SlurmError(argv, None, e.stdout or "", f"timed out after {self.timeout_s}s") from None
            except FileNotFoundError:
                raise SlurmError(argv, None, "", f"{argv[0]} not found",
                                 hint="is Slurm installed and on PATH on this host?") from None
            if proc.returncode != 0:
                if any(msg in proc.stderr for msg in ok_errors):
                    return ""
                raise SlurmError(argv, proc.returncode, proc.stdout, proc.stderr)
            return proc.stdout

        return self._retrying(once)()

    def submit(self, script: Path, extra_args: list[str] | None = None) -> str:
        out = self._run(["sbatch", "--parsable", *(extra_args or []), str(script)])
        return parse_sbatch_parsable(out)

    def status(self, job_ids: Iterable[str]) -> dict[str, QueueRow]:
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        # One call for all; squeue errors out only when none of the ids is known any more.
        out = self._run(["squeue", "-h", "-o", SQUEUE_FORMAT, "-j", ",".join(ids)],
                        ok_errors=("Invalid job id specified",))
        return parse_squeue(out)

    def accounting(self, job_ids: Iterable[str]) -> dict[str, AcctRow]:
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        out = self._run(["sacct", "-n", "-P", "-X", "-o", SACCT_FIELDS, "-j", ",".join(ids)])
        return parse_sacct(out)

    def cancel(self, job_ids: Iterable[str]) -> None:
        ids = sorted(set(job_ids))
        if ids:
            self._run(["scancel", *ids])

    def partition_shape(self, partition: str | None) -> PartitionShape:
        """CPUs and memory of the smallest node, the time limit, and the node list (one sinfo call,
        remembered for a minute: node shapes change rarely)."""
        import time

        cache = self.__dict__.setdefault("_shapes", {})
        hit = cache.get(partition)
        if hit and time.monotonic() - hit[0] < 60:
            return hit[1]
        shape = _cli_partition_shape(self, partition)
        cache[partition] = (time.monotonic(), shape)
        return shape

    def cluster_name(self) -> str | None:
        """Slurm's ClusterName (job ids are unique only within a cluster); asked once per client."""
        if "_cluster" not in self.__dict__:
            out = self._run(["scontrol", "show", "config"])
            m = re.search(r"^ClusterName\s*=\s*(\S+)", out, re.MULTILINE)
            self._cluster = m.group(1) if m else None
        return self._cluster

    def end_time(self, job_id: str) -> datetime | None:
        # Slurm 22.05 does not export SLURM_JOB_END_TIME; squeue knows it.
        row = self.status([job_id]).get(job_id)
        return row.end_time if row else None


@dataclass(frozen=True)
class PartitionShape:
    cpus_per_node: int
    mem_mb_per_node: int
    max_walltime_s: int | None
    nodes: str                      # Slurm hostlist, e.g. "node[01-10]"


def _cli_partition_shape(client: "CliSlurmClient", partition: str | None) -> PartitionShape:
    argv = ["sinfo", "-h", "-o", "%c|%m|%l|%N"]
    if partition:
        argv += ["-p", partition]
    rows = [r.split("|") for r in client._run(argv).splitlines() if r.count("|") == 3]
    if not rows:
        raise SlurmError(argv, 0, "", f"no nodes found for partition {partition or '(default)'}",
                         hint="check --partition against `sinfo`")
    cpus = min(int(r[0].rstrip("+")) for r in rows)
    mem = min(int(r[1].rstrip("+")) for r in rows)
    limit = rows[0][2]
    max_wall = None
    if limit not in ("infinite", "UNLIMITED", "n/a"):
        from torc_hpc.core.units import parse_duration

        try:
            max_wall = parse_duration(limit)
        except ValueError:
            max_wall = None
    return PartitionShape(cpus, mem, max_wall, ",".join(r[3] for r in rows))


def default_client() -> CliSlurmClient | None:
    """The CLI client where Slurm's tools are on PATH, else None (local-only machines)."""
    if os.environ.get("TORC_NO_SLURM") == "1":
        return None
    return CliSlurmClient() if CliSlurmClient.available() else None

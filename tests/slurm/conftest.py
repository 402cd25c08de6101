"""The real one-node Slurm cluster (tests/slurm/cluster-up.sh). Tests here skip, saying why, without one."""

import subprocess

import pytest

from torc_hpc.slurm.client import CliSlurmClient

ACCOUNT = "torc_test"


def _cluster_problem() -> str | None:
    if not CliSlurmClient.available():
        return "Slurm's tools are not installed (run tests/slurm/cluster-up.sh as root)"
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scontrol ping failed: {e}"
    if "UP" not in out:
        return "slurmctld does not answer (run tests/slurm/cluster-up.sh as root)"
    assoc = subprocess.run(["sacctmgr", "-n", "show", "assoc", f"account={ACCOUNT}", "format=account"],
                           capture_output=True, text=True, timeout=15).stdout
    if ACCOUNT not in assoc:
        return f"account {ACCOUNT} is missing from Slurm accounting (run tests/slurm/cluster-up.sh)"
    return None


def pytest_collection_modifyitems(config, items):
    problem = None
    checked = False
    for item in items:
        if "tests/slurm/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slurm)
            if not checked:
                problem, checked = _cluster_problem(), True
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"no Slurm cluster: {problem}"))


class SlurmCalls:
    """The real Slurm commands behind wrappers that log their argv (one line per call) and exec the real
    program: tests count calls while the real tools still answer. Put `bin` first on PATH."""

    TOOLS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")

    def __init__(self, root):
        import os
        import shutil

        self.bin = root / "slurm-bin"
        self.bin.mkdir()
        self.log = root / "slurm-calls.log"
        self.log.touch()
        os.chmod(self.log, 0o666)      # allocations submitted as another owner log here too
        for tool in self.TOOLS:
            real = shutil.which(tool)
            w = self.bin / tool
            w.write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> {self.log}\nexec {real} "$@"\n')
            w.chmod(0o755)
        os.chmod(root, 0o755)
        os.chmod(self.bin, 0o755)

    def path(self, base: str) -> str:
        return f"{self.bin}:{base}"

    def calls(self, tool: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line for line in lines if tool is None or line.split(" ", 1)[0] == tool]

    def count(self) -> dict[str, int]:
        from collections import Counter

        return dict(Counter(line.split(" ", 1)[0] for line in self.calls()))

    def reset(self) -> None:
        self.log.write_text("")


@pytest.fixture
def slurm_calls(tmp_path_factory, monkeypatch):
    import os

    calls = SlurmCalls(tmp_path_factory.mktemp("slurmcalls"))
    monkeypatch.setenv("PATH", calls.path(os.environ["PATH"]))
    return calls

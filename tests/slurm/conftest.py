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

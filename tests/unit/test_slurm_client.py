"""The Slurm client's command chokepoint: argv only, timeouts, and retries for transient errors only.
Exercised with real subprocesses that print what slurmctld/slurmdbd print when they are busy."""

import pytest

from torc_hpc.errors import SlurmError
from torc_hpc.slurm.client import CliSlurmClient


def test_transient_errors_are_retried_then_reported(tmp_path):
    count = tmp_path / "count"
    client = CliSlurmClient(attempts=3, max_wait_s=0.01)
    argv = ["bash", "-c", f"echo x >> {count}; echo 'sbatch: error: Socket timed out on send/recv operation' >&2; exit 1"]
    with pytest.raises(SlurmError) as e:
        client._run(argv)
    assert count.read_text().count("x") == 3
    assert "Socket timed out" in e.value.stderr and e.value.argv == argv and e.value.returncode == 1


def test_transient_error_then_success(tmp_path):
    flag = tmp_path / "flag"
    client = CliSlurmClient(attempts=3, max_wait_s=0.01)
    script = f"if [ -e {flag} ]; then echo 42; else touch {flag}; echo 'slurmdbd: Connection refused' >&2; exit 1; fi"
    assert client._run(["bash", "-c", script]).strip() == "42"


def test_permanent_errors_are_not_retried(tmp_path):
    count = tmp_path / "count"
    client = CliSlurmClient(attempts=5, max_wait_s=0.01)
    argv = ["bash", "-c", f"echo x >> {count}; echo 'Invalid account or account/partition combination' >&2; exit 1"]
    with pytest.raises(SlurmError):
        client._run(argv)
    assert count.read_text().count("x") == 1


def test_timeout_and_missing_program():
    client = CliSlurmClient(timeout_s=0.2, attempts=1)
    with pytest.raises(SlurmError, match="timed out"):
        client._run(["sleep", "5"])
    with pytest.raises(SlurmError, match="not found"):
        client._run(["no-such-slurm-tool"])

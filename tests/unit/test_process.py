"""Which commands skip the shell, and log files that must not be truncated on every open."""

import os

import pytest

from torc_hpc.worker.process import command_argv, open_logs


@pytest.mark.parametrize("cmd,direct", [
    ("/bin/true", True),
    ("true", True),
    ("python3 -c pass", True),
    ("echo a b c", True),
    ("echo $HOME", False),          # expansion: bash
    ("exit 4", False),              # a builtin with no program on PATH
    ("a && b", False),
    ("x=1 prog", False),            # assignment prefix
    ("ls *.txt", False),            # glob
    ("echo 'quoted'", False),
    ("cmd > out.txt", False),
    ("no_such_program_xyz arg", False),
])
def test_command_argv(cmd, direct):
    argv = command_argv(cmd)
    assert (argv[:2] != ["bash", "-c"]) is direct
    if not direct:
        assert argv == ["bash", "-c", cmd]


def test_open_logs_truncates_a_leftover(tmp_path):
    out, err = tmp_path / "a.o", tmp_path / "a.e"
    out.write_text("old content")
    fo, fe = open_logs(out, err)
    os.write(fo, b"new")
    os.close(fo)
    os.close(fe)
    assert out.read_text() == "new" and err.read_text() == ""

"""Declared outputs after a job exits 0 (Torc's output_files). Pure: the caller says what exists.

A job that exits 0 without writing a file it declared has not done its work: the attempt fails with
ExitCode.OUTPUT_MISSING (156) and a message naming the missing paths, then goes through the job's failure
handlers like any failure. The worker calls `missing_outputs` with the rows of the named query
`job_output_paths` (name, path) and `os.path.exists`, relative to the workflow's working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from torc_hpc.core.states import ExitCode

OUTPUT_MISSING = ExitCode.OUTPUT_MISSING
MAX_NAMED = 10  # missing files named in one message; the rest are counted


def missing_outputs(outputs: Iterable[tuple[str, str]], working_dir: str,
                    exists: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The (name, path) of every declared output that does not exist. Relative paths are taken from the
    workflow's working directory; `exists` answers for a full path (os.path.exists in the worker)."""
    return [(name, path) for name, path in outputs
            if not exists(path if os.path.isabs(path) else os.path.join(working_dir, path))]


def missing_outputs_message(missing: list[tuple[str, str]]) -> str:
    """What the result and the event say: which declared outputs are missing."""
    shown = ", ".join(f"{name} ({path})" for name, path in missing[:MAX_NAMED])
    more = f" and {len(missing) - MAX_NAMED} more" if len(missing) > MAX_NAMED else ""
    return (f"exited 0 but {len(missing)} declared output file(s) do not exist: {shown}{more} "
            f"(return code {OUTPUT_MISSING}; see output_files in the spec)")

"""Where an attempt's log files are, and a safe bounded tail of one (for summaries, `torc logs`, MCP).

Names: OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e for the job, recovery_… for its recovery script.
Which of a job's files exist follows its stdio mode (jobs.stdio_mode, Torc's execution_config.stdio):
separate (NULL) .o and .e; combined one .log holding both streams; no_stdout only .e; no_stderr only .o; none
no file. With delete_on_success an attempt that exited 0 leaves none either. Recovery scripts always get .o/.e.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from torc_hpc.limits import LOG_TAIL_LINES, LOG_TAIL_MAX_BYTES


def output_dir(workflow: dict) -> Path:
    """The workflow's output directory (absolute when the workflow recorded where it was created)."""
    out = Path(workflow["output_dir"])
    if not out.is_absolute() and workflow.get("working_dir"):
        out = Path(workflow["working_dir"]) / out
    return out


def stdio_dir(workflow: dict) -> Path:
    return output_dir(workflow) / "job_stdio"


def stem(kind: str, workflow_id: int, job_id: int, run_id: int, attempt_id: int) -> str:
    """kind: "job" or "recovery"."""
    return f"{kind}_wf{workflow_id}_j{job_id}_r{run_id}_a{attempt_id}"


STDIO_MODES = ("separate", "combined", "no_stdout", "no_stderr", "none")


def job_log_names(stem_path: str, mode: str | None) -> tuple[str | None, str | None]:
    """(stdout file, stderr file) of a job's attempt in a stdio mode: the same .log for both when combined,
    None for a stream that is not kept. `stem_path` is the directory and stem()."""
    mode = mode or "separate"
    if mode == "combined":
        return f"{stem_path}.log", f"{stem_path}.log"
    return (None if mode in ("no_stdout", "none") else f"{stem_path}.o",
            None if mode in ("no_stderr", "none") else f"{stem_path}.e")


def not_kept(mode: str | None, stream: str, deleted_on_success: bool = False) -> str | None:
    """Why an attempt has no file for `stream` (stdout or stderr), or None when it should have one."""
    mode = mode or "separate"
    if (stream == "stdout" and mode in ("no_stdout", "none")) or (stream == "stderr" and mode in ("no_stderr", "none")):
        return (f"not kept: the job's stdio mode is {mode} (execution_config.stdio or the job's stdio in the spec), "
                f"so its {stream} went to /dev/null")
    if deleted_on_success:
        return ("deleted: the attempt exited 0 and the job's stdio has delete_on_success, so torc removed its log "
                "files")
    return None


@dataclass(frozen=True)
class AttemptLogs:
    stdout: Path | None          # None: not kept (stdio mode); combined: the same .log as stderr
    stderr: Path | None
    recovery_stdout: Path
    recovery_stderr: Path
    mode: str = "separate"
    deleted: bool = False        # delete_on_success removed them after exit 0

    def as_dict(self) -> dict[str, str | None]:
        return {k: (str(getattr(self, k)) if getattr(self, k) is not None else None)
                for k in ("stdout", "stderr", "recovery_stdout", "recovery_stderr")}

    def why_missing(self, stream: str) -> str | None:
        """For stdout/stderr: why the attempt has no such file (not kept, or deleted), else None."""
        return not_kept(self.mode, stream, self.deleted)


def attempt_logs(workflow: dict, job_id: int, run_id: int, attempt_id: int, mode: str | None = None,
                 deleted: bool = False) -> AttemptLogs:
    """An attempt's log files. `mode`: the job's stdio_mode; `deleted`: it completed (exit 0) and the job has
    delete_stdio_on_success."""
    d = stdio_dir(workflow)
    job = stem("job", workflow["id"], job_id, run_id, attempt_id)
    rec = stem("recovery", workflow["id"], job_id, run_id, attempt_id)
    out, err = job_log_names(f"{d}/{job}", mode)
    return AttemptLogs(Path(out) if out else None, Path(err) if err else None, d / f"{rec}.o", d / f"{rec}.e",
                       mode=mode or "separate", deleted=deleted)


def attempt_logs_of(workflow: dict, row: dict, job_id: int, run_id: int, attempt_id: int,
                    result_status: str | None = None) -> AttemptLogs:
    """attempt_logs for a row that carries the job's stdio_mode and delete_stdio_on_success (listings, details)."""
    deleted = bool(row.get("delete_stdio_on_success")) and result_status == "completed"
    return attempt_logs(workflow, job_id, run_id, attempt_id, row.get("stdio_mode"), deleted)


# Control characters other than tab and newline are replaced, and so are the bidirectional overrides and
# isolates (U+202A-U+202E, U+2066-U+2069): a tail goes to terminals and to AI agents, neither of which should
# get raw escapes or text that displays in a different order than it reads ("Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def tail(path: str | os.PathLike | None, *, lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_MAX_BYTES) -> str | None:
    """The last `lines` lines of a file (reading at most `max_bytes` from its end), as printable text.
    None when the file does not exist (or no path: a stream not kept)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    parts = text.splitlines()
    if start > 0 and parts:
        parts = parts[1:]   # the first line was cut by the byte window
    if lines >= 0:
        parts = parts[-lines:] if lines else []
    return "\n".join(_UNSAFE.sub("\ufffd", p.replace("\r", "")) for p in parts)


def ai_agent_log(workflow: dict, run_no: int) -> Path:
    """Output of the `torc watch --ai-recovery` agent's run number `run_no` for this workflow (kept, so a
    person can read what the agent saw and did)."""
    return output_dir(workflow) / "ai_agent" / f"agent_wf{workflow['id']}_run{run_no}.log"

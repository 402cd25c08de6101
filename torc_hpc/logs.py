"""Where an attempt's log files are, and a safe bounded tail of one (for summaries, `torc logs`, MCP).

Names: OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e for the job, recovery_… for its recovery script.
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


@dataclass(frozen=True)
class AttemptLogs:
    stdout: Path
    stderr: Path
    recovery_stdout: Path
    recovery_stderr: Path

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def attempt_logs(workflow: dict, job_id: int, run_id: int, attempt_id: int) -> AttemptLogs:
    d = stdio_dir(workflow)
    job = stem("job", workflow["id"], job_id, run_id, attempt_id)
    rec = stem("recovery", workflow["id"], job_id, run_id, attempt_id)
    return AttemptLogs(d / f"{job}.o", d / f"{job}.e", d / f"{rec}.o", d / f"{rec}.e")


# Control characters other than tab and newline, and lone surrogates from undecodable bytes, are
# replaced: a tail goes to terminals and to AI agents, neither of which should get raw escapes.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def tail(path: str | os.PathLike, *, lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_MAX_BYTES) -> str | None:
    """The last `lines` lines of a file (reading at most `max_bytes` from its end), as printable text.
    None when the file does not exist."""
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

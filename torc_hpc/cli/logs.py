"""`torc logs WF JOB`: print (or follow) the log files of one attempt of a job."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import BinaryIO, Optional

import typer
from rich.markup import escape as escape_markup

from torc_hpc import logs as logfiles
from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import FormatOpt, JobArg, WorkflowArg, open_db
from torc_hpc.cli.output import Format, emit_json, err_console
from torc_hpc.errors import TorcError
from torc_hpc.limits import LOG_TAIL_LINES, LOG_TAIL_MAX_BYTES

FOLLOW_POLL_S = 0.25         # how often --follow looks for new output
FOLLOW_STATE_EVERY_S = 1.0   # how often --follow asks the database whether the attempt still runs


def logs(workflow_id: str = WorkflowArg(), job: str = JobArg(),
         attempt: Optional[int] = typer.Option(None, "--attempt", "-a", min=1, show_default=False,
                                               help="this attempt (default: the latest)"),
         run: Optional[int] = typer.Option(None, "--run", "-r", min=1, show_default=False,
                                           help="this run of the workflow (default: the one with the attempt; "
                                                "runs count up with each reset-status)"),
         stderr: bool = typer.Option(False, "--stderr", "-e", help="only the job's stderr, no header"),
         stdout: bool = typer.Option(False, "--stdout", "-o", help="only the job's stdout, no header"),
         recovery: bool = typer.Option(False, "--recovery",
                                       help="the recovery script's logs for that attempt instead of the job's "
                                            "(default: the latest attempt whose recovery script ran)"),
         tail: Optional[int] = typer.Option(None, "--tail", "-n", min=0, show_default=False,
                                            help="only the last N lines (control characters made safe)"),
         follow: bool = typer.Option(False, "--follow", "-F",
                                     help="keep printing while the attempt runs (waits for it to start)"),
         fmt: Format = FormatOpt):
    """Print an attempt's log files: by default the latest attempt's stderr, then its stdout.

    JOB is the job's id or name. Files live in OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e; the JSON
    format gives their paths and the last lines of each.

    Examples: `torc logs last sim_07` · `torc logs 3 sim_07 --attempt 1 --stdout --tail 20` ·
    `torc logs 3 sim_07 --follow`
    """
    if stderr and stdout:
        raise typer.BadParameter("give --stderr or --stdout, not both (neither prints both)")
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        if follow and attempt is None and run is None:
            target = _wait_for_start(db, wf_id, job)
        else:
            target = ops.log_target(db, wf_id, job, attempt=attempt, run=run, recovery=recovery)
        paths: logfiles.AttemptLogs = target["logs"]
        if recovery:
            chosen = [("recovery stderr", paths.recovery_stderr), ("recovery stdout", paths.recovery_stdout)]
        elif paths.mode == "combined" and not (stderr or stdout):
            chosen = [("stdout and stderr", paths.stdout)]     # one .log holds both streams
        else:
            chosen = [("stderr", paths.stderr), ("stdout", paths.stdout)]
        if stdout and not recovery:
            chosen = chosen[-1:]
        elif stderr and not recovery:
            chosen = chosen[:1]
        elif stdout:
            chosen = chosen[1:]
        elif stderr:
            chosen = chosen[:1]
        # A stream the job's stdio mode does not keep, or files delete_on_success removed: say so, print the rest.
        missing = {} if recovery else {
            label: paths.why_missing("stdout" if label == "stdout and stderr" else label) for label, _ in chosen}
        missing = {label: why for label, why in missing.items() if why}
        kept = [(label, p) for label, p in chosen
                if p is not None and not (label in missing and not p.exists())]
        if fmt is Format.table:
            for label, why in missing.items():
                err_console.print(f"[yellow]{label}: {escape_markup(why)}[/yellow]", highlight=False)
            if not kept:
                return
            chosen = kept
        if fmt is not Format.table:
            n = LOG_TAIL_LINES if tail is None else tail
            out = {**{k: v for k, v in target.items() if k != "logs"}, "stdio_mode": paths.mode,
                   "logs": paths.as_dict(),
                   "tails": {label.replace(" ", "_"): logfiles.tail(p, lines=n) for label, p in chosen}}
            if missing:
                out["not_kept"] = missing
            emit_json(out)
            return
        headers = len(chosen) > 1
        about = f"{target['job_name']} attempt {target['attempt_id']} (run {target['run_id']})"
        if not follow:
            for label, path in chosen:
                _print_file(label, path, about, tail, headers)
            return
        _follow(db, wf_id, target, chosen, tail, separate=headers)


def _wait_for_start(db, wf_id: int, job_ref: str) -> dict:
    """The latest attempt, or (for a job that has not run yet) the one that starts next."""
    announced = False
    while True:
        try:
            return ops.log_target(db, wf_id, job_ref)
        except TorcError as e:
            if "has not run yet" not in str(e):   # waiting makes sense only for a blocked or ready job
                raise
            if not announced:
                err_console.print("[dim]waiting for the job to start… (Ctrl-C to stop)[/dim]")
                announced = True
            time.sleep(FOLLOW_STATE_EVERY_S)


def _print_file(label: str, path: Path, about: str, tail: int | None, header: bool) -> None:
    out = sys.stdout
    if header:
        out.write(f"==> {label} · {about} · {path} <==\n")
        out.flush()
    if not path.exists():
        err_console.print(f"[dim](no file {path}: the attempt wrote nothing there, or the logs were moved)[/dim]")
        return
    if tail is not None:
        text = logfiles.tail(path, lines=tail, max_bytes=max(LOG_TAIL_MAX_BYTES, tail * 1024))
        if text:
            out.write(text + "\n")
    else:
        with open(path, "rb") as f:
            _copy(f, sys.stdout.buffer)
    if header:
        out.write("\n")
    out.flush()


def _copy(src: BinaryIO, dst) -> int:
    n = 0
    while chunk := src.read(1 << 16):
        dst.write(chunk)
        n += len(chunk)
    dst.flush()
    return n


def _follow(db, wf_id: int, target: dict, chosen: list[tuple[str, Path]], tail: int | None, separate: bool) -> None:
    """Like `tail -f` on the attempt's files until the attempt ends: with both files, stderr goes to stderr and
    stdout to stdout, as the job wrote them."""
    sinks = {}
    for label, path in chosen:
        sinks[path] = sys.stderr.buffer if (separate and "stderr" in label) else sys.stdout.buffer
    offsets = {path: 0 for _, path in chosen}
    if tail is not None:   # start near the end
        for _, path in chosen:
            if path.exists():
                text = logfiles.tail(path, lines=tail, max_bytes=max(LOG_TAIL_MAX_BYTES, tail * 1024))
                if text:
                    sinks[path].write((text + "\n").encode())
                    sinks[path].flush()
                offsets[path] = path.stat().st_size
    running = target["running"]
    next_check = time.monotonic() + FOLLOW_STATE_EVERY_S
    while True:
        for _, path in chosen:
            try:
                with open(path, "rb") as f:
                    f.seek(offsets[path])
                    offsets[path] += _copy(f, sinks[path])
            except FileNotFoundError:
                continue
        if not running:
            return
        if time.monotonic() >= next_check:
            running = ops.attempt_running(db, wf_id, target["job_id"], target["run_id"], target["attempt_id"])
            next_check = time.monotonic() + FOLLOW_STATE_EVERY_S
            if not running:
                continue   # one more pass drains what was written at the end
        time.sleep(FOLLOW_POLL_S)


"""`torc run` (this machine) and `torc worker` (inside an allocation): the commands that run jobs."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.live import Live
from rich.text import Text

from torc_hpc import workflows as ops
from torc_hpc.cli.common import FormatOpt, MaxDependenciesOpt, MaxJobsOpt, open_db, state
from torc_hpc.cli.output import Format, console, emit_json
from torc_hpc.db.connection import resolve_url
from torc_hpc.spec import ExpansionLimits


def run(target: str = typer.Argument(..., help="a spec file (YAML/JSON) to create and run, or a workflow id"),
        max_parallel_jobs: Optional[int] = typer.Option(
            None, "--max-parallel-jobs", "-j", min=1,
            help="run at most N jobs at once, ignoring CPU and memory requests"),
        output_dir: str = typer.Option("torc_output", "--output-dir", "-o",
                                       help="where job_stdio logs go (for a new workflow)"),
        max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
        fmt: Format = FormatOpt):
    """Run a workflow on this machine until nothing more can run; exit 0 only if every job completed.

    Jobs run with `bash -c` in the directory the workflow was created from, with TORC_* variables set;
    logs go to OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e. Ctrl-C stops running jobs and
    records them as terminated.
    """
    with open_db() as db:
        if target.isdigit():
            wf_id = int(target)
            ops.touch(db, wf_id)
        else:
            wf_id = ops.create_from_file(db, target, output_dir=output_dir,
                                         limits=ExpansionLimits(max_jobs, max_dependencies))
            if fmt is Format.table:
                console.print(f"created workflow [bold]{wf_id}[/bold] from {target}")
        url = db.url
    from torc_hpc.worker.local import run_local

    live = _progress(url, wf_id) if fmt is Format.table and console.is_terminal else None
    try:
        if live:
            with live.live:
                summary = run_local(url, wf_id, max_parallel_jobs=max_parallel_jobs, on_tick=live.tick)
        else:
            summary = run_local(url, wf_id, max_parallel_jobs=max_parallel_jobs)
    except KeyboardInterrupt:
        summary = None
    with open_db() as db:
        s = ops.summary(db, wf_id)
    if summary is not None:
        s["stop_reason"] = summary.stop_reason
        s["unrunnable"] = [r["name"] for r in summary.unrunnable]
    if fmt is Format.json:
        emit_json(s)
    else:
        _print_summary(s)
    raise typer.Exit(0 if s["all_completed"] else 1)


class _progress:
    """A live line of counts by status, refreshed from the database twice a second."""

    def __init__(self, url: str, wf_id: int):
        self.wf_id = wf_id
        self.start = time.monotonic()
        self.live = Live(Text("starting…"), console=console, refresh_per_second=4, transient=True)

    def tick(self, worker) -> None:
        counts = worker.db.status_counts(self.wf_id)
        total = sum(counts.values()) or 1
        done = sum(counts[k] for k in ("completed", "failed", "terminated", "canceled", "disabled"))
        parts = [f"{k} {v}" for k, v in counts.items() if v]
        self.live.update(Text(f"workflow {self.wf_id}: {done}/{total} finished "
                              f"({100 * done / total:.0f}%) · {' · '.join(parts)} · "
                              f"{time.monotonic() - self.start:.0f}s"))


def _print_summary(s: dict) -> None:
    ok = s["all_completed"]
    style = "green" if ok else "yellow"
    counts = ", ".join(f"{k}: {v}" for k, v in s["counts"].items())
    console.print(f"[{style}]workflow {s['workflow_id']} ({s['name']}), run {s['run_id']}: {counts}[/{style}]")
    console.print(f"retries: {s['retries']} · logs: {s['logs']}")
    if s.get("unrunnable"):
        console.print(f"[red]ready jobs too large for this machine:[/red] {', '.join(s['unrunnable'])}")
    if s.get("stop_reason") == "interrupted":
        console.print("[yellow]interrupted: running jobs were stopped and recorded as terminated[/yellow]")
    for tip in ops.next_steps(s):
        console.print(f"next: {tip}")



def worker(workflow_id: int,
           slurm: bool = typer.Option(False, "--slurm", help="inside an sbatch allocation: read its resources "
                                      "and end time from Slurm"),
           idle_timeout: int = typer.Option(60, "--idle-timeout", help="leave after this many idle seconds"),
           walltime_buffer: int = typer.Option(60, "--walltime-buffer",
                                               help="stop jobs this many seconds before the allocation ends"),
           scheduler: Optional[str] = typer.Option(None, "--scheduler", help="only jobs of this scheduler "
                                                   "(and jobs with none)"),
           max_parallel_jobs: Optional[int] = typer.Option(None, "--max-parallel-jobs", "-j", min=1),
           allocation_id: Optional[int] = typer.Option(None, "--allocation-id", help="torc's allocation row "
                                                       "(set by the sbatch script)")):
    """Claim and run jobs of a workflow until nothing this worker can run is left (what sbatch scripts run)."""
    from torc_hpc.worker.slurm_worker import run_worker

    url = resolve_url(state.url)
    summary = run_worker(url, workflow_id, slurm=slurm, idle_timeout_s=idle_timeout,
                         walltime_buffer_s=walltime_buffer, scheduler=scheduler, max_parallel_jobs=max_parallel_jobs,
                         allocation_id=allocation_id)
    print(f"torc worker: stopped ({summary.stop_reason}); attempts {summary.attempts}; {summary.finished}")
    if summary.unrunnable:
        names = ", ".join(r["name"] for r in summary.unrunnable)
        print(f"torc worker: ready jobs too large for this worker (CPUs, memory, GPUs or remaining time): {names}")


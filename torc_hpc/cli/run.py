"""`torc run` (this machine) and `torc worker` (inside an allocation): the commands that run jobs."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import (FormatOpt, MaxDependenciesOpt, MaxJobsOpt, expansion_limits,
                                 open_db, script_setting, state)
from torc_hpc.cli.output import Format, console, emit_json, fit, human_duration, terminal_width
from torc_hpc.db.connection import resolve_url
from torc_hpc.errors import UnfinishedWorkflow
from torc_hpc.worker.pump import MAX_SERVED

_FINAL = ("completed", "failed", "terminated", "canceled", "disabled")

LabelOpt = typer.Option(None, "--label", show_default=False,
                        help="run only jobs with this label (Torc's `label`); without it, only unlabeled jobs")
GpusOpt = typer.Option(None, "--gpus", min=0, show_default=False,
                       help="GPUs to hand out (devices 0..N-1) when no CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS "
                            "lists them")


def _is_workflow_ref(target: str) -> bool:
    return target.isdigit() or target.strip().lower() == "last"


def run(target: str = typer.Argument(..., metavar="SPEC|WF", show_default=False,
                                     help="a spec file (YAML/JSON) to create and run, or a workflow id (or `last`) "
                                          "to carry on"),
        max_parallel_jobs: Optional[int] = typer.Option(
            None, "--max-parallel-jobs", "-j", min=1, show_default=False,
            help="run at most N jobs at once, ignoring CPU and memory requests"),
        output_dir: Optional[str] = typer.Option(
            None, "--output-dir", "-o", show_default=False,
            help="where job logs go (new workflows); default: output_dir in the config file, else torc_output"),
        new: bool = typer.Option(False, "--new", help="create a new workflow even when an unfinished one was "
                                 "made from this same file (same path and content)"),
        dry_run: bool = typer.Option(False, "--dry-run", help="validate and show the plan (stages, "
                                     "CPU-hours, largest job, handlers); create and run nothing"),
        max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
        label: Optional[str] = LabelOpt, gpus: Optional[int] = GpusOpt,
        fmt: Format = FormatOpt):
    """Run a workflow on this machine until nothing more can run; exit 0 only if every job completed.

    Jobs run with `bash -c` in the directory the workflow was created from, with TORC_* variables set;
    logs go to OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e (`torc logs WF JOB` prints them).
    Running a spec file again while the workflow it made is unfinished names that workflow instead of
    making a duplicate. Ctrl-C stops running jobs and records their attempts (143); they are not
    failures: `torc run WF` runs them again, and the retries their failure handler allows stay intact.

    Jobs with a `label` run only in a run (or worker) given the same --label; without --label only
    unlabeled jobs run. A job asking for N GPUs gets N devices of its own in CUDA_VISIBLE_DEVICES.

    Examples: `torc run sweep.yaml` · `torc run sweep.yaml --dry-run` · `torc run last` ·
    `torc run last --label gpu --gpus 4`
    """
    if dry_run:
        if _is_workflow_ref(target):
            raise typer.BadParameter("--dry-run plans a spec file; for an existing workflow use "
                                     "`torc workflows status WF`")
        from torc_hpc.cli.plan import show_plan

        show_plan(target, fmt, limits=expansion_limits(max_jobs, max_dependencies))
        return
    with open_db() as db:
        if _is_workflow_ref(target):
            wf_id = common.workflow_id(db, target)
            ops.touch(db, wf_id)
        else:
            if not new:
                _refuse_duplicate(db, target)
            out = script_setting("output_dir", output_dir, "--output-dir")
            ops.check_output_dir(out)
            wf_id = ops.create_from_file(db, target, output_dir=out,
                                         limits=expansion_limits(max_jobs, max_dependencies))
            if fmt is Format.table:
                console.print(f"created workflow [bold]{wf_id}[/bold] from {escape(target)}")
        url = db.url
    from torc_hpc.worker.local import run_local

    live = _Progress(url, wf_id) if fmt is Format.table and console.is_terminal else None
    try:
        if live:
            with live.live:
                summary = run_local(url, wf_id, max_parallel_jobs=max_parallel_jobs, on_tick=live.tick,
                                    label=label, gpus=gpus)
            live.close()
        else:
            summary = run_local(url, wf_id, max_parallel_jobs=max_parallel_jobs, label=label, gpus=gpus)
    except KeyboardInterrupt:
        summary = None
    with open_db() as db:
        s = ops.summary(db, wf_id)
    if summary is not None:
        s["stop_reason"] = summary.stop_reason
        s["unrunnable"] = [r["name"] for r in summary.unrunnable]
        if summary.unrunnable:
            s["unrunnable_jobs"] = [{"name": r["name"], "num_cpus": r["num_cpus"], "num_gpus": r["num_gpus"],
                                     "memory_bytes": r["memory_bytes"], "runtime_s": r["runtime_s"]}
                                    for r in summary.unrunnable]
            s["capacity"] = summary.capacity
        if summary.other_labels:
            s["ready_for_other_labels"] = summary.other_labels
    s["next_steps"] = ops.next_steps(s)
    if fmt is not Format.table:
        emit_json(s)
    else:
        print_summary(s)
    raise typer.Exit(0 if s["all_completed"] else 1)


def _workflow_list(text: str | None) -> tuple[int, ...]:
    """--workflows 3,7,9 → (3, 7, 9): integers, no repeats."""
    if text is None:
        return ()
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise typer.BadParameter(f"--workflows takes workflow ids separated by commas (like 3,7,9), not {text!r}")
        if int(part) not in ids:
            ids.append(int(part))
    if not ids:
        raise typer.BadParameter("--workflows needs at least one workflow id")
    return tuple(ids)


def _refuse_duplicate(db, target: str) -> None:
    found = ops.unfinished_from_spec(db, target)
    if not found:
        return
    w = found[0]
    counts = db.status_counts(w["id"])
    left = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k not in ("completed", "disabled"))
    carry = (f"`torc run {w['id']}`" if not any(counts[k] for k in ("failed", "terminated", "canceled"))
             else f"`torc workflows reset-status {w['id']} --failed-only && torc run {w['id']}`")
    others = f" (also unfinished: {', '.join(str(x['id']) for x in found[1:])})" if len(found) > 1 else ""
    raise UnfinishedWorkflow(
        f"workflow {w['id']} ({w['name']}) was created from {target} with the same content and is not finished "
        f"({left}){others}. Carry on with {carry}, or add --new to create another workflow.", w["id"])


class _Progress:
    """A live line of counts by status, refreshed twice a second; every failure the worker records is
    printed as one line above it (read from the events after the last one seen)."""

    def __init__(self, url: str, wf_id: int):
        self.url = url
        self.wf_id = wf_id
        self.start = time.monotonic()
        self.live = Live(Text("starting…"), console=console, refresh_per_second=4, transient=True)
        self._db = None
        with open_db() as db:
            self.last_event = db.one("last_event_id", workflow_id=wf_id)["id"]

    def _conn(self, worker):
        db = getattr(worker, "db", None)
        if db is None:   # a worker without its own handle: keep one for the whole run
            if self._db is None:
                from torc_hpc.db import Database

                self._db = Database(self.url)
            db = self._db
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def tick(self, worker) -> None:
        db = self._conn(worker)
        for e in db.all("failure_events_after", workflow_id=self.wf_id, after_id=self.last_event, limit=50):
            self.last_event = e["id"]
            self.live.console.print(failure_line(e), highlight=False, soft_wrap=False, overflow="ellipsis",
                                    no_wrap=True)
        held = getattr(worker, "held_not_started", None)
        counts = shown_counts(db.status_counts(self.wf_id), held() if held else 0)
        self.live.update(Text.from_markup(progress_line(self.wf_id, counts, time.monotonic() - self.start,
                                                        terminal_width())))


def failure_line(e: dict) -> str:
    """One line for a failure event: which job and attempt, its exit code, what the handler decided."""
    attempt = e["attempt_id"] - 1 if e["kind"] == "retry" and e["attempt_id"] else e["attempt_id"]
    rc = (e["detail"] or {}).get("return_code")
    style = "yellow" if e["kind"] == "retry" else ("magenta" if e["kind"] == "pending_failed" else "red")
    what = ops.describe_decision(e["kind"], e["detail"])
    return (f"[{style}]✗[/{style}] {escape(e['job_name'] or str(e['job_id']))} attempt {attempt}"
            + (f" exit {rc}" if rc is not None else "") + f" → {escape(what)}")


def progress_line(wf_id: int, counts: dict, elapsed_s: float | None, width: int, label: str | None = None) -> str:
    """`workflow 3 ▕████▌    ▏ 5/12 · running 3 · ready 2 · failed 1 · 12s`, never wider than `width`."""
    total = sum(counts.values()) or 1
    done = sum(counts.get(k, 0) for k in _FINAL)
    bar_w = 20
    filled = done * bar_w / total
    bar = "█" * int(filled) + ("▌" if filled - int(filled) >= 0.5 else "")
    bar = bar.ljust(bar_w)
    parts = [f"{k} {v}" for k, v in counts.items() if v and k != "completed"]
    text = f"{label or f'workflow {wf_id}'} ▕{bar}▏ {done}/{total}" + "".join(f" · {p}" for p in parts)
    if elapsed_s is not None:
        text += f" · {human_duration(elapsed_s)}"
    return escape(fit(text, max(20, width - 1)))


def capacity_text(c: dict) -> str:
    from torc_hpc.core.units import format_memory

    text = f"{c['cpus']} CPUs, {c['gpus']} GPUs, {format_memory(c['memory_bytes'])} memory"
    return text + (f", {human_duration(c['time_left_s'])} left" if c.get("time_left_s") is not None else "")


def needs_text(job: dict, c: dict) -> str:
    """What a job asks for, the parts that do not fit first."""
    from torc_hpc.core.units import format_memory

    parts = [(job["num_cpus"] > c["cpus"], f"{job['num_cpus']} CPUs"),
             (job["num_gpus"] > c["gpus"], f"{job['num_gpus']} GPUs"),
             (job["memory_bytes"] > c["memory_bytes"], f"{format_memory(job['memory_bytes'])} memory"),
             (c.get("time_left_s") is not None and job["runtime_s"] > c["time_left_s"],
              f"{human_duration(job['runtime_s'])} runtime")]
    return ", ".join([p for big, p in parts if big] + [p + " (fits)" for big, p in parts[:3] if not big])


def shown_counts(counts: dict, held: int) -> dict:
    """Counts for the progress line: jobs this worker claimed ahead of its slots (prefetch) are `running`
    in the database but have not started; show them as ready."""
    held = min(held, counts.get("running", 0))
    if not held:
        return counts
    shown = dict(counts)
    shown["running"] -= held
    shown["ready"] = shown.get("ready", 0) + held
    return shown


def print_summary(s: dict) -> None:
    """The end-of-run summary: counts, the failed jobs with their stderr, and the commands to carry on."""
    ok = s["all_completed"]
    style = "green" if ok else "yellow"
    counts = " · ".join(f"{v} {k}" for k, v in s["counts"].items())
    console.print(f"[{style}]workflow {s['workflow_id']} ({escape(s['name'])}), run {s['run_id']}: "
                  f"{counts or 'no jobs'}[/{style}]", highlight=False)
    console.print(f"retries: {s['retries']} · logs: {escape(s['logs'])}", highlight=False)
    if s.get("unrunnable_jobs"):
        console.print(f"[red]{len(s['unrunnable_jobs'])} ready job(s) cannot run on this machine[/red] "
                      f"(it has {escape(capacity_text(s['capacity']))}):", highlight=False)
        for r in s["unrunnable_jobs"]:
            console.print(f"  {escape(r['name'])} needs {escape(needs_text(r, s['capacity']))}", highlight=False)
    elif s.get("unrunnable"):
        console.print(f"[red]ready jobs too large for this machine:[/red] {escape(', '.join(s['unrunnable']))}")
    if s.get("ready_for_other_labels"):
        labels = ", ".join(f"--label {ops.shell_word(x)}" if x else "no --label" for x in s["ready_for_other_labels"])
        console.print(f"[yellow]ready jobs are left for workers with other labels:[/yellow] run them with "
                      f"`torc run {s['workflow_id']}` and {escape(labels)}", highlight=False)
    if s.get("stop_reason") == "interrupted":
        console.print(f"[yellow]interrupted: running jobs were stopped; their attempts are recorded (143) and "
                      f"`torc run {s['workflow_id']}` runs them again[/yellow]", highlight=False)
    failures = s.get("failures") or {}
    width = terminal_width()
    if failures.get("total"):
        console.print(f"\n[bold]{failures['total']} job(s) failed, terminated or await a decision:[/bold]")
        for j in failures["jobs"]:
            color = "magenta" if j["status"] == "pending_failed" else "red"
            head = (f"{j['name']} (id {j['id']}) {j['status']} · exit {j['return_code']} · "
                    f"attempt {j['attempt_id']}" + (f" of run {j['run_id']}" if j["run_id"] != 1 else ""))
            console.print(f"  [{color}]✗[/{color}] {escape(fit(head, width - 5))}", highlight=False)
            if j["decision"]:
                console.print(f"      [dim]→[/dim] {escape(fit(j['decision'], width - 9))}", highlight=False)
            tail = j.get("stderr_tail")
            if tail:
                for line in tail.splitlines():
                    console.print(f"      [dim]│[/dim] {escape(fit(line, width - 9))}", highlight=False)
            elif tail is None:
                why = j.get("stderr_not_kept") or f"no stderr file: {j['logs']['stderr']}"
                console.print(f"      [dim]│ ({escape(why)})[/dim]", highlight=False)
        more = failures["total"] - len(failures["jobs"])
        if more > 0:
            console.print(f"  … and {more} more: torc jobs list {s['workflow_id']} --status failed "
                          f"(or terminated, pending_failed)", highlight=False)
    steps = s.get("next_steps") if "next_steps" in s else ops.next_steps(s)
    if steps:
        console.print("\n[bold]next:[/bold]")
        pad = max(len(x["command"]) for x in steps)
        side_by_side = pad + max(len(x["why"]) for x in steps) + 6 <= width
        for x in steps:
            if side_by_side:
                console.print(f"  {escape(x['command'].ljust(pad))}  [dim]# {escape(x['why'])}[/dim]",
                              highlight=False)
            else:
                console.print(f"  [dim]# {escape(x['why'])}[/dim]\n  {escape(x['command'])}", highlight=False)


def worker(workflow_id: Optional[str] = typer.Argument(None, metavar="WF", show_default=False,
                                                     help="the workflow id or `last` (or give --workflows / "
                                                          "--all-mine)"),
           workflows: Optional[str] = typer.Option(
               None, "--workflows", show_default=False, metavar="3,7,9",
               help="serve several workflows of yours at once (comma-separated ids): claims take turns between "
                    "them, each job runs in its own workflow's directory and logs to its own output directory"),
           all_mine: bool = typer.Option(False, "--all-mine", help="serve every workflow of yours that has ready "
                                         f"jobs (up to {MAX_SERVED} at once; more are picked up as they appear)"),
           slurm: bool = typer.Option(False, "--slurm", help="inside an sbatch allocation: read its resources "
                                      "and end time from Slurm"),
           idle_timeout: int = typer.Option(60, "--idle-timeout", help="leave after this many idle seconds"),
           walltime_buffer: int = typer.Option(60, "--walltime-buffer",
                                               help="stop jobs this many seconds before the allocation ends"),
           scheduler: Optional[str] = typer.Option(None, "--scheduler", help="only jobs of this scheduler "
                                                   "(and jobs with none)"),
           max_parallel_jobs: Optional[int] = typer.Option(None, "--max-parallel-jobs", "-j", min=1,
                                                           help="run at most N jobs at once"),
           allocation_id: Optional[int] = typer.Option(None, "--allocation-id", help="torc's allocation row "
                                                       "(set by the sbatch script)"),
           label: Optional[str] = LabelOpt, gpus: Optional[int] = GpusOpt):
    """Claim and run jobs of a workflow (or of several of yours) until nothing this worker can run is left
    (what sbatch scripts run). The worker holds one database connection for its whole life.

    Examples: `torc worker 3 --slurm --idle-timeout 120` · `torc worker --workflows 3,7,9 --slurm` ·
    `torc worker --all-mine -j 8` · `torc worker 3 --label gpu`
    """
    from torc_hpc.worker.slurm_worker import run_worker

    ids = _workflow_list(workflows)
    if (workflow_id is not None) + (workflows is not None) + all_mine != 1:
        raise typer.BadParameter("give one of: a workflow id, --workflows 3,7,9, or --all-mine")
    wf_id = workflow_id
    if workflow_id is not None:
        if workflow_id.strip().isdigit():   # what sbatch scripts pass: no lookup, no extra connection
            wf_id = int(workflow_id)
        else:
            with open_db() as db:           # `last`
                wf_id = common.workflow_id(db, workflow_id)
    url = resolve_url(state.url)
    summary = run_worker(url, wf_id, slurm=slurm, idle_timeout_s=idle_timeout,
                         walltime_buffer_s=walltime_buffer, scheduler=scheduler, max_parallel_jobs=max_parallel_jobs,
                         allocation_id=allocation_id, workflow_ids=ids, all_mine=all_mine, label=label, gpus=gpus)
    print(f"torc worker: stopped ({summary.stop_reason}); attempts {summary.attempts}; {summary.finished}")
    if summary.unrunnable:
        print(f"torc worker: ready jobs too large for this worker (it has {capacity_text(summary.capacity)}):")
        for r in summary.unrunnable:
            print(f"  {r['name']} needs {needs_text(r, summary.capacity)}")
    if summary.other_labels:
        labels = ", ".join(repr(x) if x else "(unlabeled)" for x in summary.other_labels)
        print(f"torc worker: ready jobs are left for workers with other labels: {labels}")


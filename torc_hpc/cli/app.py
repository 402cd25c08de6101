"""torc: create, run, inspect and repair workflows. Every listing takes --format json for scripts."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from torc_hpc import workflows as ops
from torc_hpc.cli.output import Format, console, emit_json, emit_rows, err_console
from torc_hpc.core.states import JobStatus
from torc_hpc.db import Database
from torc_hpc.db import migrate as migrations
from torc_hpc.db.connection import redact, resolve_url
from torc_hpc.errors import SpecError, TorcError
from torc_hpc.slurm import ops as slurm_ops
from torc_hpc.slurm.client import default_client

app = typer.Typer(
    help="torc-hpc: run workflows of shell jobs with dependencies and failure handlers, locally or on Slurm.\n\n"
         "Quick start:  torc run examples/yaml/diamond.yaml\n\n"
         "The database is TORC_DATABASE_URL (or --database-url); without one, torc starts an embedded "
         "PostgreSQL in your data directory and keeps it for the next command.",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)
workflows_app = typer.Typer(help="Create, list, cancel, delete and reset workflows.", no_args_is_help=True)
jobs_app = typer.Typer(help="List jobs; decide on pending_failed jobs.", no_args_is_help=True)
results_app = typer.Typer(help="One row per attempt (return code, times, peak memory).", no_args_is_help=True)
events_app = typer.Typer(help="The audit log: every transition, with who and why.", no_args_is_help=True)
db_app = typer.Typer(help="Database: apply migrations, print the schema, show the URL in use.", no_args_is_help=True)
slurm_app = typer.Typer(help="Slurm allocations of a workflow: list, cancel (submit more: torc submit-slurm WF).",
                        no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")
app.add_typer(jobs_app, name="jobs")
app.add_typer(results_app, name="results")
app.add_typer(events_app, name="events")
app.add_typer(db_app, name="db")
app.add_typer(slurm_app, name="slurm")

FormatOpt = typer.Option(Format.table, "--format", "-f", help="table for people, json for scripts")


class _State:
    url: str | None = None


state = _State()


@app.callback()
def _root(database_url: Optional[str] = typer.Option(
        None, "--database-url", envvar="TORC_DATABASE_URL",
        help="PostgreSQL URL; default: the embedded server in your data directory"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="log what the worker does")):
    state.url = database_url
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.INFO if verbose else logging.ERROR)  # torc says it better


def _db() -> Database:
    return Database(state.url)


# ---- run -------------------------------------------------------------------------------------


@app.command()
def run(target: str = typer.Argument(..., help="a spec file (YAML/JSON) to create and run, or a workflow id"),
        max_parallel_jobs: Optional[int] = typer.Option(
            None, "--max-parallel-jobs", "-j", min=1,
            help="run at most N jobs at once, ignoring CPU and memory requests"),
        output_dir: str = typer.Option("torc_output", "--output-dir", "-o",
                                       help="where job_stdio logs go (for a new workflow)"),
        fmt: Format = FormatOpt):
    """Run a workflow on this machine until nothing more can run; exit 0 only if every job completed.

    Jobs run with `bash -c` in the directory the workflow was created from, with TORC_* variables set;
    logs go to OUTPUT_DIR/job_stdio/job_wf{W}_j{J}_r{R}_a{A}.o/.e. Ctrl-C stops running jobs and
    records them as terminated.
    """
    with _db() as db:
        if target.isdigit():
            wf_id = int(target)
            ops.touch(db, wf_id)
        else:
            wf_id = ops.create_from_file(db, target, output_dir=output_dir)
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
    with _db() as db:
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


# ---- workflows ------------------------------------------------------------------------------


@workflows_app.command("create")
def workflows_create(spec: Path = typer.Argument(..., help="workflow spec, YAML or JSON"),
                     output_dir: str = typer.Option("torc_output", "--output-dir", "-o"),
                     fmt: Format = FormatOpt):
    """Validate a spec and store the workflow (nothing is written if the spec has any error)."""
    with _db() as db:
        wf_id = ops.create_from_file(db, spec, output_dir=output_dir)
        n = sum(db.status_counts(wf_id).values())
    if fmt is Format.json:
        emit_json({"id": wf_id})
    else:
        console.print(f"created workflow [bold]{wf_id}[/bold] with {n} jobs · run it: torc run {wf_id}")


@workflows_app.command("list")
def workflows_list(fmt: Format = FormatOpt):
    """All workflows with job counts by status."""
    with _db() as db:
        rows = db.all("list_workflows")
    emit_rows(rows, ["id", "name", "run_id", "total", "completed", "running", "ready", "blocked", "failed",
                     "terminated", "canceled_jobs", "pending_failed", "canceled", "created_at"], fmt,
              empty="no workflows yet: torc workflows create SPEC")


@workflows_app.command("status")
def workflows_status(workflow_id: int, fmt: Format = FormatOpt):
    """Counts by status, retries and where the logs are."""
    with _db() as db:
        ops.touch(db, workflow_id)
        s = ops.summary(db, workflow_id)
    if fmt is Format.json:
        emit_json(s)
    else:
        _print_summary(s)


@workflows_app.command("cancel")
def workflows_cancel(workflow_id: int, fmt: Format = FormatOpt):
    """Cancel every job that has not started; workers stop running ones (recorded as terminated, 143)."""
    with _db() as db:
        n = db.cancel_workflow(workflow_id)
        scanceled = slurm_ops.cancel_allocations(db, workflow_id, default_client())
    if fmt is Format.json:
        emit_json({"id": workflow_id, "canceled_jobs": n, "scanceled_allocations": scanceled})
    else:
        console.print(f"workflow {workflow_id} canceled: {n} job(s) canceled; running jobs are being stopped"
                      + (f"; scancel sent to {len(scanceled)} allocation(s)" if scanceled else ""))


@workflows_app.command("delete")
def workflows_delete(workflow_id: int, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")):
    """Delete a workflow with its jobs, results and events (log files stay on disk)."""
    if not yes and not typer.confirm(f"delete workflow {workflow_id} and all its records?"):
        raise typer.Exit(1)
    with _db() as db:
        db.delete_workflow(workflow_id)
    console.print(f"workflow {workflow_id} deleted")


@workflows_app.command("reset-status")
def workflows_reset_status(workflow_id: int,
                           failed_only: bool = typer.Option(
                               False, "--failed-only",
                               help="reset only failed, canceled, terminated and pending_failed jobs"),
                           fmt: Format = FormatOpt):
    """Start a new run: reset jobs (all, or only the failed ones) so `torc run WF` carries on.

    The run id increments and attempt ids start again at 1; completed jobs keep their results.
    """
    with _db() as db:
        ops.touch(db, workflow_id)
        row = db.reset_status(workflow_id, failed_only=failed_only)
    if fmt is Format.json:
        emit_json({"id": workflow_id, "run_id": row["run_id"], "reset": row["reset"]})
    else:
        console.print(f"workflow {workflow_id}: {row['reset']} job(s) reset, now run {row['run_id']} · "
                      f"continue with: torc run {workflow_id}")


# ---- jobs, results, events ------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(workflow_id: int,
              status: Optional[JobStatus] = typer.Option(None, "--status", "-s", help="only jobs in this state"),
              fmt: Format = FormatOpt):
    """Jobs with status, attempt and last return code."""
    with _db() as db:
        ops.touch(db, workflow_id)
        rows = db.all("list_jobs", workflow_id=workflow_id, status=status.value if status else None)
    emit_rows(rows, ["id", "name", "status", "attempt_id", "return_code", "num_cpus", "memory_bytes",
                     "runtime_s", "worker_id"], fmt)


@jobs_app.command("retry")
def jobs_retry(workflow_id: int, job_id: int):
    """Classify a pending_failed job as transient: it becomes ready with attempt + 1."""
    with _db() as db:
        ops.decide_pending(db, workflow_id, job_id, retry=True)
    console.print(f"job {job_id} is ready again · run it: torc run {workflow_id}")


@jobs_app.command("fail")
def jobs_fail(workflow_id: int, job_id: int):
    """Classify a pending_failed job as permanent: it fails and its dependents are canceled."""
    with _db() as db:
        ops.decide_pending(db, workflow_id, job_id, retry=False)
    console.print(f"job {job_id} failed; its dependents were canceled")


@results_app.command("list")
def results_list(workflow_id: int, fmt: Format = FormatOpt):
    """Every attempt: run, attempt, status, return code, duration, peak memory, CPU time."""
    with _db() as db:
        ops.touch(db, workflow_id)
        rows = db.all("list_results", workflow_id=workflow_id)
    emit_rows(rows, ["id", "job_id", "job_name", "run_id", "attempt_id", "status", "return_code",
                     "exec_time_s", "peak_memory_bytes", "cpu_time_s", "completed_at"], fmt)


@events_app.command("list")
def events_list(workflow_id: int, after: int = typer.Option(0, help="only events with a larger id"),
                limit: int = typer.Option(1000, help="at most this many"), fmt: Format = FormatOpt):
    """The audit log, oldest first."""
    with _db() as db:
        db.workflow(workflow_id)
        rows = db.all("list_events", workflow_id=workflow_id, after_id=after, limit=limit)
    emit_rows(rows, ["id", "ts", "job_id", "job_name", "kind", "from_status", "to_status", "attempt_id",
                     "run_id", "worker_id", "detail"], fmt)


# ---- slurm ------------------------------------------------------------------------------------

_SUBMIT_HELP = {
    "account": "sbatch --account (required by most sites)",
    "partition": "sbatch --partition",
    "walltime": "allocation time limit, HH:MM:SS or PT1H; default: the longest job's runtime plus the buffer",
    "nodes": "nodes per allocation (one worker per node)",
    "mem": "memory per node, e.g. 16g; default: sized from the jobs",
}


def _submit_options(account, partition, walltime, nodes, mem, qos, gres, extra, template, idle_timeout,
                    walltime_buffer, max_parallel_jobs):
    from torc_hpc.slurm.allocations import SubmitOptions

    return SubmitOptions(account=account, partition=partition, walltime=walltime, nodes=nodes, mem=mem, qos=qos,
                         gres=gres, extra=extra, template=template, idle_timeout_s=idle_timeout,
                         walltime_buffer_s=walltime_buffer, max_parallel_jobs=max_parallel_jobs)


@app.command("submit-slurm")
def submit_slurm(
        target: str = typer.Argument(..., help="a spec file to create, or an existing workflow id"),
        account: Optional[str] = typer.Option(None, "--account", "-A", help=_SUBMIT_HELP["account"]),
        partition: Optional[str] = typer.Option(None, "--partition", "-p", help=_SUBMIT_HELP["partition"]),
        walltime: Optional[str] = typer.Option(None, "--walltime", "-t", help=_SUBMIT_HELP["walltime"]),
        nodes: Optional[int] = typer.Option(None, "--nodes", "-N", min=1, help=_SUBMIT_HELP["nodes"]),
        mem: Optional[str] = typer.Option(None, "--mem", help=_SUBMIT_HELP["mem"]),
        qos: Optional[str] = typer.Option(None, "--qos"),
        gres: Optional[str] = typer.Option(None, "--gres", help="e.g. gpu:2"),
        extra: Optional[str] = typer.Option(None, "--sbatch-args", help="extra sbatch arguments, verbatim"),
        num_allocations: int = typer.Option(1, "--num-allocations", "-n", min=1,
                                            help="allocations per scheduler with waiting jobs"),
        template: Optional[Path] = typer.Option(None, "--template", help="your own sbatch template "
                                                "(start from sbatch_templates/torc_worker.sh)"),
        idle_timeout: int = typer.Option(60, "--idle-timeout", help="a worker leaves after this many idle seconds"),
        walltime_buffer: int = typer.Option(60, "--walltime-buffer",
                                            help="stop jobs this many seconds before the allocation ends (code 152)"),
        max_parallel_jobs: Optional[int] = typer.Option(None, "--max-parallel-jobs", "-j", min=1),
        output_dir: str = typer.Option("torc_output", "--output-dir", "-o"),
        fmt: Format = FormatOpt):
    """Create a workflow (or take an existing one) and submit Slurm allocations whose workers run its jobs.

    Each allocation runs `torc worker WF --slurm`, which claims jobs that fit the allocation's CPUs,
    memory and remaining time. Scripts and Slurm's own logs go to OUTPUT_DIR/slurm/.
    """
    opts = _submit_options(account, partition, walltime, nodes, mem, qos, gres, extra, template, idle_timeout,
                           walltime_buffer, max_parallel_jobs)
    client = slurm_ops.require_client()
    with _db() as db:
        if target.isdigit():
            wf_id = int(target)
            ops.touch(db, wf_id, client)
        else:
            wf_id = ops.create_from_file(db, target, output_dir=output_dir)
        result = slurm_ops.submit_for_workflow(db, wf_id, client, opts, num_allocations, submitted_by="submit-slurm")
    if fmt is Format.json:
        emit_json({"workflow_id": wf_id, **result})
        return
    for w in result["warnings"]:
        err_console.print(f"[yellow]warning:[/yellow] {w}")
    for a in result["allocations"]:
        console.print(f"submitted allocation {a['id']} as Slurm job {a['slurm_job_id']} "
                      f"({' '.join(x for x in a['sbatch_args'] if not x.startswith(('--output', '--error')))})")
    console.print(f"workflow {wf_id} · follow it: torc workflows status {wf_id} · torc slurm list {wf_id}")


@app.command()
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


@slurm_app.command("list")
def slurm_list(workflow_id: int, fmt: Format = FormatOpt):
    """Allocations with their Slurm state (refreshed with one squeue and one sacct call)."""
    with _db() as db:
        ops.touch(db, workflow_id, default_client())
        rows = db.all("list_allocations", workflow_id=workflow_id)
    emit_rows(rows, ["id", "slurm_job_id", "scheduler", "state", "sacct_state", "exit_code", "nodes",
                     "cpus_per_node", "mem", "walltime_s", "submitted_by", "submitted_at", "started_at",
                     "ended_at", "error"], fmt, empty="no allocations: torc submit-slurm --account A WF")


@slurm_app.command("cancel")
def slurm_cancel(workflow_id: int, fmt: Format = FormatOpt):
    """scancel every active allocation of the workflow (its jobs come back as terminated, code 143)."""
    with _db() as db:
        db.workflow(workflow_id)
        ids = slurm_ops.cancel_allocations(db, workflow_id, slurm_ops.require_client())
    if fmt is Format.json:
        emit_json({"id": workflow_id, "scanceled_allocations": ids})
    else:
        console.print(f"scancel sent to {len(ids)} allocation(s): {' '.join(ids) or '-'}")


# ---- watch ------------------------------------------------------------------------------------


@app.command()
def watch(
        workflow_id: Optional[int] = typer.Argument(None, help="the workflow to watch (or --all)"),
        all_workflows: bool = typer.Option(False, "--all", help="every workflow that has work (cron mode)"),
        once: bool = typer.Option(False, "--once", help="one cycle, then exit (cron mode)"),
        poll_interval: float = typer.Option(60, "--poll-interval", help="seconds between cycles"),
        auto_schedule: bool = typer.Option(False, "--auto-schedule",
                                           help="submit allocations when ready jobs have none, or retries pile up"),
        threshold: int = typer.Option(5, "--auto-schedule-threshold",
                                      help="ready retry jobs that justify more allocations while some are active"),
        cooldown: int = typer.Option(1800, "--auto-schedule-cooldown", help="seconds between auto-schedules"),
        stranded_timeout: int = typer.Option(7200, "--auto-schedule-stranded-timeout",
                                             help="seconds before retries below the threshold get allocations anyway"),
        max_pending: int = typer.Option(2, "--max-pending-allocations", help="never queue more than this many"),
        backoff: str = typer.Option("60,300,900,1800", "--auto-schedule-backoff",
                                    help="seconds to wait after the 1st, 2nd, ... failed allocation in a row"),
        max_failures: int = typer.Option(5, "--auto-schedule-max-failures",
                                         help="pause auto-schedule after this many failed allocations in a row"),
        resume: bool = typer.Option(False, "--resume", help="clear a paused auto-schedule, then watch"),
        recover: bool = typer.Option(False, "--recover", help="when nothing can run: give out-of-memory jobs more "
                                     "memory and timed-out jobs more time, reset and resubmit them"),
        memory_multiplier: float = typer.Option(1.5, "--memory-multiplier"),
        runtime_multiplier: float = typer.Option(1.5, "--runtime-multiplier"),
        max_recovery_rounds: int = typer.Option(3, "--max-recovery-rounds"),
        account: Optional[str] = typer.Option(None, "--account", "-A",
                                              help="sbatch --account (default: what submit-slurm used)"),
        partition: Optional[str] = typer.Option(None, "--partition", "-p"),
        walltime: Optional[str] = typer.Option(None, "--walltime", "-t"),
        fmt: Format = FormatOpt):
    """Watch a workflow: reconcile allocations, auto-schedule allocations for stranded work, recover
    out-of-memory and timed-out jobs.

    Cron mode, one cycle for every workflow with work, quiet unless a person is needed:

        */10 * * * *  torc watch --all --once --auto-schedule --recover
    """
    from torc_hpc.core.autoschedule import Policy
    from torc_hpc.watch import cycle

    if workflow_id is None and not all_workflows:
        raise typer.BadParameter("give a workflow id, or --all")
    try:
        steps = tuple(int(x) for x in backoff.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter("--auto-schedule-backoff takes seconds separated by commas, e.g. 60,300,900")
    from torc_hpc.slurm.allocations import SubmitOptions

    cfg = cycle.WatchConfig(
        auto_schedule=auto_schedule, recover=recover, memory_multiplier=memory_multiplier,
        runtime_multiplier=runtime_multiplier, max_recovery_rounds=max_recovery_rounds,
        policy=Policy(threshold=threshold, cooldown_s=cooldown, stranded_timeout_s=stranded_timeout,
                      max_pending=max_pending, backoff_s=steps, max_failures=max_failures),
        submit=SubmitOptions(account=account, partition=partition, walltime=walltime))
    client = default_client()
    if (auto_schedule or recover) and client is None:
        err_console.print("[yellow]warning:[/yellow] Slurm's tools are not on PATH: nothing will be submitted")
    with _db() as db:
        if all_workflows:
            reports = cycle.cron_once(db, client, cfg) if once else None
            if reports is None:
                raise typer.BadParameter("--all runs one cycle per workflow: add --once (and run it from cron)")
            needs_person = [r for r in reports if r.attention]
            for r in reports:
                if fmt is Format.json:
                    emit_json(r.as_dict())
                elif r.attention:
                    print(f"workflow {r.workflow_id}: " + "; ".join(r.attention))
            raise typer.Exit(1 if needs_person else 0)
        db.workflow(workflow_id)
        if resume:
            cycle.resume(db, workflow_id)
        if once:
            r = cycle.run_locked(db, workflow_id, client, cfg)
            _print_cycle(r, fmt)
            raise typer.Exit(1 if r.attention else 0)
        live = None
        if fmt is Format.table and console.is_terminal:
            live = Live(Text("first cycle…"), console=console, refresh_per_second=2)
            live.start()
        try:
            final = cycle.loop(db, workflow_id, client, cfg, poll_interval,
                               on_cycle=lambda r: live.update(_cycle_view(r)) if live else _print_cycle(r, fmt))
        except KeyboardInterrupt:
            raise typer.Exit(130)
        finally:
            if live:
                live.stop()
        if live:
            console.print(_cycle_view(final))
        s = ops.summary(db, workflow_id)
        raise typer.Exit(0 if s["all_completed"] else 1)


def _cycle_view(r) -> Table:
    t = Table(title=f"workflow {r.workflow_id} · {time.strftime('%H:%M:%S')}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("")
    t.add_row("jobs", ", ".join(f"{k} {v}" for k, v in r.counts.items()) or "-")
    t.add_row("allocations active", str(r.allocations_active))
    if r.decision:
        t.add_row("auto-schedule", f"{'SUBMIT' if r.decision['submit'] else 'wait'}: {r.decision['reason']}")
    for a in r.submitted:
        t.add_row("submitted", f"allocation {a['id']} (Slurm {a['slurm_job_id']})")
    for a in r.recovered:
        t.add_row("recovered", f"{a['name']}: {a['cause']}")
    for msg in r.attention:
        t.add_row("[red]needs you[/red]", msg)
    if r.skipped:
        t.add_row("skipped", r.skipped)
    return t


def _print_cycle(r, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(r.as_dict())
    else:
        console.print(_cycle_view(r))


# ---- db ---------------------------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate():
    """Apply pending schema migrations (torc also does this on first use)."""
    with Database(state.url, migrate=False) as db:
        applied = migrations.migrate(db.conn)
        version = migrations.current_version(db.conn)
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    console.print(f"schema version {version}")


@db_app.command("schema")
def db_schema():
    """Print the schema SQL (every migration, in order) without connecting: for admins who install it
    themselves, e.g. `torc db schema | psql -d torc`."""
    for version, name, path in migrations.migrations():
        print(f"-- {version:04d}_{name}")
        print(path.read_text())
    print("CREATE TABLE IF NOT EXISTS torc_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now());")
    values = ", ".join(f"({v}, '{n}')" for v, n, _ in migrations.migrations())
    print(f"INSERT INTO torc_schema_migrations (version, name) VALUES {values};")


@db_app.command("url")
def db_url():
    """Print the database URL in use (password removed); starts the embedded server if needed."""
    print(redact(resolve_url(state.url)))


def main() -> None:
    try:
        app()
    except SpecError as e:
        err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        sys.exit(e.exit_code)
    except TorcError as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()

"""`torc watch`: reconcile, auto-schedule and recover, interactively or from cron."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import FormatOpt, open_db
from torc_hpc.cli.output import Format, console, emit_json, err_console, human_duration, human_time
from torc_hpc.cli.run import progress_line
from torc_hpc.limits import AI_AGENT_TIMEOUT_S
from torc_hpc.slurm.client import default_client

DEFAULT_POLL_S = 5.0     # a 20-second workflow is seen running and finishing
MIN_REFRESH_S = 1.0      # NOTIFY wakes the view at most this often


def watch(
        workflow_id: Optional[str] = typer.Argument(None, metavar="[WF]", show_default=False,
                                                    help="the workflow to watch: its id or `last` (or --all)"),
        all_workflows: bool = typer.Option(False, "--all", help="every workflow that has work (cron mode)"),
        once: bool = typer.Option(False, "--once", help="one cycle, then exit (cron mode)"),
        poll_interval: float = typer.Option(DEFAULT_POLL_S, "--poll-interval", min=0.5,
                                            help="seconds between cycles; a new ready job (NOTIFY) refreshes "
                                                 "sooner"),
        auto_schedule: bool = typer.Option(False, "--auto-schedule",
                                           help="submit allocations when ready jobs have none, or retries pile up"),
        threshold: int = typer.Option(5, "--auto-schedule-threshold",
                                      help="ready retry jobs that justify more allocations while some are active"),
        cooldown: int = typer.Option(1800, "--auto-schedule-cooldown", help="seconds between auto-schedules"),
        stranded_timeout: int = typer.Option(7200, "--auto-schedule-stranded-timeout",
                                             help="seconds before retries below the threshold get allocations anyway"),
        max_pending: int = typer.Option(2, "--max-pending-allocations",
                                        help="never queue more than this many for one workflow"),
        max_pending_per_owner: int = typer.Option(10, "--max-pending-per-owner", min=0,
                                                  envvar="TORC_WATCH_MAX_PENDING_PER_OWNER",
                                                  help="never queue more allocations than this for one owner, "
                                                       "all workflows together"),
        max_pending_total: int = typer.Option(100, "--max-pending-total", min=0,
                                              envvar="TORC_WATCH_MAX_PENDING_TOTAL",
                                              help="never queue more allocations than this in all"),
        pack_workflows: int = typer.Option(50, "--max-workflows-per-allocation", min=1,
                                           envvar="TORC_WATCH_PACK_WORKFLOWS",
                                           help="--all: small workflows of one owner share an allocation, at "
                                                "most this many in one (1: never share)"),
        pack_walltime: str = typer.Option("01:00:00", "--pack-walltime", envvar="TORC_WATCH_PACK_WALLTIME",
                                          help="--all: a shared allocation may run this long to hold more "
                                               "small workflows (HH:MM:SS or PT1H)"),
        backoff: str = typer.Option("60,300,900,1800", "--auto-schedule-backoff",
                                    help="seconds to wait after the 1st, 2nd, ... failed allocation in a row"),
        max_failures: int = typer.Option(5, "--auto-schedule-max-failures",
                                         help="pause auto-schedule after this many failed allocations in a row"),
        resume: bool = typer.Option(False, "--resume", help="clear a paused auto-schedule, then watch"),
        recover: bool = typer.Option(False, "--recover", help="when nothing can run: give out-of-memory jobs more "
                                     "memory and timed-out jobs more time, reset and resubmit them"),
        memory_multiplier: float = typer.Option(1.5, "--memory-multiplier",
                                                help="--recover: new memory = old × this"),
        runtime_multiplier: float = typer.Option(1.5, "--runtime-multiplier",
                                                 help="--recover: new runtime = old × this"),
        max_recovery_rounds: int = typer.Option(3, "--max-recovery-rounds",
                                                help="--recover gives up after this many rounds"),
        account: Optional[str] = typer.Option(None, "--account", "-A",
                                              help="sbatch --account (default: what submit-slurm used)"),
        partition: Optional[str] = typer.Option(None, "--partition", "-p",
                                                help="sbatch --partition (default: what submit-slurm used)"),
        walltime: Optional[str] = typer.Option(None, "--walltime", "-t",
                                               help="allocation time limit (default: sized from the jobs)"),
        ai_recovery: bool = typer.Option(False, "--ai-recovery", help="when jobs turn pending_failed, run an AI "
                                         "agent that reads their stderr and retries or fails them through "
                                         "`torc mcp` (one run per workflow at a time)"),
        ai_agent: Optional[str] = typer.Option(None, "--ai-agent", help="the agent command; torc appends "
                                               "`-p PROMPT --mcp-config FILE` (default: claude, the Claude Code "
                                               "CLI, allowed to use torc's tools)"),
        ai_timeout: int = typer.Option(AI_AGENT_TIMEOUT_S, "--ai-timeout", min=1,
                                       help="seconds an agent run may take before it is stopped"),
        fmt: Format = FormatOpt):
    """Watch a workflow: reconcile allocations, auto-schedule allocations for stranded work, recover
    out-of-memory and timed-out jobs.

    On a terminal it shows a live view (counts, running jobs, recent failures, allocations with their Slurm
    states, the next decision with its countdown), refreshed every few seconds and at once when jobs become
    ready. Example: `torc watch last --auto-schedule --recover`

    Cron mode, one pass over the cluster (one squeue, at most one sacct), quiet unless a person is needed;
    small workflows of one owner share allocations, and pending allocations are capped per owner and in all:

        */10 * * * *  torc watch --all --once --auto-schedule --recover

    With --ai-recovery, jobs that failed without a matching failure-handler rule (pending_failed) are
    triaged by an AI agent through `torc mcp`; a missing or failing agent is one line, and the jobs wait.
    """
    from torc_hpc.core.autoschedule import Policy
    from torc_hpc.core.packing import Caps
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
        submit=SubmitOptions(account=account, partition=partition, walltime=walltime),
        ai_recovery=_ai_options(ai_recovery, ai_agent, ai_timeout),
        caps=Caps(per_owner=max_pending_per_owner, total=max_pending_total, workflows_per_allocation=pack_workflows,
                  pack_walltime_s=_seconds("--pack-walltime", pack_walltime)))
    client = default_client()
    if (auto_schedule or recover) and client is None:
        err_console.print("[yellow]warning:[/yellow] Slurm's tools are not on PATH: nothing will be submitted")
    with open_db() as db:
        if all_workflows:
            reports = cycle.cron_once(db, client, cfg) if once else None
            if reports is None:
                raise typer.BadParameter("--all runs one cycle per workflow: add --once (and run it from cron)")
            needs_person = [r for r in reports if r.attention]
            for r in reports:
                if fmt is not Format.table:
                    emit_json(r.as_dict())
                elif r.attention:
                    print(("torc watch" if r.workflow_id is None else f"workflow {r.workflow_id}") + ": "
                          + "; ".join(r.attention))
            raise typer.Exit(1 if needs_person else 0)
        workflow_id = common.workflow_id(db, workflow_id)
        wf = db.workflow(workflow_id)
        if resume:
            cycle.resume(db, workflow_id)
        if once:
            r = cycle.run_locked(db, workflow_id, client, cfg)
            _print_cycle(r, fmt)
            raise typer.Exit(1 if r.attention else 0)
        view = None
        if fmt is Format.table and console.is_terminal:
            view = WatchView(wf, poll_interval, auto_schedule)
            view.live.start()

        def on_cycle(r):
            if view:
                view.update(r, ops.watch_details(db, workflow_id))
            else:
                _print_cycle(r, fmt)

        try:
            cycle.loop(db, workflow_id, client, cfg, poll_interval, on_cycle=on_cycle,
                       sleep=notify_sleep(db, workflow_id, view))
        except KeyboardInterrupt:
            raise typer.Exit(130)
        finally:
            if view:
                view.next_cycle_at = None   # the last frame stays on screen, without a countdown
                view.live.stop()
        s = ops.summary(db, workflow_id, failures=False)
        raise typer.Exit(0 if s["all_completed"] else 1)


def _seconds(option: str, text: str) -> int:
    from torc_hpc.core.units import parse_duration

    try:
        return int(parse_duration(text))
    except ValueError:
        raise typer.BadParameter(f"{option} takes a duration like 01:00:00 or PT1H, not {text!r}") from None


def notify_sleep(db, workflow_id: int, view=None):
    """A sleep for the watch loop that ends early when the workflow's ready-jobs NOTIFY arrives (at most one
    cycle per MIN_REFRESH_S, so a busy workflow does not turn the watcher into a busy loop).

    Behind a transaction pooler a LISTEN would stay on a pooled server connection (session state) and hear
    nothing: the watcher then listens on TORC_NOTIFY_URL (PostgreSQL itself) when it is set, else it just
    sleeps the poll interval."""
    from torc_hpc.db.connection import connect, notify_url, pooler_mode

    listener = db.conn
    if pooler_mode() == "transaction":
        listener = connect(notify_url(), pooler="none") if notify_url() else None
    if listener is not None:
        db.listen_ready(workflow_id, listener)

    def sleep(seconds: float) -> None:
        start = time.monotonic()
        if view:
            view.next_cycle_at = start + seconds
        if listener is None:
            time.sleep(seconds)
        for _ in (listener.notifies(timeout=seconds, stop_after=1) if listener is not None else ()):
            break
        rest = MIN_REFRESH_S - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
    return sleep


class WatchView:
    """The live view. Data changes once per cycle; the countdowns are computed whenever rich redraws."""

    def __init__(self, wf: dict, poll_interval: float, auto_schedule: bool):
        self.wf = wf
        self.poll_interval = poll_interval
        self.auto_schedule = auto_schedule
        self.report = None
        self.details: dict = {}
        self.cycle_at = None
        self.next_cycle_at = None
        self.live = Live(self, console=console, refresh_per_second=2, transient=False)

    def update(self, report, details: dict) -> None:
        self.report, self.details = report, details
        self.cycle_at = time.monotonic()
        self.next_cycle_at = None
        self.live.refresh()

    def __rich__(self):
        return self.render()

    def render(self):
        return render_watch(self.wf, self.report, self.details, auto_schedule=self.auto_schedule,
                            now=datetime.now(timezone.utc),
                            next_cycle_in=(None if self.next_cycle_at is None
                                           else max(0.0, self.next_cycle_at - time.monotonic())),
                            width=console.width)


def render_watch(wf: dict, r, details: dict, *, auto_schedule: bool, now: datetime,
                 next_cycle_in: float | None, width: int) -> Group:
    """The watch view as rich renderables (a function of its inputs, so tests can render it)."""
    lines = []
    head = f"[bold]workflow {wf['id']}[/bold] ({escape(wf['name'])}) · {now.astimezone():%H:%M:%S}"
    if next_cycle_in is not None:
        head += f" · refresh in {next_cycle_in:.0f}s"
    lines.append(Text.from_markup(head))
    if r is None:
        lines.append(Text("first cycle…"))
        return Group(*lines)
    lines.append(Text.from_markup(progress_line(wf["id"], r.counts, None, width, label="jobs")))
    if r.skipped:
        lines.append(Text(f"skipped: {r.skipped}", style="yellow"))
    # the next decision and its countdown
    if r.decision:
        d = r.decision
        when = ""
        if d.get("wait_until"):
            left = (d["wait_until"] - now).total_seconds()
            when = f" (in {human_duration(max(0, left))})" if left > 0 else " (due now)"
        verb = "SUBMIT" if d["submit"] else "wait"
        lines.append(Text.from_markup(f"next decision: [bold]{verb}[/bold]{when} — {escape(d['reason'])}"))
    elif not auto_schedule:
        lines.append(Text("next decision: none (auto-schedule is off; --auto-schedule submits allocations)",
                          style="dim"))
    for a in r.submitted:
        lines.append(Text(f"submitted allocation {a['id']} (Slurm {a['slurm_job_id']}): {a.get('reason', '')}",
                          style="green"))
    for a in r.recovered:
        lines.append(Text(f"recovered {a['name']}: {a['cause']}", style="green"))
    if getattr(r, "ai_agent", None):
        lines.append(Text(f"AI agent: {r.ai_agent.get('message') or r.ai_agent['reason']}", style="magenta"))
    for msg in r.attention:
        lines.append(Text.from_markup(f"[red]needs you:[/red] {escape(msg)}"))
    allocs = details.get("allocations") or []
    if allocs:
        lines.append(Text(f"allocations ({r.allocations_active} active of {allocs[0]['total']})", style="bold"))
        t = Table(box=None, pad_edge=False, header_style="dim")
        for c, w in (("id", 3), ("slurm", 8), ("state", 7), ("sacct", 9), ("shape", None), ("walltime", 7),
                     ("submitted", 8)):
            t.add_column(c, no_wrap=True, overflow="ellipsis", min_width=w)
        for a in allocs:
            t.add_row(str(a["id"]), a["slurm_job_id"] or "-", a["state"], a["sacct_state"] or "",
                      f"{a['nodes']}×{a['cpus_per_node'] or '?'} CPUs {a['mem'] or ''}".strip(),
                      human_duration(a["walltime_s"]), human_time(a["submitted_at"], now))
        lines.append(t)
    running = details.get("running") or []
    n_running = r.counts.get("running", 0)
    if running:
        lines.append(Text(f"running ({len(running)} of {n_running}, longest first)", style="bold"))
        t = Table(box=None, pad_edge=False, header_style="dim")
        job_w = min(24, max(len(j["name"]) for j in running))
        for c, w in (("job", job_w), ("att", 3), ("for", 6), ("where", None)):
            t.add_column(c, no_wrap=True, overflow="ellipsis", min_width=w)
        for j in running:
            since = human_duration((now - j["started_at"]).total_seconds()) if j["started_at"] else ""
            where = j["hostname"] or ""
            if j["slurm_job_id"]:
                where += f" (Slurm {j['slurm_job_id']})"
            t.add_row(j["name"], str(j["attempt_id"]), since, where)
        lines.append(t)
    failures = details.get("failures") or []
    if failures:
        lines.append(Text("recent failures", style="bold"))
        t = Table(box=None, pad_edge=False, header_style="dim")
        job_w = min(24, max(len(e["job_name"] or "") for e in failures))
        for c, w in (("when", 8), ("job", job_w), ("att", 3), ("rc", 3), ("decision", None)):
            t.add_column(c, no_wrap=True, overflow="ellipsis", min_width=w)
        for e in failures:
            t.add_row(human_time(e["ts"], now), e["job_name"] or str(e["job_id"]), str(e["failed_attempt"]),
                      str((e["detail"] or {}).get("return_code", "")), e["decision"])
        lines.append(t)
    if r.done:
        lines.append(Text("done: nothing left to run and no allocation alive", style="green"))
    return Group(*lines)


def _ai_options(enabled: bool, agent: Optional[str], timeout_s: int):
    from torc_hpc.watch.ai_recovery import AiRecovery

    if not enabled:
        if agent is not None:
            raise typer.BadParameter("--ai-agent chooses the agent of --ai-recovery: add --ai-recovery")
        return None
    if agent is not None and not agent.strip():
        raise typer.BadParameter("--ai-agent is empty: give a command, e.g. --ai-agent 'claude --model sonnet'")
    return AiRecovery(agent=agent, timeout_s=timeout_s)


def _cycle_view(r) -> Table:
    t = Table(title=f"workflow {r.workflow_id} · {time.strftime('%H:%M:%S')}", show_header=False)
    t.add_column("what", style="bold", no_wrap=True)
    t.add_column("", overflow="ellipsis")
    t.add_row("jobs", ", ".join(f"{k} {v}" for k, v in r.counts.items()) or "-")
    t.add_row("allocations active", str(r.allocations_active))
    if r.decision:
        t.add_row("auto-schedule", f"{'SUBMIT' if r.decision['submit'] else 'wait'}: {r.decision['reason']}")
    for a in r.submitted:
        t.add_row("submitted", f"allocation {a['id']} (Slurm {a['slurm_job_id']})")
    for a in r.recovered:
        t.add_row("recovered", f"{a['name']}: {a['cause']}")
    if r.ai_agent:
        t.add_row("AI agent", r.ai_agent.get("message") or r.ai_agent["reason"])
    for msg in r.attention:
        t.add_row("[red]needs you[/red]", msg)
    if r.skipped:
        t.add_row("skipped", r.skipped)
    return t


def _print_cycle(r, fmt: Format) -> None:
    if fmt is not Format.table:
        emit_json(r.as_dict())
    else:
        console.print(_cycle_view(r))

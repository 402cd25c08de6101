"""`torc watch`: reconcile, auto-schedule and recover, interactively or from cron."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from torc_hpc import workflows as ops
from torc_hpc.cli.common import FormatOpt, open_db
from torc_hpc.cli.output import Format, console, emit_json, err_console
from torc_hpc.limits import AI_AGENT_TIMEOUT_S
from torc_hpc.slurm.client import default_client


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

    Cron mode, one cycle for every workflow with work, quiet unless a person is needed:

        */10 * * * *  torc watch --all --once --auto-schedule --recover

    With --ai-recovery, jobs that failed without a matching failure-handler rule (pending_failed) are
    triaged by an AI agent through `torc mcp`; a missing or failing agent is one line, and the jobs wait.
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
        submit=SubmitOptions(account=account, partition=partition, walltime=walltime),
        ai_recovery=_ai_options(ai_recovery, ai_agent, ai_timeout))
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
    if r.ai_agent:
        t.add_row("AI agent", r.ai_agent.get("message") or r.ai_agent["reason"])
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


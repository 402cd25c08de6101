"""`torc submit-slurm` and `torc slurm …`: allocations on a Slurm cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import (FormatOpt, MaxDependenciesOpt, MaxJobsOpt, WideOpt, WorkflowArg,
                                 expansion_limits, open_db, script_setting)
from torc_hpc.cli.output import Format, console, emit_json, emit_rows, err_console
from torc_hpc.slurm import ops as slurm_ops
from torc_hpc.slurm.client import default_client

app = typer.Typer(help="Slurm allocations of a workflow: list, cancel (submit more: torc submit-slurm WF).",
                  no_args_is_help=True)



_SUBMIT_HELP = {
    "account": "sbatch --account (required by most sites); default: slurm.account in the config file",
    "partition": "sbatch --partition; default: slurm.partition in the config file",
    "walltime": "allocation time limit, HH:MM:SS or PT1H; default: slurm.walltime in the config file, else the "
                "longest job's runtime plus the buffer",
    "nodes": "nodes per allocation (one worker per node)",
    "mem": "memory per node, e.g. 16g; default: sized from the jobs",
}


def _submit_options(account, partition, walltime, nodes, mem, qos, gres, extra, template, idle_timeout,
                    walltime_buffer, max_parallel_jobs):
    from torc_hpc.slurm.allocations import SubmitOptions

    template = script_setting("slurm.template", template)
    return SubmitOptions(account=script_setting("slurm.account", account),
                         partition=script_setting("slurm.partition", partition),
                         walltime=script_setting("slurm.walltime", walltime), nodes=nodes, mem=mem,
                         qos=script_setting("slurm.qos", qos), gres=gres, extra=extra,
                         template=Path(template).expanduser() if template else None, idle_timeout_s=idle_timeout,
                         walltime_buffer_s=walltime_buffer, max_parallel_jobs=max_parallel_jobs)


def submit_slurm(
        target: str = typer.Argument(..., metavar="SPEC|WF", show_default=False,
                                     help="a spec file to create, or an existing workflow id (or `last`)"),
        account: Optional[str] = typer.Option(None, "--account", "-A", help=_SUBMIT_HELP["account"]),
        partition: Optional[str] = typer.Option(None, "--partition", "-p", help=_SUBMIT_HELP["partition"]),
        walltime: Optional[str] = typer.Option(None, "--walltime", "-t", help=_SUBMIT_HELP["walltime"]),
        nodes: Optional[int] = typer.Option(None, "--nodes", "-N", min=1, help=_SUBMIT_HELP["nodes"]),
        mem: Optional[str] = typer.Option(None, "--mem", help=_SUBMIT_HELP["mem"]),
        qos: Optional[str] = typer.Option(None, "--qos", help="sbatch --qos; default: slurm.qos in the config file"),
        gres: Optional[str] = typer.Option(None, "--gres", help="e.g. gpu:2"),
        extra: Optional[str] = typer.Option(None, "--sbatch-args", help="extra sbatch arguments, verbatim"),
        num_allocations: int = typer.Option(1, "--num-allocations", "-n", min=1,
                                            help="allocations per scheduler with waiting jobs"),
        template: Optional[Path] = typer.Option(None, "--template", help="your own sbatch template "
                                                "(start from sbatch_templates/torc_worker.sh); default: "
                                                "slurm.template in the config file"),
        idle_timeout: int = typer.Option(60, "--idle-timeout", help="a worker leaves after this many idle seconds"),
        walltime_buffer: int = typer.Option(60, "--walltime-buffer",
                                            help="stop jobs this many seconds before the allocation ends (code 152)"),
        max_parallel_jobs: Optional[int] = typer.Option(None, "--max-parallel-jobs", "-j", min=1,
                                                        help="each worker runs at most N jobs at once"),
        output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", show_default=False,
                                                 help="where logs and sbatch scripts go (new workflows); default: "
                                                      "output_dir in the config file, else torc_output"),
        max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
        fmt: Format = FormatOpt):
    """Create a workflow (or take an existing one) and submit Slurm allocations whose workers run its jobs.

    Each allocation runs `torc worker WF --slurm`, which claims jobs that fit the allocation's CPUs,
    memory and remaining time. Scripts and Slurm's own logs go to OUTPUT_DIR/slurm/. A spec with
    `schedule_nodes` actions due at the start (on_workflow_start) gets exactly those allocations instead.

    Example: `torc submit-slurm --account my_project --partition debug sweep.yaml`
    """
    opts = _submit_options(account, partition, walltime, nodes, mem, qos, gres, extra, template, idle_timeout,
                           walltime_buffer, max_parallel_jobs)
    # Every value bound for the script is checked before anything else, Slurm or not.
    existing = target.isdigit() or target.strip().lower() == "last"
    out = None if existing else script_setting("output_dir", output_dir, "--output-dir")
    client = slurm_ops.require_client()
    with open_db() as db:
        if existing:
            wf_id = common.workflow_id(db, target)
            ops.touch(db, wf_id, client)
        else:
            wf_id = ops.create_from_file(db, target, output_dir=out,
                                         limits=expansion_limits(max_jobs, max_dependencies))
        # A spec whose actions schedule nodes at the start (Torc's `torc submit`) gets those allocations;
        # otherwise they are sized from the waiting jobs.
        result = slurm_ops.submit_start_actions(db, wf_id, client) or slurm_ops.submit_for_workflow(
            db, wf_id, client, opts, num_allocations, submitted_by="submit-slurm")
    if fmt is not Format.table:
        emit_json({"workflow_id": wf_id, **result})
        return
    for w in result["warnings"]:
        err_console.print(f"[yellow]warning:[/yellow] {w}")
    for a in result["allocations"]:
        console.print(f"submitted allocation {a['id']} as Slurm job {a['slurm_job_id']} "
                      f"({' '.join(x for x in a['sbatch_args'] if not x.startswith(('--output', '--error')))})")
    console.print(f"workflow {wf_id} · follow it: torc workflows status {wf_id} · torc slurm list {wf_id}")



@app.command("list")
def slurm_list(workflow_id: str = WorkflowArg(), wide: bool = WideOpt, fmt: Format = FormatOpt):
    """Allocations with their Slurm state (refreshed with one squeue and one sacct call).

    Example: `torc slurm list last`
    """
    with open_db() as db:
        workflow_id = common.workflow_id(db, workflow_id)
        ops.touch(db, workflow_id, default_client())
        rows = db.all("list_allocations", workflow_id=workflow_id)
    emit_rows(rows, ["id", "slurm_job_id", "state", "sacct_state", "nodes", "cpus_per_node", "mem", "walltime_s",
                     "submitted_at"], fmt,
              wide_columns=["scheduler", "exit_code", "submitted_by", "started_at", "ended_at", "workflows", "error"],
              wide=wide,
              flex="error" if wide else None, empty="no allocations: torc submit-slurm --account A WF")


@app.command("cancel")
def slurm_cancel(workflow_id: str = WorkflowArg(), fmt: Format = FormatOpt):
    """scancel every active allocation of the workflow (its jobs come back as terminated, code 143).

    Example: `torc slurm cancel 3`
    """
    with open_db() as db:
        workflow_id = common.workflow_id(db, workflow_id)
        db.workflow(workflow_id)
        ids = slurm_ops.cancel_allocations(db, workflow_id, slurm_ops.require_client())
    if fmt is not Format.table:
        emit_json({"id": workflow_id, "scanceled_allocations": ids})
    else:
        console.print(f"scancel sent to {len(ids)} allocation(s): {' '.join(ids) or '-'}")


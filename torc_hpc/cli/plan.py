"""`torc workflows plan SPEC` (and `torc run SPEC --dry-run`): what a spec would create and need, writing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from torc_hpc.cli.common import FormatOpt, MaxDependenciesOpt, MaxJobsOpt, expansion_limits, script_setting
from torc_hpc.cli.output import Format, console, emit_json, emit_rows, fit, human_bytes, human_duration, terminal_width
from torc_hpc.limits import PLAN_STAGES_SHOWN
from torc_hpc.plan import Plan, plan_file


def plan(spec: Path = typer.Argument(..., metavar="SPEC", help="workflow spec, YAML or JSON", show_default=False),
         slurm: Optional[bool] = typer.Option(None, "--slurm/--no-slurm", show_default=False,
                                              help="show (or hide) the allocation shapes submit-slurm would use; "
                                                   "default: when Slurm is installed or the spec has "
                                                   "slurm_schedulers"),
         account: Optional[str] = typer.Option(None, "--account", "-A", show_default=False,
                                               help="sbatch --account (default: config file)"),
         partition: Optional[str] = typer.Option(None, "--partition", "-p", show_default=False,
                                                 help="sbatch --partition (default: config file)"),
         walltime: Optional[str] = typer.Option(None, "--walltime", "-t", show_default=False,
                                                help="allocation time limit (default: config file, else sized)"),
         num_allocations: int = typer.Option(1, "--num-allocations", "-n", min=1,
                                             help="allocations per scheduler (a fair share of the work each)"),
         max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
         fmt: Format = FormatOpt):
    """Validate and expand a spec without writing anything, and show what it would run: stages (topological
    levels with job counts), requested CPU-hours, GPU-hours and memory, the largest job, jobs with failure
    handlers and, for Slurm, the allocation shapes `torc submit-slurm` would use.

    Example: `torc workflows plan sweep.yaml --partition debug --format json`
    """
    show_plan(spec, fmt, slurm=slurm, account=account, partition=partition, walltime=walltime,
              num_allocations=num_allocations, limits=expansion_limits(max_jobs, max_dependencies))


def show_plan(spec: Path | str, fmt: Format, *, slurm=None, account=None, partition=None, walltime=None,
              num_allocations: int = 1, limits=None) -> Plan:
    from torc_hpc.slurm.allocations import SubmitOptions
    from torc_hpc.slurm.client import default_client

    opts = SubmitOptions(account=script_setting("slurm.account", account),
                         partition=script_setting("slurm.partition", partition),
                         walltime=script_setting("slurm.walltime", walltime), qos=script_setting("slurm.qos"))
    client = default_client() if slurm is not False else None
    p = plan_file(spec, opts=opts, client=client, count=num_allocations, slurm=slurm, limits=limits)
    if fmt is not Format.table:
        emit_json({"spec": str(spec), "written": False, **p.as_dict()})
    else:
        print_plan(p, str(spec))
    return p


def _groups(groups: list[tuple[str, int]], width: int) -> str:
    text = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in groups)
    return fit(text, width)


def print_plan(p: Plan, spec: str) -> None:
    width = terminal_width()
    console.print(f"[bold]{p.name}[/bold] from {spec}: {p.jobs} job(s), {p.dependencies} dependencies, "
                  f"{p.stages_total} stage(s) · nothing was written", highlight=False)
    print(f"requested: {p.cpu_hours:,.1f} CPU-hours · {p.gpu_hours:,.1f} GPU-hours · "
          f"{human_bytes(p.memory_bytes)} of memory in all")
    if p.largest_job:
        j = p.largest_job
        print(f"largest job: {j['name']} ({j['num_cpus']} CPU{'s' if j['num_cpus'] != 1 else ''}"
              + (f" × {j['num_nodes']} nodes" if j["num_nodes"] > 1 else "")
              + (f", {j['num_gpus']} GPU(s)" if j["num_gpus"] else "")
              + f", {human_bytes(j['memory_bytes'])}, {human_duration(j['runtime_s'])})")
        m = p.max_request
        print(f"largest requests: {m['cpus']['value']} CPU(s) ({m['cpus']['job']}) · "
              f"{human_bytes(m['memory_bytes']['value'])} ({m['memory_bytes']['job']}) · "
              f"{human_duration(m['runtime_s']['value'])} ({m['runtime_s']['job']})"
              + (f" · {m['gpus']['value']} GPUs ({m['gpus']['job']})" if m["gpus"]["value"] else ""))
    if p.failure_handlers:
        per = ", ".join(f"{h} ({n})" for h, n in sorted(p.failure_handlers.items()))
        print(f"failure handlers: {p.jobs_with_handlers} job(s) — {per}")
    else:
        print("failure handlers: none (a failure is final; dependents are canceled)")
    print()
    rows = [{"stage": s.level + 1, "jobs": s.jobs, "cpu_hours": f"{s.cpu_hours:,.1f}", "names": ""}
            for s in p.stages[:PLAN_STAGES_SHOWN]]
    name_width = max(20, width - 30)
    for r, s in zip(rows, p.stages):
        r["names"] = _groups(s.groups, name_width)
    emit_rows(rows, ["stage", "jobs", "cpu_hours", "names"], Format.table, flex="names")
    if p.stages_total > len(rows):
        print(f"… and {p.stages_total - len(rows)} more stage(s) (--format json lists up to {len(p.stages)})")
    if p.allocations:
        print()
        print("Slurm: allocations `torc submit-slurm` would request (per scheduler):")
        arows = [{"scheduler": a["scheduler"] or "(none)", "jobs": a["jobs"], "count": a["count"],
                  "shape": f"{a['nodes']} node × {a['cpus_per_node']} CPUs, {human_bytes(a['mem_mb_per_node'] * 2**20)}"
                           + (f", {a['gpus_per_node']} GPU" if a["gpus_per_node"] else ""),
                  "walltime": human_duration(a["walltime_s"]), "partition": a["partition"] or "(default)",
                  "account": a["account"] or "-",
                  "fits": "yes" if not a["problems"] else "NO: " + "; ".join(a["problems"])}
                 for a in p.allocations]
        emit_rows(arows, ["scheduler", "jobs", "count", "shape", "walltime", "partition", "account", "fits"],
                  Format.table, flex="fits")
    for n in p.notes:
        print(f"note: {n}")

"""The tools `torc mcp` offers: names, JSON schemas and descriptions an agent can act on, and which operation
each one calls. Names and parameter shapes follow Torc's MCP server, so prompts written for Torc work here;
the operations are the ones the CLI calls (torc_hpc.triage, torc_hpc.job_ops, torc_hpc.workflows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from torc_hpc import job_ops, triage
from torc_hpc import workflows as ops
from torc_hpc.core.states import JobStatus
from torc_hpc.db.repo import Database
from torc_hpc.errors import TorcError
from torc_hpc.limits import AGENT_LOG_MAX_LINES, AGENT_MAX_ITEMS, AGENT_REASON_MAX_CHARS, LOG_TAIL_LINES


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict
    run: Callable[[Database, dict, triage.Decider], dict]
    # Array arguments whose items the operation checks one by one (errors per item, not per call).
    per_item: tuple[str, ...] = field(default=())


def _int(description: str, **extra) -> dict:
    return {"type": "integer", "description": description, **extra}


WORKFLOW_ID = _int("The workflow id (as `torc workflows list` shows it).", minimum=1)
JOB_ID = _int("The job id (as `torc jobs list WF` shows it).", minimum=1)
REASON = {"type": "string", "maxLength": AGENT_REASON_MAX_CHARS,
          "description": "Why: kept in the job's event together with who decided (this client's name and the "
                         "database role)."}
MEMORY = {"type": "string", "description": "A memory request such as '8g', '512m' or '1.5g'."}
RUNTIME = {"type": "string", "description": "A runtime such as 'PT2H', 'PT30M' or '02:00:00'."}


def _object(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _touched(db: Database, workflow_id: int) -> None:
    """What every CLI command that reads a workflow does first (repair after dead workers)."""
    ops.touch(db, workflow_id)


def _status(db, a, _d):
    _touched(db, a["workflow_id"])
    s = ops.summary(db, a["workflow_id"])
    wf = db.workflow(a["workflow_id"])
    return {"workflow_id": s["workflow_id"], "name": s["name"], "description": wf["description"],
            "run_id": s["run_id"], "total_jobs": s["total"], "job_counts_by_status": s["counts"],
            "retries": s["retries"], "all_completed": s["all_completed"], "canceled": s["canceled"],
            "logs": s["logs"], "next_steps": [f"{x['command']}  ({x['why']})" for x in ops.next_steps(s)]}


def _logs(db, a, _d):
    return job_ops.job_logs(db, a["job_id"], workflow_id=a.get("workflow_id"), run_id=a.get("run_id"),
                            attempt_id=a.get("attempt_id"), stream=a.get("stream") or a.get("log_type") or "stderr",
                            tail=a.get("tail", a.get("tail_lines")))


def _by_status(db, a, _d):
    _touched(db, a["workflow_id"])
    return job_ops.jobs_by_status(db, a["workflow_id"], a["status"])


def _failed(db, a, _d):
    _touched(db, a["workflow_id"])
    return job_ops.failed_jobs(db, a["workflow_id"])


def _pending(db, a, _d):
    _touched(db, a["workflow_id"])
    return triage.list_pending_failed(db, a["workflow_id"])


def _classify(db, a, decider):
    return triage.classify_and_resolve(db, a["workflow_id"], a["classifications"], dry_run=a["dry_run"],
                                       decider=decider)


def _utilization(db, a, _d):
    _touched(db, a["workflow_id"])
    return job_ops.resource_utilization(db, a["workflow_id"], include_failed=a.get("include_failed", True))


def _update(db, a, decider):
    return job_ops.update_resources(db, a["job_id"], num_cpus=a.get("num_cpus"), memory=a.get("memory"),
                                    runtime=a.get("runtime"), reason=a.get("reason"), decider=decider)


def _restart(db, a, decider):
    _touched(db, a["workflow_id"])
    return job_ops.restart_jobs(db, a["workflow_id"], failed_only=a.get("failed_only", True),
                                job_ids=a.get("job_ids"), decider=decider)


def _cancel(db, a, decider):
    return job_ops.cancel_jobs(db, a["job_ids"], workflow_id=a.get("workflow_id"), reason=a.get("reason"),
                               decider=decider)


def _resubmit(db, a, _d):
    from torc_hpc.slurm import allocations as allocs
    from torc_hpc.slurm import ops as slurm_ops

    # Values bound for the sbatch script are checked first, naming this tool as their source, whether or
    # not Slurm is reachable from here.
    allocs.SubmitOptions(account=a.get("account"), partition=a.get("partition"), walltime=a.get("walltime"),
                         source=job_ops.RESUBMIT_SOURCE)
    client = slurm_ops.require_client()
    ops.touch(db, a["workflow_id"], client)
    return job_ops.resubmit_workflow(db, a["workflow_id"], client, account=a.get("account"),
                                     partition=a.get("partition"), walltime=a.get("walltime"),
                                     num_allocations=a.get("num_allocations", 1), dry_run=a.get("dry_run", False))


def _create(db, a, _d):
    spec = a["spec_json"]
    text = spec if isinstance(spec, str) else json.dumps(spec)
    user = a.get("user")
    if user is not None:
        role = db.one("database_role")["db_role"]
        if user != role:
            raise TorcError(f"a workflow belongs to the database role that creates it ({role}); to create one "
                            f"for {user!r}, run torc mcp as that role (leave 'user' out otherwise)")
    wf_id = ops.create_from_text(db, text, output_dir=a.get("output_dir") or "torc_output")
    s = ops.summary(db, wf_id)
    return {"success": True, "workflow_id": wf_id, "name": s["name"], "total_jobs": s["total"],
            "message": f"Created workflow '{s['name']}' with id {wf_id} and {s['total']} job(s)",
            "next_steps": f"`torc run {wf_id}` runs it on this machine; on Slurm, resubmit_workflow (or "
                          f"`torc submit-slurm --account A {wf_id}`) submits allocations for it"}


_STATUSES = [s.value for s in JobStatus]

TOOLS: list[Tool] = [
    Tool("get_workflow_status",
         "Status of a workflow: job counts by state (completed, failed, pending_failed, running, ...), retries "
         "so far, where the logs are, and what to do next. Start here.",
         _object({"workflow_id": WORKFLOW_ID}, ["workflow_id"]), _status),
    Tool("get_job_details",
         "One job: command, state, attempt, return code, resource requests (CPUs, memory, runtime), failure "
         "handler, the jobs it depends on, and its latest attempt's result (run time, peak memory, log paths).",
         _object({"job_id": JOB_ID}, ["job_id"]), lambda db, a, _d: job_ops.job_details(db, a["job_id"])),
    Tool("get_job_logs",
         "The end of one attempt's stdout or stderr (or of its recovery script's). Without run_id/attempt_id: "
         "the latest attempt that finished, or the one running now. The text is bounded and printable.",
         _object({"job_id": JOB_ID,
                  "workflow_id": _int("Optional check: the workflow the job belongs to.", minimum=1),
                  "run_id": _int("The run (1 at first; each reset-status adds one). Default: the latest.", minimum=1),
                  "attempt_id": _int("The attempt within the run (1 at first; each retry adds one). Default: the "
                                     "latest.", minimum=1),
                  "stream": {"type": "string", "enum": list(job_ops.STREAMS), "default": "stderr",
                             "description": "Which log: stdout, stderr, or the recovery script's."},
                  "tail": _int(f"How many lines from the end (default {AGENT_LOG_MAX_LINES}, the most; "
                               f"{LOG_TAIL_LINES} is usually enough).", minimum=0, maximum=AGENT_LOG_MAX_LINES),
                  "log_type": {"type": "string", "enum": ["stdout", "stderr"],
                               "description": "Torc's name for stream (either works)."},
                  "tail_lines": _int("Torc's name for tail (either works).", minimum=0, maximum=AGENT_LOG_MAX_LINES)},
                 ["job_id"]), _logs),
    Tool("list_jobs_by_status",
         "Jobs of a workflow in one state, by id (at most 1000; count says how many there are).",
         _object({"workflow_id": WORKFLOW_ID,
                  "status": {"type": "string", "enum": _STATUSES, "description": "The state to list."}},
                 ["workflow_id", "status"]), _by_status),
    Tool("list_failed_jobs",
         "Jobs that ended failed or terminated, with return code and last attempt. Jobs awaiting a decision "
         "(pending_failed) are listed by list_pending_failed_jobs instead.",
         _object({"workflow_id": WORKFLOW_ID}, ["workflow_id"]), _failed),
    Tool("list_pending_failed_jobs",
         "Jobs in pending_failed: they failed with an exit code that no failure-handler rule matched and wait "
         "for a decision (their dependents stay blocked). Each comes with the tail of its stderr and stdout, "
         "return code, run time, peak memory and requests. Read them, decide per job whether the failure is "
         "transient (retry) or permanent (fail) as the guidance field explains, then call "
         "classify_and_resolve_failures.",
         _object({"workflow_id": WORKFLOW_ID}, ["workflow_id"]), _pending),
    Tool("classify_and_resolve_failures",
         "Decide pending_failed jobs. retry: the job becomes ready again with attempt + 1 (give memory or "
         "runtime to retry with more); fail: it becomes failed and its dependents are canceled. All "
         "classifications of one call apply together or not at all: if any item cannot apply (unknown job, a "
         "job of another workflow, a job that is not pending_failed, a bad action, memory or runtime), the "
         "answer is an error listing each item's problem and nothing changes. dry_run=true changes nothing "
         "and reports what would happen (new attempt, dependents canceled); use it first when a person will "
         "confirm. Every decision is recorded with its reason, this client's name and the database role.",
         _object({"workflow_id": WORKFLOW_ID,
                  "classifications": {
                      "type": "array", "minItems": 1, "maxItems": AGENT_MAX_ITEMS,
                      "description": "One decision per pending_failed job.",
                      "items": _object({"job_id": JOB_ID,
                                        "action": {"type": "string", "enum": list(triage.ACTIONS),
                                                   "description": "retry (transient failure) or fail (permanent)."},
                                        "reason": REASON,
                                        "memory": {**MEMORY, "description": "Only with retry: a new memory request, "
                                                                            "e.g. '8g'."},
                                        "runtime": {**RUNTIME, "description": "Only with retry: a new runtime, "
                                                                              "e.g. 'PT2H'."}},
                                       ["job_id", "action"])},
                  "dry_run": {"type": "boolean",
                              "description": "true: change nothing, report what would happen. false: apply."}},
                 ["workflow_id", "classifications", "dry_run"]), _classify, per_item=("classifications",)),
    Tool("check_resource_utilization",
         "Jobs that ran out of memory or time, or came within 10% of their requests (the detection "
         "`torc watch --recover` uses: return code 137 or peak memory >= 90% of the request; 152 or run time "
         ">= 90%), each with the request a retry should get. Fix them with update_job_resources, or with "
         "memory/runtime in classify_and_resolve_failures for pending_failed jobs.",
         _object({"workflow_id": WORKFLOW_ID,
                  "include_failed": {"type": "boolean", "default": True,
                                     "description": "Also look at failed, terminated and pending_failed jobs "
                                                    "(default true); false: completed jobs only."}},
                 ["workflow_id"]), _utilization),
    Tool("update_job_resources",
         "Change a job's CPU, memory or runtime request for its next attempt (not while it runs). Then "
         "restart_jobs (failed jobs) or classify_and_resolve_failures (pending_failed jobs) runs it again.",
         _object({"job_id": JOB_ID, "num_cpus": _int("CPUs.", minimum=1), "memory": MEMORY, "runtime": RUNTIME,
                  "reason": REASON}, ["job_id"]), _update),
    Tool("restart_jobs",
         "Reset jobs so they run again, as `torc workflows reset-status` does: a new run starts and attempts "
         "count from 1. By default every failed, canceled, terminated and pending_failed job; with job_ids, "
         "those jobs and the dependents that were canceled because of them; with failed_only=false, every job "
         "(none may be running). Run them with `torc run WF` or resubmit_workflow.",
         _object({"workflow_id": WORKFLOW_ID,
                  "failed_only": {"type": "boolean", "default": True,
                                  "description": "Only failed, canceled, terminated and pending_failed jobs "
                                                 "(default true)."},
                  "job_ids": {"type": "array", "items": JOB_ID, "minItems": 1, "maxItems": AGENT_MAX_ITEMS,
                              "description": "Only these jobs (and their canceled dependents)."}},
                 ["workflow_id"]), _restart, per_item=("job_ids",)),
    Tool("cancel_jobs",
         "Cancel jobs that have not started (blocked, ready or pending_failed); their dependents are canceled "
         "too, as after a failure. All or nothing: a job that is running, finished or unknown is reported and "
         "nothing changes. To stop running jobs, a person runs `torc workflows cancel WF`.",
         _object({"job_ids": {"type": "array", "items": JOB_ID, "minItems": 1, "maxItems": AGENT_MAX_ITEMS,
                              "description": "The jobs to cancel (all of one workflow)."},
                  "workflow_id": _int("Optional check: the workflow they belong to.", minimum=1),
                  "reason": REASON}, ["job_ids"]), _cancel, per_item=("job_ids",)),
    Tool("resubmit_workflow",
         "Submit Slurm allocations for the workflow's ready and blocked jobs, as `torc submit-slurm WF` does, "
         "with the sbatch options submit-slurm used for it unless given here. Use after retrying or restarting "
         "jobs of a Slurm workflow. dry_run=true shows the allocations it would submit.",
         _object({"workflow_id": WORKFLOW_ID,
                  "account": {"type": "string", "description": "sbatch --account (default: as before)."},
                  "partition": {"type": "string", "description": "sbatch --partition (default: as before)."},
                  "walltime": {"type": "string", "description": "Allocation time limit, e.g. '04:00:00' "
                                                                "(default: sized from the jobs)."},
                  "num_allocations": _int("Allocations per scheduler with waiting jobs (default 1).",
                                          minimum=1, maximum=100),
                  "dry_run": {"type": "boolean", "default": False,
                              "description": "Only show what would be submitted."}},
                 ["workflow_id"]), _resubmit),
    Tool("create_workflow_from_spec",
         "Create a workflow from a spec (what `torc workflows create FILE` reads): name, jobs (name, command, "
         "depends_on, parameters, resource_requirements, failure_handler), failure_handlers, "
         "use_pending_failed. Give it as JSON or YAML text, or as a JSON object. Nothing is written if the "
         "spec has any problem; each problem names its line, job and field. Relative paths (recovery "
         "scripts) resolve against the directory torc mcp runs in.",
         _object({"spec_json": {"type": ["string", "object"],
                                "description": "The spec: JSON or YAML text, or a JSON object."},
                  "output_dir": {"type": "string", "description": "Where job logs go (default torc_output)."},
                  "user": {"type": "string", "description": "Accepted for Torc prompts: must be the database "
                                                            "role torc mcp connects as (the owner)."}},
                 ["spec_json"]), _create),
]

BY_NAME = {t.name: t for t in TOOLS}

INSTRUCTIONS = (
    "torc workflows: shell jobs with dependencies, run locally or on Slurm, state in PostgreSQL. "
    "get_workflow_status shows a workflow; list_pending_failed_jobs shows jobs that failed without a "
    "matching failure-handler rule, with their stderr, and classify_and_resolve_failures retries or fails "
    "them; list_failed_jobs, get_job_details, get_job_logs and check_resource_utilization diagnose; "
    "update_job_resources, restart_jobs, cancel_jobs and resubmit_workflow act. Everything runs as the "
    "database role torc mcp connects as and sees only what that role may see.")

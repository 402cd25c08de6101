"""Allocations: plan their shape, render and submit the sbatch script, and keep their state in PostgreSQL."""

from __future__ import annotations

import logging
import re
import shlex
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from torc_hpc.core.allocation import Shape, Waiting, derive_shape, fits
from torc_hpc.core.autoschedule import allocations_needed
from torc_hpc.core.slurm_states import UNKNOWN_GRACE_S, AllocationState, allocation_state, vanished
from torc_hpc.core.units import format_duration, parse_duration, parse_memory
from torc_hpc.db.repo import Database
from torc_hpc.errors import SlurmError, TorcError
from torc_hpc.slurm import owner as owner_mod
from torc_hpc.slurm import script as scripts
from torc_hpc.slurm.client import SlurmClient

log = logging.getLogger("torc.slurm")


@dataclass
class SubmitOptions:
    """What the user said on the command line; None means "from the spec, or derived"."""

    account: str | None = None
    partition: str | None = None
    walltime: str | None = None
    nodes: int | None = None
    mem: str | None = None
    qos: str | None = None
    gres: str | None = None
    extra: str | None = None
    template: Path | None = None
    idle_timeout_s: int = 60
    walltime_buffer_s: int = 60
    max_parallel_jobs: int | None = None
    # Where these values came from, for error messages (not saved with the options).
    source: str = field(default="the command line", compare=False)

    def __post_init__(self):
        """Refuse, before anything is written, a value that could change what the sbatch script does."""
        for name in ("account", "partition", "walltime", "mem", "qos", "gres", "template"):
            scripts.check_value(f"--{name}", getattr(self, name), self.source)
        scripts.check_value("--sbatch-args", self.extra, self.source)
        if self.extra:
            try:
                tokens = shlex.split(self.extra)
            except ValueError as e:
                raise scripts.ScriptValueError(f"--sbatch-args from {self.source}: {e}") from None
            scripts.check_options(tokens, "--sbatch-args", self.source)
        for name in ("nodes", "idle_timeout_s", "walltime_buffer_s", "max_parallel_jobs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise scripts.ScriptValueError(f"{name} from {self.source} must be a whole number ≥ 0, not {v!r}")


@dataclass
class AllocationRequest:
    scheduler: str | None
    account: str | None
    partition: str | None
    shape: Shape
    qos: str | None = None
    gres: str | None = None
    extra: list[str] = field(default_factory=list)
    tmp: str | None = None
    ntasks_per_node: int | None = None
    serialize: bool = False
    defaults: dict = field(default_factory=dict)  # the workflow's slurm_defaults (sbatch long options)
    one_worker: bool = False   # one worker for the whole allocation (an action without start_one_worker_per_node)

    def sbatch_args(self, workflow_id: int, allocation_id: int, log_dir: Path, packed: int = 0) -> list[str]:
        s = self.shape
        tasks = self.ntasks_per_node or 1
        # One allocation of a serialized scheduler at a time: Slurm's singleton dependency on a shared name.
        name = f"torc_wf{workflow_id}" + (f"_{self.scheduler}" if self.serialize and self.scheduler else "")
        if packed:
            name += f"_pack{packed}"     # serves `packed` workflows, this one the first
        args = [f"--job-name={name}", f"--nodes={s.nodes}", f"--ntasks-per-node={tasks}",
                f"--cpus-per-task={max(1, -(-s.cpus_per_node // tasks))}", f"--mem={s.mem_mb_per_node}M",
                f"--time={format_duration(s.walltime_s)}",
                f"--output={log_dir}/torc_wf{workflow_id}_a{allocation_id}_%j.o",
                f"--error={log_dir}/torc_wf{workflow_id}_a{allocation_id}_%j.e"]
        if self.serialize:
            args.append("--dependency=singleton")
        if self.tmp:
            args.append(f"--tmp={self.tmp}")
        if self.account:
            args.append(f"--account={self.account}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        if self.qos:
            args.append(f"--qos={self.qos}")
        if self.gres:
            args.append(f"--gres={self.gres}")
        elif s.gpus_per_node:
            args.append(f"--gres=gpu:{s.gpus_per_node}")
        return args + default_args(self.defaults, args + self.extra) + self.extra


def default_args(defaults: dict, given: list[str]) -> list[str]:
    """The workflow's slurm_defaults as sbatch arguments, for the options nothing else set: true → --key,
    false → left out, anything else → --key=value. Keys were checked by the spec ([a-z][a-z0-9-]*, none
    of the options torc sets itself); values are checked and quoted like every script value."""
    set_already = {a.split("=", 1)[0] for a in given if a.startswith("--")}
    out = []
    for key, value in (defaults or {}).items():
        option = f"--{key}"
        if option in set_already or value is False or value is None:
            continue
        if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise scripts.ScriptValueError(f"slurm_defaults key {key!r} is not an sbatch long option")
        out.append(option if value is True else f"{option}={scripts.check_value(key, value, 'slurm_defaults')}")
    return out


def waiting_work(db: Database, workflow_id: int) -> dict[str | None, Waiting]:
    return {r["scheduler"]: Waiting(jobs=r["jobs"], cpus=int(r["cpus"]), max_cpus=r["max_cpus"],
                                    memory_bytes=int(r["memory_bytes"]), max_memory_bytes=r["max_memory_bytes"],
                                    max_runtime_s=r["max_runtime_s"], max_gpus=r["max_gpus"], ready=r["ready"])
            for r in db.all("waiting_work_by_scheduler", workflow_id=workflow_id)}


def plan_requests(db: Database, workflow_id: int, opts: SubmitOptions, client, count: int,
                  only_scheduler: str | None | bool = False) -> list[AllocationRequest]:
    """One request per allocation to submit: per scheduler with waiting jobs, `count` each.

    The spec's slurm_schedulers give the shape; options given on the command line override it;
    what neither says is sized from the waiting jobs and the partition's nodes.
    """
    schedulers = {s["name"]: s for s in db.all("list_slurm_schedulers", workflow_id=workflow_id)}
    defaults = (db.one("workflow_slurm_defaults", workflow_id=workflow_id) or {}).get("slurm_defaults") or {}
    waiting = waiting_work(db, workflow_id)
    if only_scheduler is not False:
        waiting = {k: v for k, v in waiting.items() if k == only_scheduler}
    requests = []
    for name, w in sorted(waiting.items(), key=lambda kv: kv[0] or ""):
        sch = schedulers.get(name) if name else None
        if sch:
            _check_scheduler(workflow_id, sch)
        elif name:
            scripts.check_value("jobs.scheduler", name, f"workflow {workflow_id}")
        partition = opts.partition or (sch and sch["partition"])
        request, problems = request_for(name, w, sch, opts, client.partition_shape(partition), count, defaults)
        if problems:
            label = f"scheduler '{name}'" if name else "jobs without a scheduler"
            raise TorcError(f"{label}: {'; '.join(problems)}. Give a larger --walltime/--mem, or lower the "
                            f"jobs' resource_requirements; nothing was submitted")
        requests.extend(replace(request) for _ in range(count))   # one object per allocation
    return requests


def size_from_ready(db: Database, workflow_id: int, opts: SubmitOptions, client, ready_cpu_s: int,
                    max_new: int) -> tuple[AllocationRequest, list[AllocationRequest], int]:
    """What the watcher submits for a workflow's ready work: one allocation's shape first (for the jobs
    without a scheduler, else the first scheduler's), then how many such allocations the ready CPU-seconds
    need (at most max_new). Returns that request, every scheduler's request for one allocation, the count."""
    requests = plan_requests(db, workflow_id, opts, client, 1)
    req = ([r for r in requests if r.scheduler is None] or requests[:1])[0]
    shape = req.shape
    offer = shape.cpus_per_node * shape.nodes * max(1, shape.walltime_s - opts.walltime_buffer_s)
    return req, requests, allocations_needed(ready_cpu_s, offer, max_new)


def request_for(name: str | None, w: Waiting, sch: dict | None, opts: SubmitOptions, node,
                count: int, defaults: dict | None = None) -> tuple[AllocationRequest, list[str]]:
    """The allocation submit-slurm would ask for, for one scheduler's waiting work (pure; `node` is the
    partition's PartitionShape, or None when Slurm cannot be asked: then nothing caps the size). Returns the
    request and why such jobs could not run in it (empty: they can). `torc workflows plan` shows the same."""
    partition = opts.partition or (sch and sch["partition"])
    walltime_s = (parse_duration(opts.walltime) if opts.walltime else (sch["walltime_s"] if sch else None))
    derived = derive_shape(w, node_cpus=node.cpus_per_node if node else max(1, w.max_cpus),
                           node_mem_mb=node.mem_mb_per_node if node else max(1, -(-w.max_memory_bytes // 2**20)),
                           allocations=count, buffer_s=opts.walltime_buffer_s,
                           max_walltime_s=node.max_walltime_s if node else None)
    cpus = (sch and sch["cpus_per_node"]) or derived.cpus_per_node
    mem = opts.mem or (sch and sch["mem"])
    mem_mb = parse_memory(mem) // 2**20 if mem else derived.mem_mb_per_node
    shape = Shape(nodes=opts.nodes or (sch["nodes"] if sch else 1), cpus_per_node=cpus,
                  mem_mb_per_node=mem_mb, walltime_s=walltime_s or derived.walltime_s,
                  gpus_per_node=derived.gpus_per_node)
    extra = shlex.split(opts.extra or "") + shlex.split((sch and sch["extra"]) or "")
    defaults = defaults or {}  # the workflow's slurm_defaults: under everything else
    request = AllocationRequest(
        scheduler=name, account=opts.account or (sch and sch["account"]) or defaults.get("account"),
        partition=partition, shape=shape,
        qos=opts.qos or (sch and sch["qos"]), gres=opts.gres or (sch and sch["gres"]), extra=extra,
        tmp=sch and sch.get("tmp"), ntasks_per_node=sch and sch.get("ntasks_per_node"),
        serialize=bool(sch and sch.get("serialize_allocations")),
        defaults={k: v for k, v in defaults.items() if k != "account"})
    return request, fits(w, shape, opts.walltime_buffer_s)


def _check_scheduler(workflow_id: int, sch: dict) -> None:
    """The spec's slurm_schedulers entry, as stored: every value that would reach the script."""
    source = f"the spec's slurm_schedulers entry {sch['name']!r} (workflow {workflow_id})"
    scripts.check_value("name", sch["name"], source)
    for name in ("account", "partition", "mem", "qos", "gres", "extra", "tmp"):
        scripts.check_value(name, sch.get(name), source)
    if sch["extra"]:
        try:
            tokens = shlex.split(sch["extra"])
        except ValueError as e:
            raise scripts.ScriptValueError(f"extra from {source}: {e}") from None
        scripts.check_options(tokens, "extra", source)


def worker_url(url: str, role: str, *, same_role: bool) -> str:
    """The database URL written into a script: the owner's role, never a password. Its worker finds its
    credentials the way libpq does (~/.pgpass, PGPASSFILE, a service file, peer, certificates, GSSAPI).
    Certificate paths are kept only when the owner submits for itself (another role's are not the owner's)."""
    params = conninfo_to_dict(url)
    drop = {"password", "passfile", "sslpassword"} | (set() if same_role else {"sslcert", "sslkey", "service"})
    params = {k: v for k, v in params.items() if k not in drop}
    params["user"] = role
    return make_conninfo(**params)


def database_reachability_warning(url: str, node_list: str) -> str | None:
    """Compute nodes must reach the database: a socket or localhost URL only works on this very host."""
    params = conninfo_to_dict(url) if "://" not in url else {"host": urlsplit(url).hostname or "",
                                                              **conninfo_to_dict(url)}
    host = params.get("host") or ""
    local = (not host) or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    this = socket.gethostname().split(".")[0]
    if local and node_list.strip() not in (this, ""):
        where = "a Unix socket" if (not host or host.startswith("/")) else host
        return (f"the database URL points at {where}, but the allocations run on {node_list}; they cannot "
                f"reach it. Set TORC_DATABASE_URL to a server the compute nodes can reach "
                f"(see docker-compose.yml)")
    return None


def submit(db: Database, workflow_id: int, client: SlurmClient, request: AllocationRequest, opts: SubmitOptions,
           *, submitted_by: str, reason: str | None = None, workflows: tuple[int, ...] | None = None) -> dict:
    """Record, render, sbatch, as the workflow's owner. The row exists before sbatch runs; a refused
    sbatch keeps its script.

    The script goes to the workflow's output directory and names the owner's role in its database URL
    (without a password). When this process acts for another owner (the cluster watcher, as root), the
    script is written and submitted by a child that runs as the owner's Unix user (torc_hpc.slurm.owner).

    `workflows`: a packed allocation serving several workflows of the same owner (`workflow_id`, its home,
    among them); its worker runs `torc worker --workflows 3,7,9`.
    """
    wf = db.workflow(workflow_id)
    me = db.one("whoami")["role"]
    owner = db.one("workflow_owner", workflow_id=workflow_id)["owner"]
    members = tuple(sorted(set(workflows or ()) | {workflow_id})) if workflows else None
    if members and len(members) > 1:
        for other in members:
            theirs = db.one("workflow_owner", workflow_id=other)
            if theirs is None or theirs["owner"] != owner:
                raise TorcError(f"a packed allocation holds one owner's workflows only: workflow {other} is not "
                                f"{owner}'s")
    else:
        members = None
    ident = owner_mod.submitter_for(owner, me)
    out_source = f"workflow {workflow_id}'s working_dir/output_dir"
    scripts.check_value("working_dir", wf["working_dir"], out_source)
    scripts.check_value("output_dir", wf["output_dir"], out_source)
    base = Path(wf["working_dir"] or ".") / wf["output_dir"] / "slurm"
    if ident is None:
        base = base.resolve()
    elif not base.is_absolute():
        raise TorcError(f"workflow {workflow_id} has a relative output directory ({base}); the watcher cannot "
                        f"know where its owner meant it")
    template = opts.template or scripts.default_template()
    s = request.shape
    with db.conn.transaction():
        alloc_id = db.one("insert_allocation", workflow_id=workflow_id, scheduler=request.scheduler,
                          account=request.account, partition=request.partition, nodes=s.nodes,
                          cpus_per_node=s.cpus_per_node, mem=f"{s.mem_mb_per_node}M", walltime_s=s.walltime_s,
                          sbatch_args=[], submitted_by=submitted_by, reason=reason)["id"]
        if members:
            db.run("insert_allocation_workflows", allocation_id=alloc_id, workflow_ids=list(members))
    args, values = script_values(workflow_id, alloc_id, request, opts, base,
                                 worker_url(db.url, owner, same_role=ident is None and owner == me), members)
    path = base / f"torc_wf{workflow_id}_a{alloc_id}.sh"
    db.run("allocation_args", id=alloc_id, sbatch_args=args)
    outcome = owner_mod.submit_as(ident, {"script_path": str(path), "template": str(template), "values": values},
                                  client)
    if "slurm_job_id" not in outcome:
        err = outcome.get("stderr", "").strip() or outcome["error"]
        with db.conn.transaction():
            db.run("allocation_submit_failed", id=alloc_id, error=err, script_path=str(path))
            db.event(workflow_id, "allocation_submit_failed",
                     detail={"allocation_id": alloc_id, "error": err, "script": str(path),
                             "submitted_by": submitted_by, "reason": reason, "as": ident and ident.user})
        raise SlurmError(["sbatch", str(path)], None, "", err)
    slurm_id = outcome["slurm_job_id"]
    cluster = cluster_name(client)
    try:
        with db.conn.transaction():
            db.run("allocation_submitted", id=alloc_id, slurm_job_id=slurm_id, slurm_cluster=cluster,
                   script_path=str(path))
    except psycopg.errors.UniqueViolation:
        # A rebuilt cluster of the same name reuses job ids: keep the new allocation, without the cluster
        # name that would make it collide with the old record.
        log.warning("Slurm job id %s on cluster %s was recorded before; keeping it without the cluster name",
                    slurm_id, cluster)
        cluster = None
        with db.conn.transaction():
            db.run("allocation_submitted", id=alloc_id, slurm_job_id=slurm_id, slurm_cluster=None,
                   script_path=str(path))
    with db.conn.transaction():
        for wf_id in members or (workflow_id,):
            db.event(wf_id, "allocation_submitted",
                     detail={"allocation_id": alloc_id, "slurm_job_id": slurm_id, "slurm_cluster": cluster,
                             "scheduler": request.scheduler, "submitted_by": submitted_by, "reason": reason,
                             "sbatch_args": args, "as": ident.user if ident else None,
                             "workflows": list(members) if members else None})
    return {"id": alloc_id, "slurm_job_id": slurm_id, "script_path": str(path), "scheduler": request.scheduler,
            "sbatch_args": args, "submitted_as": ident.user if ident else None,
            "workflows": list(members) if members else None}


def script_values(workflow_id: int, alloc_id: int, request: AllocationRequest, opts: SubmitOptions, log_dir: Path,
                  database_url: str, workflows: tuple[int, ...] | None = None) -> tuple[list[str], dict[str, str]]:
    """The sbatch arguments and the template's variables, each checked and quoted for the script.
    `workflows`: the members of a packed allocation (its worker serves them all)."""
    args = request.sbatch_args(workflow_id, alloc_id, log_dir, packed=len(workflows) if workflows else 0)
    worker_args = [f"--idle-timeout={int(opts.idle_timeout_s)}", f"--walltime-buffer={int(opts.walltime_buffer_s)}",
                   f"--allocation-id={int(alloc_id)}"]
    if request.scheduler:
        worker_args.append("--scheduler=" + scripts.quote(request.scheduler))
    if opts.max_parallel_jobs:
        worker_args.append(f"--max-parallel-jobs={int(opts.max_parallel_jobs)}")
    # One worker per node; with ntasks_per_node > 1 the step must still get the node's every CPU.
    cpus = " --cpus-per-task=$SLURM_CPUS_ON_NODE" if (request.ntasks_per_node or 1) > 1 else ""
    launcher = (f"srun --ntasks-per-node=1{cpus} --nodes=$SLURM_JOB_NUM_NODES "
                if request.shape.nodes > 1 and not request.one_worker else "exec ")
    # What the worker serves: one workflow (its id), or a pack (--workflows with the ids, integers only).
    target = (f"--workflows {','.join(str(int(w)) for w in workflows)}" if workflows else str(int(workflow_id)))
    values = {"sbatch_directives": scripts.directives(args), "workflow_id": str(int(workflow_id)),
              "worker_target": target,
              "allocation_id": str(int(alloc_id)), "database_url": scripts.quote(database_url),
              "launcher": launcher, "python": scripts.quote(sys.executable), "worker_args": " ".join(worker_args)}
    return args, values


def cluster_name(client) -> str | None:
    """Slurm's ClusterName (job ids are unique only within one), when the client can tell."""
    get = getattr(client, "cluster_name", None)
    try:
        return get() if get else None
    except SlurmError:
        return None


def unknown_grace_s() -> float:
    """Seconds an allocation may stay unknown to squeue and sacct before it is ended (TORC_WATCH_UNKNOWN_GRACE)."""
    import os

    raw = os.environ.get("TORC_WATCH_UNKNOWN_GRACE")
    try:
        return float(raw) if raw else float(UNKNOWN_GRACE_S)
    except ValueError:
        raise TorcError(f"TORC_WATCH_UNKNOWN_GRACE must be a number of seconds, not {raw!r}") from None


def refresh(db: Database, workflow_id: int, client: SlurmClient, extra_ids=()) -> dict[str, dict]:
    """Ask Slurm about every active allocation of one workflow (and extra job ids, e.g. its live workers'):
    one squeue, then at most one sacct. Returns slurm id → {state, sacct_state, exit_code, ...}."""
    active = {r["slurm_job_id"] for r in db.all("cluster_slurm_ids", workflow_ids=[workflow_id])}
    return refresh_ids(db, client, active | set(extra_ids))


def refresh_cluster(db: Database, client: SlurmClient, workflow_ids) -> dict[str, dict]:
    """The watcher's pass over the cluster: every active allocation of these workflows (those it holds the
    lease of) and every allocation their live workers run in, in one squeue and at most one sacct. The
    watcher also ends allocations that have been unknown past the grace period (end_vanished)."""
    ids = {r["slurm_job_id"] for r in db.all("cluster_slurm_ids", workflow_ids=sorted(workflow_ids))}
    return refresh_ids(db, client, ids, end_vanished=True)


def refresh_ids(db: Database, client: SlurmClient, ids, *, end_vanished: bool = False,
                grace_s: float | None = None) -> dict[str, dict]:
    """One squeue for all `ids`, then one sacct for the ones squeue no longer shows (or shows ended); store
    the states in one statement. An allocation neither knows is `unknown`. With `end_vanished` (the
    watcher, which reports it), one unknown for the grace period is ended, cause unknown
    (core.slurm_states.vanished): its info then says `vanished`, `why` and whose it was, and its workflow
    gets an `allocation_vanished` event."""
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    queue = client.status(ids)
    seen: dict[str, dict] = {}
    for job_id, row in queue.items():
        st = allocation_state(row.state)
        seen[job_id] = {"state": st, "sacct_state": None, "exit_code": None, "started_at": row.start_time,
                        "ended_at": None}
    gone = [i for i in ids if i not in queue or seen[i]["state"] is AllocationState.ENDED]
    if gone:
        acct = client.accounting(gone)
        for job_id in gone:
            row = acct.get(job_id)
            if row is None:
                seen[job_id] = {"state": AllocationState.UNKNOWN, "sacct_state": None, "exit_code": None,
                                "started_at": None, "ended_at": None}
                continue
            seen[job_id] = {"state": allocation_state(row.state), "sacct_state": row.state,
                            "exit_code": row.exit_code, "started_at": row.start_time, "ended_at": row.end_time}
    grace = unknown_grace_s() if grace_s is None else grace_s
    order = sorted(seen)
    with db.conn.transaction():
        rows = db.all("update_allocation_states", slurm_job_ids=order,
                      states=[seen[i]["state"].value for i in order],
                      sacct_states=[seen[i]["sacct_state"] for i in order],
                      exit_codes=[seen[i]["exit_code"] for i in order],
                      started_at=[seen[i]["started_at"] for i in order],
                      ended_at=[seen[i]["ended_at"] for i in order])
        gone_for_good = [r for r in rows if end_vanished and r["state"] == AllocationState.UNKNOWN.value
                         and vanished(r["unknown_since"], r["db_now"], grace)]
        if gone_for_good:
            why = (f"neither squeue nor sacct has known this Slurm job for {grace:.0f}s or more: ended, cause "
                   f"unknown (no accounting on this site, records purged, or a rebuilt cluster)")
            for r in db.all("end_vanished_allocations", ids=[r["id"] for r in gone_for_good], why=why):
                seen[r["slurm_job_id"]] = {"state": AllocationState.ENDED, "sacct_state": None, "exit_code": None,
                                           "started_at": None, "ended_at": None, "vanished": True, "why": why,
                                           "allocation_id": r["id"], "workflow_id": r["workflow_id"],
                                           "unknown_since": r["unknown_since"]}
                db.event(r["workflow_id"], "allocation_vanished",
                         detail={"allocation_id": r["id"], "slurm_job_id": r["slurm_job_id"],
                                 "unknown_since": r["unknown_since"].isoformat(), "grace_s": grace})
    return seen

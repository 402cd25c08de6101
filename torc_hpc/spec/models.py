"""The workflow spec as users write it (YAML, JSON, JSON5 or KDL: every format reads into the same keys).
Unknown keys are rejected.

Every value is bounded where it is declared: strings by length and by the characters PostgreSQL and
the shell can take, integers by the PostgreSQL column that stores them (see torc_hpc.limits), so a
spec that validates can always be stored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictBool, \
    StrictFloat, StrictInt, StringConstraints, field_validator, model_validator

from torc_hpc.core.units import parse_duration, parse_memory
from torc_hpc.limits import (INT4_MAX, INT4_MIN, INT8_MAX, MAX_COMMAND_BYTES, MAX_NAME_LENGTH,
                             MAX_PARAMETER_TEXT, MAX_REGEX_LENGTH, MAX_TEXT_LENGTH, MAX_VALUE_TEXT_LENGTH)

# Patterns the loader turns into plain messages (see loader._PATTERN_MESSAGES).
NO_NUL = r"^[^\x00]*$"
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_KEY = r"^[A-Za-z_][A-Za-z0-9_]*\z"   # the same as IDENTIFIER, written apart so its message differs
SBATCH_KEY = r"^[a-z][a-z0-9-]*$"
DATA_NAME = r"^[A-Za-z0-9_.{}:-]+$"   # user_data names are substituted into commands ({…}: placeholders)


def _int_range(lo: int, hi: int, column: str):
    """An integer that fits the PostgreSQL column storing it (lo may be stricter than the column)."""

    def check(v: int) -> int:
        if v > hi:
            raise ValueError(f"{v} is too large: at most {hi} (PostgreSQL {column}; torc_hpc.limits."
                             f"{'INT8_MAX' if column == 'bigint' else 'INT4_MAX'})")
        if v < lo:
            limit = " (PostgreSQL integer; torc_hpc.limits.INT4_MIN)" if lo == INT4_MIN else ""
            raise ValueError(f"{v} is too small: at least {lo}{limit}")
        return v

    return AfterValidator(check)


Int4 = Annotated[int, _int_range(INT4_MIN, INT4_MAX, "integer")]
Count0 = Annotated[int, _int_range(0, INT4_MAX, "integer")]
Count1 = Annotated[int, _int_range(1, INT4_MAX, "integer")]

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NO_CONTROL)]
Short = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=NO_CONTROL)]
Command = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMAND_BYTES, pattern=NO_NUL)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=NO_NUL)]
Options = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=NO_CONTROL)]
Regex = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REGEX_LENGTH, pattern=NO_CONTROL)]
ParamName = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=IDENTIFIER)]
ParamText = Annotated[str, StringConstraints(max_length=MAX_PARAMETER_TEXT, pattern=NO_CONTROL)]
ParamScalar = Union[ParamText, StrictInt, StrictFloat]
ParamValue = Union[ParamText, StrictInt, StrictFloat, list[ParamScalar]]
EnvKey = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=ENV_KEY)]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_COMMAND_BYTES, pattern=NO_NUL)]
SbatchKey = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=SBATCH_KEY)]
SbatchValue = Union[Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=NO_CONTROL)], StrictBool,
                    StrictInt, StrictFloat]
PathText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=NO_CONTROL)]
DataName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DATA_NAME)]

# Fields Torc's scheduler has that sbatch refuses from slurm_defaults because torc sets them itself.
SLURM_DEFAULTS_REFUSED = ("partition", "nodes", "walltime", "time", "mem", "gres", "name", "job-name")
TRIGGERS = ("on_workflow_start", "on_workflow_complete", "on_jobs_ready", "on_jobs_complete", "on_worker_start",
            "on_worker_complete")
STDIO_MODES = ("separate", "combined", "no_stdout", "no_stderr", "none")
SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGKILL")
MONITOR_METRICS = ("cpu_percent", "memory_bytes", "num_processes")


def _parsed(v, parse, what: str, example: str, most: int, unit: str, column: str) -> int:
    """Parse a size as written, refused when longer than MAX_VALUE_TEXT_LENGTH or beyond its column."""
    if isinstance(v, str) and len(v) > MAX_VALUE_TEXT_LENGTH:
        raise ValueError(f"a {what} is at most {MAX_VALUE_TEXT_LENGTH} characters "
                         f"(torc_hpc.limits.MAX_VALUE_TEXT_LENGTH), like {example!r}")
    try:
        n = parse(v)
    except OverflowError:  # digits beyond a float's range
        n = most + 1
    if n > most:
        raise ValueError(f"{what} {v!r} is more than {most:,} {unit}, the most PostgreSQL's {column}")
    return n


def memory_bytes(v: str | int) -> int:
    """Bytes of a memory size as written, refused beyond PostgreSQL's bigint. Raises ValueError."""
    return _parsed(v, parse_memory, "memory", "2g", INT8_MAX, "bytes", "bigint holds (torc_hpc.limits.INT8_MAX)")


def duration_seconds(v: str | int | float) -> int:
    """Seconds of a duration as written, refused beyond PostgreSQL's integer. Raises ValueError."""
    return _parsed(v, parse_duration, "duration", "PT30M", INT4_MAX, "seconds",
                   "integer holds, about 68 years (torc_hpc.limits.INT4_MAX)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class FailureRuleSpec(_Strict):
    exit_codes: list[Int4] = Field(default_factory=list)
    match_all_exit_codes: bool = False
    recovery_script: Command | None = None
    max_retries: Count0 = Field(default=3, description="retry while attempt_id < max_retries (Torc's default: 3)")
    recovery_timeout: str | int | None = Field(
        default=None, description="time limit of the recovery script ('PT10M', '00:10:00' or seconds); "
                                  "default torc_hpc.limits.RECOVERY_TIMEOUT_S")

    @field_validator("recovery_timeout")
    @classmethod
    def _recovery_timeout(cls, v):
        if v is not None and duration_seconds(v) <= 0:
            raise ValueError("a recovery timeout must be at least one second")
        return v

    @property
    def recovery_timeout_s(self) -> int | None:
        return None if self.recovery_timeout is None else parse_duration(self.recovery_timeout)


class FailureHandlerSpec(_Strict):
    name: Name
    rules: list[FailureRuleSpec] = Field(min_length=1)


class ResourceRequirementsSpec(_Strict):
    name: Name | None = None
    num_cpus: Count1 = 1
    num_gpus: Count0 = 0
    num_nodes: Count1 = 1
    memory: str | int = "1g"
    runtime: str | int = "PT1H"

    @field_validator("memory")
    @classmethod
    def _memory(cls, v):
        memory_bytes(v)
        return v

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v):
        duration_seconds(v)
        return v

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)

    @property
    def runtime_seconds(self) -> int:
        return parse_duration(self.runtime)


class SlurmSchedulerSpec(_Strict):
    """The shape of one kind of allocation (used by `torc submit-slurm`)."""

    name: Name
    account: Short | None = None
    partition: Short | None = None
    walltime: str = "01:00:00"
    nodes: Count1 = 1
    cpus_per_node: Count1 | None = None
    mem: str | None = None
    qos: Short | None = None
    gres: Short | None = None
    extra: Options | None = Field(default=None, description="extra sbatch arguments, verbatim")
    tmp: Short | None = Field(default=None, description="sbatch --tmp: local scratch per node, e.g. 10G")
    ntasks_per_node: Count1 | None = Field(default=None, description="sbatch --ntasks-per-node")
    serialize_allocations: bool = Field(default=False, description="one allocation of this scheduler at a time "
                                        "(sbatch --dependency=singleton)")

    @field_validator("tmp")
    @classmethod
    def _tmp(cls, v):
        if v is not None:
            memory_bytes(v)
        return v

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v):
        duration_seconds(v)
        return v

    @field_validator("mem")
    @classmethod
    def _mem(cls, v):
        if v is not None:
            memory_bytes(v)
        return v


class _Parameterized(_Strict):
    """An entry that parameters expand into several (jobs, files, user_data, datasets)."""

    parameters: dict[ParamName, ParamValue] = Field(default_factory=dict)
    parameter_mode: Literal["product", "zip"] = "product"
    use_parameters: list[ParamName] = Field(default_factory=list, description="workflow-level parameters to use")
    parameters_file: PathText | None = Field(default=None, description="a CSV or JSON table: one entry per row")
    use_parameters_file: bool = Field(default=False, description="use the workflow-level parameters_file")


class FileSpec(_Parameterized):
    """A named path; jobs that read it wait for the jobs that write it."""

    name: Name
    path: PathText
    st_mtime: float | None = Field(default=None, description="accepted from Torc's specs, stored, not used")
    must_exist: bool = Field(default=False, description="older Torc specs: the file must exist at create")


class UserDataSpec(_Parameterized):
    """A named JSON value kept in the database; jobs that read it wait for the jobs that write it."""

    name: DataName
    data: Any = None
    is_ephemeral: bool = False


class DatasetSpec(_Parameterized):
    """A directory many jobs write; readers wait for every writer."""

    name: Name
    path: PathText
    hash_mode: Literal["manifest", "content", "none"] = "manifest"
    description: Text | None = None


class StdioSpec(_Strict):
    mode: Literal["separate", "combined", "no_stdout", "no_stderr", "none"] | None = None
    delete_on_success: bool | None = None


def _granularity(v):
    return {"Summary": "summary", "TimeSeries": "time_series"}.get(v, v) if isinstance(v, str) else v


Granularity = Annotated[Literal["summary", "time_series"], BeforeValidator(_granularity)]


class MonitorJobsSpec(_Strict):
    enabled: bool = False
    granularity: Granularity = "summary"


class MonitorNodeSpec(_Strict):
    enabled: bool = False
    granularity: Granularity = "summary"
    cpu: bool = True
    memory: bool = True


class ResourceMonitorSpec(_Strict):
    """Per-job sampling of CPU and memory (Torc's current shape, or its older flat one)."""

    sample_interval_seconds: Count1 = 10
    flush_interval_seconds: Count1 = 300
    generate_plots: bool = False
    jobs: MonitorJobsSpec = Field(default_factory=MonitorJobsSpec)
    compute_node: MonitorNodeSpec | None = None
    metrics: list[Literal["cpu_percent", "memory_bytes", "num_processes"]] = \
        Field(default_factory=lambda: list(MONITOR_METRICS))

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, v):
        """The older flat shape: enabled and granularity at the top apply to jobs."""
        if isinstance(v, dict) and ("enabled" in v or "granularity" in v):
            v = dict(v)
            jobs = dict(v.get("jobs") or {}) if isinstance(v.get("jobs") or {}, dict) else v.get("jobs")
            for k in ("enabled", "granularity"):
                if k in v:
                    if isinstance(jobs, dict):
                        jobs.setdefault(k, v[k])
                    del v[k]
            v["jobs"] = jobs
        return v


class ExecutionConfigSpec(_Strict):
    """How the worker runs jobs (Torc's direct mode: torc's worker owns the processes)."""

    mode: Literal["direct", "auto"] = "direct"
    limit_resources: bool = True
    termination_signal: Literal["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGKILL"] = "SIGTERM"
    sigterm_lead_seconds: Count0 = 30
    sigkill_headroom_seconds: Count0 = 60
    timeout_exit_code: Int4 = 152
    oom_exit_code: Int4 = 137
    staggered_start: bool = False
    stdio: StdioSpec | None = None


class ActionSpec(_Strict):
    """Something to do when a trigger fires (stored here; run by the worker and the watcher)."""

    trigger_type: Short
    action_type: Short
    jobs: list[Name] | None = None
    job_name_regexes: list[Regex] | None = None
    commands: list[Command] | None = None
    scheduler: Name | None = None
    scheduler_type: Literal["slurm"] | None = None
    num_allocations: Count1 | None = None
    start_one_worker_per_node: bool | None = None
    max_parallel_jobs: Count1 | None = None
    persistent: bool = False


def _no_torc_variables(env: dict) -> dict:
    torc = sorted(k for k in env if k.startswith("TORC_"))
    if torc:
        raise ValueError(f"env cannot set {', '.join(torc)}: torc sets the TORC_* variables of every job itself "
                         "(see README, 'What a job sees')")
    return env


Env = Annotated[dict[EnvKey, EnvValue], AfterValidator(_no_torc_variables)]


def _json_object(v):
    """metadata: a mapping, or (Torc's docs) a string holding a JSON object."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError as e:
            raise ValueError(f"metadata is a string but not JSON ({e}); write a mapping or a JSON object "
                             "string like '{\"team\": \"a\"}'") from None
        if not isinstance(v, dict):
            raise ValueError("metadata must be a JSON object (a mapping), not a JSON "
                             f"{type(v).__name__}")
    return v


class JobSpec(_Parameterized):
    name: Name
    command: Command
    depends_on: list[Name] = Field(default_factory=list)
    depends_on_regexes: list[Regex] = Field(default_factory=list)
    failure_handler: Name | None = None
    resource_requirements: Name | ResourceRequirementsSpec | None = None
    cancel_on_blocking_job_failure: bool = True
    priority: Int4 = 0
    scheduler: Name | None = None
    input_files: list[Name] = Field(default_factory=list)
    output_files: list[Name] = Field(default_factory=list)
    input_file_regexes: list[Regex] = Field(default_factory=list)
    output_file_regexes: list[Regex] = Field(default_factory=list)
    input_user_data: list[Name] = Field(default_factory=list)
    output_user_data: list[Name] = Field(default_factory=list)
    input_user_data_regexes: list[Regex] = Field(default_factory=list)
    output_user_data_regexes: list[Regex] = Field(default_factory=list)
    input_datasets: list[Name] = Field(default_factory=list)
    output_datasets: list[Name] = Field(default_factory=list)
    invocation_script: Command | None = Field(default=None, description="runs as `<script> <command>`")
    supports_termination: bool = Field(default=False, description="accepted from Torc's specs, stored, ignored")
    label: Short | None = Field(default=None, description="routes the job to workers started with --label")
    env: Env = Field(default_factory=dict)
    stdio: StdioSpec | None = None


DEFAULT_MAX_ITERATIONS = 1000   # Torc's default when dynamic_jobs (or its max_iterations) is omitted


class DynamicJobsSpec(_Strict):
    """Torc's dynamic_jobs: how often each lineage of `torc jobs spawn` calls may add jobs."""

    max_iterations: Count1 = DEFAULT_MAX_ITERATIONS


class WorkflowSpec(_Strict):
    name: Name
    description: Text | None = None
    user: Short | None = Field(default=None, description="stored and shown; never decides ownership")
    project: Short | None = None
    metadata: Annotated[dict[str, Any], BeforeValidator(_json_object)] | None = None
    jobs: list[JobSpec] = Field(min_length=1)
    files: list[FileSpec] = Field(default_factory=list)
    user_data: list[UserDataSpec] = Field(default_factory=list)
    datasets: list[DatasetSpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    failure_handlers: list[FailureHandlerSpec] = Field(default_factory=list)
    resource_requirements: list[ResourceRequirementsSpec] = Field(default_factory=list)
    slurm_schedulers: list[SlurmSchedulerSpec] = Field(default_factory=list)
    slurm_defaults: dict[SbatchKey, SbatchValue] = Field(default_factory=dict)
    use_pending_failed: bool = False
    parameters: dict[ParamName, ParamValue] = Field(default_factory=dict)
    parameters_file: PathText | None = None
    variables: dict[ParamName, Text] = Field(default_factory=dict, description="applied before validation")
    env: Env = Field(default_factory=dict)
    resource_monitor: ResourceMonitorSpec | None = None
    execution_config: ExecutionConfigSpec | None = None
    dynamic_jobs: DynamicJobsSpec | None = None
    enable_ro_crate: Literal[False] | None = None
    compute_node_wait_for_new_jobs_seconds: Count0 | None = None
    compute_node_ignore_workflow_completion: bool | None = None
    compute_node_wait_for_healthy_database_minutes: Count0 | None = None
    compute_node_expiration_buffer_seconds: Int4 | None = None

    # Read by validate_references (with the directory torc runs in): parameter tables and @files.
    _tables: dict = PrivateAttr(default_factory=dict)

    @field_validator("slurm_defaults")
    @classmethod
    def _slurm_defaults(cls, v):
        refused = [k for k in v if k in SLURM_DEFAULTS_REFUSED]
        if refused:
            raise ValueError(f"slurm_defaults cannot set {', '.join(refused)}: torc sets "
                             f"{', '.join(SLURM_DEFAULTS_REFUSED)} itself for each allocation (put them in a "
                             "slurm_schedulers entry)")
        return v

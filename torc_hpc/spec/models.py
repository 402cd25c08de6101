"""The workflow spec as users write it (YAML or JSON). Unknown keys are rejected.

Every value is bounded where it is declared: strings by length and by the characters PostgreSQL and
the shell can take, integers by the PostgreSQL column that stores them (see torc_hpc.limits), so a
spec that validates can always be stored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints, \
    field_validator

from torc_hpc.core.units import parse_duration, parse_memory
from torc_hpc.limits import (INT4_MAX, INT4_MIN, INT8_MAX, MAX_COMMAND_BYTES, MAX_NAME_LENGTH,
                             MAX_PARAMETER_TEXT, MAX_REGEX_LENGTH, MAX_TEXT_LENGTH, MAX_VALUE_TEXT_LENGTH)

# Patterns the loader turns into plain messages (see loader._PATTERN_MESSAGES).
NO_NUL = r"^[^\x00]*$"
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


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
    max_retries: Count0 = Field(default=1, description="retry while attempt_id < max_retries")


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


class JobSpec(_Strict):
    name: Name
    command: Command
    depends_on: list[Name] = Field(default_factory=list)
    depends_on_regexes: list[Regex] = Field(default_factory=list)
    parameters: dict[ParamName, ParamValue] = Field(default_factory=dict)
    parameter_mode: Literal["product", "zip"] = "product"
    failure_handler: Name | None = None
    resource_requirements: Name | ResourceRequirementsSpec | None = None
    cancel_on_blocking_job_failure: bool = True
    priority: Int4 = 0
    scheduler: Name | None = None


class WorkflowSpec(_Strict):
    name: Name
    description: Text | None = None
    jobs: list[JobSpec] = Field(min_length=1)
    failure_handlers: list[FailureHandlerSpec] = Field(default_factory=list)
    resource_requirements: list[ResourceRequirementsSpec] = Field(default_factory=list)
    slurm_schedulers: list[SlurmSchedulerSpec] = Field(default_factory=list)
    use_pending_failed: bool = False

"""The workflow spec as users write it (YAML or JSON). Unknown keys are rejected."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from torc_hpc.core.units import parse_duration, parse_memory

ParamValue = Union[str, int, float, list]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class FailureRuleSpec(_Strict):
    exit_codes: list[int] = Field(default_factory=list)
    match_all_exit_codes: bool = False
    recovery_script: str | None = None
    max_retries: int = Field(default=1, ge=0, description="retry while attempt_id < max_retries")


class FailureHandlerSpec(_Strict):
    name: str = Field(min_length=1)
    rules: list[FailureRuleSpec] = Field(min_length=1)


class ResourceRequirementsSpec(_Strict):
    name: str | None = None
    num_cpus: int = Field(default=1, ge=1)
    num_gpus: int = Field(default=0, ge=0)
    num_nodes: int = Field(default=1, ge=1)
    memory: str | int = "1g"
    runtime: str | int = "PT1H"

    @field_validator("memory")
    @classmethod
    def _memory(cls, v):
        parse_memory(v)
        return v

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v):
        parse_duration(v)
        return v

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)

    @property
    def runtime_seconds(self) -> int:
        return parse_duration(self.runtime)


class SlurmSchedulerSpec(_Strict):
    """The shape of one kind of allocation (used by `torc submit-slurm`)."""

    name: str = Field(min_length=1)
    account: str | None = None
    partition: str | None = None
    walltime: str = "01:00:00"
    nodes: int = Field(default=1, ge=1)
    cpus_per_node: int | None = Field(default=None, ge=1)
    mem: str | None = None
    qos: str | None = None
    gres: str | None = None
    extra: str | None = Field(default=None, description="extra sbatch arguments, verbatim")

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v):
        parse_duration(v)
        return v

    @field_validator("mem")
    @classmethod
    def _mem(cls, v):
        if v is not None:
            parse_memory(v)
        return v


class JobSpec(_Strict):
    name: str = Field(min_length=1)
    command: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)
    depends_on_regexes: list[str] = Field(default_factory=list)
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    parameter_mode: Literal["product", "zip"] = "product"
    failure_handler: str | None = None
    resource_requirements: str | ResourceRequirementsSpec | None = None
    cancel_on_blocking_job_failure: bool = True
    priority: int = 0
    scheduler: str | None = None


class WorkflowSpec(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    jobs: list[JobSpec] = Field(min_length=1)
    failure_handlers: list[FailureHandlerSpec] = Field(default_factory=list)
    resource_requirements: list[ResourceRequirementsSpec] = Field(default_factory=list)
    slurm_schedulers: list[SlurmSchedulerSpec] = Field(default_factory=list)
    use_pending_failed: bool = False

"""Workflow specs: pydantic models, parameter expansion, validation with located errors. Pure."""

from torc_hpc.spec.expand import ExpandedJob, ExpandedWorkflow, ExpansionLimits, expand_workflow
from torc_hpc.spec.loader import load_spec, load_spec_text
from torc_hpc.spec.models import WorkflowSpec

__all__ = ["ExpandedWorkflow", "ExpandedJob", "ExpansionLimits", "WorkflowSpec", "expand_workflow", "load_spec",
           "load_spec_text"]

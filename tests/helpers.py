"""Small builders shared by tests."""

from __future__ import annotations

import yaml

from torc_hpc.spec import expand_workflow, load_spec_text


def expanded(spec: dict):
    text = yaml.safe_dump(spec, sort_keys=False)
    s, loc = load_spec_text(text, "test.yaml")
    return expand_workflow(s, loc, "test.yaml")


def create(db, spec: dict, working_dir: str = "/tmp") -> int:
    return db.create_workflow(expanded(spec), spec_path=None, working_dir=working_dir)


def job_ids(db, wf: int) -> dict[str, int]:
    return {r["name"]: r["id"] for r in db.all("list_jobs", workflow_id=wf, status=None)}


def statuses(db, wf: int) -> dict[str, str]:
    return {r["name"]: r["status"] for r in db.all("list_jobs", workflow_id=wf, status=None)}

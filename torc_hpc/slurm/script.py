"""Render the sbatch script from a template in sbatch_templates/ (or one the user points at)."""

from __future__ import annotations

import shlex
import string
from pathlib import Path

from torc_hpc.errors import TorcError

REQUIRED = ("sbatch_directives", "workflow_id", "allocation_id", "database_url", "launcher", "python",
            "worker_args")


class TemplateError(TorcError):
    """A template names a variable torc does not provide, or lacks one torc needs."""


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "sbatch_templates", here / "_sbatch_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cannot find sbatch_templates; reinstall torc-hpc")


def default_template() -> Path:
    return templates_dir() / "torc_worker.sh"


def render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    tpl = string.Template(text)
    named = {m.group("named") or m.group("braced") for m in tpl.pattern.finditer(text)
             if m.group("named") or m.group("braced")}
    missing_in_template = [k for k in ("worker_args", "workflow_id", "database_url") if k not in named]
    if missing_in_template:
        raise TemplateError(f"sbatch template {template} must use ${{{missing_in_template[0]}}}; "
                            f"start from {default_template()}")
    try:
        return tpl.substitute(values)
    except KeyError as e:
        raise TemplateError(f"sbatch template {template} uses ${{{e.args[0]}}}, which torc does not provide "
                            f"(it provides: {', '.join(REQUIRED)}); write $$ for a literal $") from None
    except ValueError as e:
        raise TemplateError(f"sbatch template {template}: {e}; write $$ for a literal $") from None


def directives(args: list[str]) -> str:
    return "\n".join(f"#SBATCH {a}" for a in args)


def quote(value: str) -> str:
    return shlex.quote(value)

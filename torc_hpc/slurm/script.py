"""Render the sbatch script from a template in sbatch_templates/ (or one the user points at).

No value a user supplies ever becomes code: every value that reaches the script (sbatch options from the
command line, the spec's slurm_schedulers or the stored watch_state.submit_options, paths, template
variables) is checked here for newlines and other control characters, with an error naming the field and
where the value came from, and is shell-quoted where it is written. `#SBATCH` lines are quoted the same
way: sbatch parses them like a shell word (quotes, backslashes, `#` comments), so a quoted value is one
literal argument to sbatch and a comment to bash.
"""

from __future__ import annotations

import re
import shlex
import string
import unicodedata
from pathlib import Path

from torc_hpc.errors import TorcError

REQUIRED = ("sbatch_directives", "workflow_id", "allocation_id", "database_url", "launcher", "python",
            "worker_args", "worker_target")

# An sbatch option name: -C, --constraint, --mail-type, ...
_OPTION = re.compile(r"^--?[A-Za-z][A-Za-z0-9-]*$")
# Options torc decides itself, or that would replace the script or run it as someone else.
FORBIDDEN_OPTIONS = {"--uid", "--gid", "--wrap", "--parsable", "--test-only"}


class TemplateError(TorcError):
    """A template names a variable torc does not provide, or lacks one torc needs."""


class ScriptValueError(TorcError):
    """A value bound for an sbatch script contains something that could change what the script does."""

    exit_code = 2


def _bad_char(value: str) -> str | None:
    """The first character no script value may hold: control characters (newline, carriage return, tab,
    escape, NUL, NEL …), format characters (bidirectional overrides, zero-width characters) and the
    Unicode line and paragraph separators."""
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            return ch
    return None


def check_value(field: str, value, source: str) -> str | None:
    """`value` as a string, or a ScriptValueError naming the field and where the value came from."""
    if value is None:
        return None
    text = str(value)
    ch = _bad_char(text)
    if ch is not None:
        raise ScriptValueError(
            f"{field} from {source} contains {unicodedata.name(ch, 'a control character')} "
            f"(U+{ord(ch):04X}): {text!r}. Values that go into sbatch scripts may not contain newlines or "
            f"other control characters; fix the value where it came from")
    return text


def check_options(tokens: list[str], field: str, source: str) -> list[str]:
    """Extra sbatch arguments (already split like a shell would): options, each optionally followed by its
    value. Options torc sets itself, or that would change who runs what (--uid, --gid, --wrap), are refused."""
    for i, tok in enumerate(tokens):
        check_value(field, tok, source)
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            if not _OPTION.match(name):
                raise ScriptValueError(f"{field} from {source}: {tok!r} is not an sbatch option")
            if name in FORBIDDEN_OPTIONS:
                raise ScriptValueError(f"{field} from {source}: {name} is not allowed (torc submits the script "
                                       f"itself, as the workflow's owner)")
        elif i == 0:
            raise ScriptValueError(f"{field} from {source}: {tok!r} does not start with an option "
                                   f"(e.g. --constraint=haswell)")
    return tokens


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "sbatch_templates", here / "_sbatch_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cannot find sbatch_templates; reinstall torc-hpc")


def default_template() -> Path:
    return templates_dir() / "torc_worker.sh"


def render(template: Path, values: dict[str, str]) -> str:
    """Substitute `values` into the template. Every value must already be quoted for the shell where
    needed (see quote); a value holding a control character is refused whatever its origin, except the
    directives, whose lines directives() built."""
    for k, v in values.items():
        if k != "sbatch_directives":
            check_value(f"template variable ${{{k}}}", v, "torc")
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


def directive_arg(arg: str) -> str:
    """One sbatch argument as it is written after `#SBATCH `: `--name=` + the value quoted."""
    check_value("sbatch argument", arg, "torc")
    if arg.startswith("-"):
        name, eq, value = arg.partition("=")
        if _OPTION.match(name):
            return name + eq + (quote(value) if eq else "")
    return quote(arg)


def directives(args: list[str]) -> str:
    """#SBATCH lines: an option per line; a value given as a separate argument (-C haswell) joins its
    option's line."""
    lines: list[str] = []
    for a in args:
        if a.startswith("-") or not lines:
            lines.append(f"#SBATCH {directive_arg(a)}")
        else:
            lines[-1] += " " + directive_arg(a)
    return "\n".join(lines)


def quote(value: str) -> str:
    return shlex.quote(value)

"""One exception hierarchy. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class TorcError(Exception):
    """Base class for errors torc reports to the user (the CLI prints them without a traceback)."""

    exit_code = 1


class SpecError(TorcError):
    """A workflow spec is invalid. Carries every problem found, each located (file, job, field, line)."""

    exit_code = 2

    def __init__(self, path: str, problems: list["SpecProblem"], *, total: int | None = None):
        from torc_hpc.limits import MAX_PROBLEMS

        self.path = path
        self.problems = problems[:MAX_PROBLEMS]
        self.total = max(total or 0, len(problems))
        lines = [f"{path}: {self.total} problem(s) in the workflow spec; nothing was written:"]
        lines += [f"  - {p}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"  … and {self.total - len(self.problems)} more (only the first {MAX_PROBLEMS} are "
                         "listed, torc_hpc.limits.MAX_PROBLEMS): fix these and run again")
        super().__init__("\n".join(lines))


class SpecProblem:
    """One located problem in a spec."""

    def __init__(self, message: str, *, job: str | None = None, field: str | None = None,
                 line: int | None = None, path: str | None = None):
        self.message = message
        self.job = job
        self.field = field
        self.line = line
        self.path = path

    def __str__(self) -> str:
        where = []
        if self.path and self.line:
            where.append(f"{self.path}:{self.line}")
        elif self.line:
            where.append(f"line {self.line}")
        if self.job:
            where.append(f"job '{self.job}'")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def as_dict(self) -> dict:
        return {"message": self.message, "job": self.job, "field": self.field,
                "line": self.line, "path": self.path}


class ConfigError(TorcError):
    """The config file (~/.config/torc/config.toml or TORC_CONFIG) cannot be used; names the file and key."""

    exit_code = 2


class UnfinishedWorkflow(TorcError):
    """`torc run SPEC` found an unfinished workflow created from the same file with the same content."""

    def __init__(self, message: str, workflow_id: int):
        self.workflow_id = workflow_id
        super().__init__(message)


class DatabaseError(TorcError):
    """The database could not be reached or answered with an error torc cannot handle."""


class NotFound(TorcError):
    """A workflow, job or allocation the user named does not exist."""

    exit_code = 3


class SlurmError(TorcError):
    """A Slurm command failed; carries argv, return code and output."""

    def __init__(self, argv: list[str], returncode: int | None, stdout: str, stderr: str, hint: str = ""):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        msg = f"{' '.join(argv)} failed (exit {returncode}): {stderr.strip() or stdout.strip()}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)


class DecisionRejected(TorcError):
    """Some items of an all-or-nothing decision (classify, cancel, restart) cannot apply; nothing was written.

    Carries the whole report (every item, each with its status and message) for callers that show it
    as data (the MCP server), and a message listing the problems for people.
    """

    def __init__(self, report: dict, problems: list[str], what: str = "item"):
        self.report = report
        self.problems = problems
        total = len(report.get("results", [])) or len(problems)
        lines = [f"{len(problems)} of {total} {what}(s) cannot apply; nothing was written:"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))

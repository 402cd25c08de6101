#!/usr/bin/env python3
"""Measure how many Torc workflow specs torc-hpc accepts.

Runs torc-hpc's own validation (``load_spec`` + ``expand_workflow``; no database, nothing written) over
every spec file under the given directories and reports, per file, accepted or rejected with the first
error; the acceptance rate per format and overall; and the fields behind the rejections, ranked.

    tools/torc_compat_check.py /work/torc-examples            # table
    tools/torc_compat_check.py /work/torc-examples --json     # one JSON document
    tools/torc_compat_check.py DIR --kind example --source NatLabRockies/torc
    TORC_DATABASE_URL=... tools/torc_compat_check.py /work/torc-examples --run   # also run them

``--run`` also runs every accepted spec with ``torc run`` (the real CLI, a subprocess) in a fresh temporary
copy of the directory it resolves paths from, against the database in TORC_DATABASE_URL (a scratch database:
each spec creates a workflow there), and reports completed / failed / timed out per spec, with the first
failed job and the tail of its stderr. A spec that asks for more CPUs, memory or GPUs than this machine has
runs with ``torc run -j 2`` (jobs counted, requests ignored). A spec with a ``schedule_nodes`` action needs
Slurm to do what it shows; it still runs (torc run records those actions as skipped) and is counted apart.

If a directory holds an ``INDEX.tsv`` (columns ``local_file``, ``source_repo``, ``kind`` ..., as written by
the issue-14 research), it decides which files are specs (kinds ``example`` and ``doc-spec``) and adds the
source repository to each row; otherwise every ``*.yaml|yml|json|json5|kdl`` file that is not under a
``parameter_tables`` directory counts.

Relative paths inside a spec (recovery scripts, parameter tables) are resolved the way Torc resolves them:
from the directory a user would run from, taken here as the parent of the nearest ``examples`` directory
above the spec (``--base-dir`` overrides it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".json5": "json5", ".kdl": "kdl"}
SPEC_KINDS = {"example", "doc-spec"}


@dataclass
class RunResult:
    outcome: str                       # completed | failed | create_error | timeout
    command: str
    seconds: float
    needs_slurm: bool
    counts: dict = field(default_factory=dict)
    first_failed_job: str | None = None
    return_code: int | None = None
    stderr_tail: str | None = None
    cause: str | None = None           # why it failed, when the cause is plain (see _cause)


@dataclass
class FileResult:
    path: str
    format: str
    source: str | None
    kind: str | None
    accepted: bool
    jobs: int | None = None
    edges: int | None = None
    first_error: str | None = None
    first_error_field: str | None = None
    problem_count: int = 0
    fields: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run: RunResult | None = None


def _field_key(problem, fmt: str) -> str:
    """A stable name for what a problem is about: 'jobs.input_files', 'files', '<format json5>' ..."""
    msg = problem.message or ""
    fld = problem.field
    if fld is None:
        if fmt in ("json5", "kdl") and (msg.startswith(("invalid YAML", "invalid JSON", "invalid KDL"))
                                        or "must be a mapping" in msg):
            return f"<format {fmt}>"
        if msg.startswith(("invalid YAML", "invalid JSON", "invalid KDL")):
            return "<syntax>"
        return "<spec>"
    m = re.match(r"unknown key '([^']+)'", msg)
    base = re.sub(r"\[\d+\]", "", fld)
    if m and not base.endswith(m.group(1)):
        base = f"{base}.{m.group(1)}" if base else m.group(1)
    return f"jobs.{base}" if problem.job is not None and not base.startswith("jobs.") else base


def _base_dir_for(spec: Path, override: Path | None) -> Path:
    if override is not None:
        return override
    for parent in spec.parents:
        if parent.name == "examples":
            return parent.parent
    return spec.parent


def _read_index(root: Path) -> dict[str, dict] | None:
    index = root / "INDEX.tsv"
    if not index.is_file():
        return None
    with open(index, newline="") as f:
        return {row["local_file"]: row for row in csv.DictReader(f, delimiter="\t")}


def find_specs(roots: list[Path]) -> list[tuple[Path, dict | None]]:
    found: list[tuple[Path, dict | None]] = []
    for root in roots:
        index = _read_index(root) if root.is_dir() else None
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            if path.suffix.lower() not in SPEC_SUFFIXES:
                continue
            meta = None
            if index is not None:
                meta = index.get(path.relative_to(root).as_posix())
                if meta is None or meta.get("kind") not in SPEC_KINDS:
                    continue
            elif "parameter_tables" in path.parts or path.name == "INDEX.tsv":
                continue
            found.append((path, meta))
    return found


def check_file(path: Path, meta: dict | None, base_override: Path | None) -> FileResult:
    from torc_hpc.errors import SpecError
    from torc_hpc.spec import expand_workflow, load_spec

    fmt = SPEC_SUFFIXES[path.suffix.lower()]
    res = FileResult(path=str(path), format=fmt, source=(meta or {}).get("source_repo"),
                     kind=(meta or {}).get("kind"), accepted=False)
    base = _base_dir_for(path.resolve(), base_override)
    started = time.perf_counter()
    try:
        # Torc resolves relative paths (parameter tables, scripts) from the working directory.
        with contextlib.chdir(base):
            spec, locator = load_spec(path.resolve(), base_dir=base)
            wf = expand_workflow(spec, locator, str(path))
        res.accepted = True
        res.jobs = len(wf.jobs)
        res.edges = wf.edge_count
        res._expanded = wf
    except SpecError as e:
        problems = e.problems or []
        res.problem_count = len(problems)
        if problems:
            res.first_error = str(problems[0])
            res.first_error_field = _field_key(problems[0], fmt)
        res.fields = sorted({_field_key(p, fmt) for p in problems})
    except Exception as e:  # a crash is a torc-hpc bug worth seeing, not a rejection to hide
        res.first_error = f"CRASH {type(e).__name__}: {e}"
        res.first_error_field = "<crash>"
        res.fields = ["<crash>"]
    res.seconds = round(time.perf_counter() - started, 4)
    return res


# ---- --run: each accepted spec through `torc run` -----------------------------------------------------

def _machine() -> tuple[int, int]:
    import os

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return os.cpu_count() or 1, mem


def _needs(wf) -> tuple[bool, bool]:
    """(needs Slurm to do what it shows, asks for more than this machine has)."""
    cpus, mem = _machine()
    slurm = any(a.action_type == "schedule_nodes" for a in wf.actions)
    big = any(j.num_cpus > cpus or j.memory_bytes > mem or j.num_gpus > 0 for j in wf.jobs)
    return slurm, big


def _cause(rc: int | None, tail: str) -> str | None:
    """A plain reason for a failed job, when its stderr says it (the example's own programs missing,
    paths outside its directory, Torc's Python client); None when it is the job's own failure."""
    low = tail.lower()
    if "must exist before the workflow is created" in low:
        return "the example reads input files it does not ship (torc checks inputs at create)"
    if "unable to resolve host" in low or "could not resolve host" in low or "network is unreachable" in low:
        return "the example downloads from the network (none here)"
    if "no module named 'torc'" in low or "from torc import" in low:
        return "needs Torc's Python client (the REST API), which torc-hpc does not have"
    if rc == 127 or "command not found" in low or "can't open file" in low or "no such file or directory" in low:
        return "the example calls a program or file it does not ship"
    if "permission denied" in low or "read-only file system" in low:
        return "the example writes outside its directory (e.g. /data, /models)"
    if "modulenotfounderror" in low:
        return "the example needs a Python package that is not installed here"
    return None


def run_file(res: FileResult, base_override: Path | None, timeout_s: float) -> RunResult:
    """Run one accepted spec with `torc run` in a temporary copy of its base directory."""
    import os
    import shutil
    import subprocess
    import tempfile

    path = Path(res.path).resolve()
    base = _base_dir_for(path, base_override)
    slurm, big = _needs(res._expanded)
    with tempfile.TemporaryDirectory(prefix="torc-compat-run-") as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(base, work, symlinks=True)
        rel = path.relative_to(base)
        args = [sys.executable, "-m", "torc_hpc.cli.app", "run", str(rel), "--new", "--format", "json"]
        if big:
            args[5:5] = ["-j", "2"]
        env = dict(os.environ, TORC_NO_SLURM="1")
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        shown = "torc run " + (" -j 2 " if big else " ") + str(rel)
        started = time.perf_counter()
        try:
            proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return RunResult("timeout", shown, round(time.perf_counter() - started, 1), slurm)
        seconds = round(time.perf_counter() - started, 1)
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            tail = (proc.stderr or proc.stdout).strip()[-400:]
            return RunResult("create_error", shown, seconds, slurm, stderr_tail=tail, cause=_cause(None, tail))
        counts = {k: v for k, v in (summary.get("counts") or {}).items() if v}
        if proc.returncode == 0:
            return RunResult("completed", shown, seconds, slurm, counts=counts)
        out = RunResult("failed", shown, seconds, slurm, counts=counts)
        failed = (summary.get("failures") or {}).get("jobs") or []
        if failed:
            j = failed[0]
            tail = j.get("stderr_tail") or ""
            tail = "\n".join(tail) if isinstance(tail, list) else str(tail)
            out.first_failed_job, out.return_code, out.stderr_tail = j["name"], j.get("return_code"), tail[-300:]
            out.cause = _cause(out.return_code, tail)
        return out


def summarize(results: list[FileResult]) -> dict:
    def rate(rows):
        n = len(rows)
        ok = sum(r.accepted for r in rows)
        return {"accepted": ok, "total": n, "rate": round(ok / n, 4) if n else None}

    by_format = {fmt: rate([r for r in results if r.format == fmt])
                 for fmt in sorted({r.format for r in results})}
    by_source = {src: rate([r for r in results if r.source == src])
                 for src in sorted({r.source for r in results if r.source})}
    first = Counter(r.first_error_field for r in results if not r.accepted)
    anyp = Counter(f for r in results if not r.accepted for f in r.fields)
    runs = [r.run for r in results if r.run is not None]

    def ran(rows):
        return {"completed": sum(r.outcome == "completed" for r in rows), "total": len(rows),
                "by_outcome": dict(Counter(r.outcome for r in rows)),
                "causes": Counter(r.cause for r in rows if r.outcome != "completed" and r.cause).most_common()}

    run_summary = ({"without_slurm": ran([r for r in runs if not r.needs_slurm]),
                    "needing_slurm": ran([r for r in runs if r.needs_slurm])} if runs else None)
    return {
        "runs": run_summary,
        "overall": rate(results),
        "yaml_and_json": rate([r for r in results if r.format in ("yaml", "json")]),
        "by_format": by_format,
        "by_source": by_source,
        "first_error_fields": first.most_common(),
        "any_problem_fields": anyp.most_common(),
    }


def _pct(d: dict) -> str:
    if not d["total"]:
        return "-"
    return f"{d['accepted']}/{d['total']} ({100 * d['accepted'] / d['total']:.0f} %)"


def print_table(results: list[FileResult], summary: dict, out=sys.stdout) -> None:
    for r in results:
        if r.accepted:
            print(f"ACCEPTED  {r.format:5}  {r.path}  ({r.jobs} jobs, {r.edges} edges)", file=out)
            if r.run is not None:
                x = r.run
                why = f"; {x.first_failed_job} exited {x.return_code}" if x.first_failed_job else ""
                print(f"          run: {x.outcome.upper()} in {x.seconds}s ({x.command}){why}"
                      + (f" — {x.cause}" if x.cause else "") + (" [needs Slurm]" if x.needs_slurm else ""),
                      file=out)
        else:
            print(f"REJECTED  {r.format:5}  {r.path}\n          first error: {r.first_error}", file=out)
    print("\nAcceptance", file=out)
    for fmt, d in summary["by_format"].items():
        print(f"  {fmt:14} {_pct(d)}", file=out)
    print(f"  {'yaml+json':14} {_pct(summary['yaml_and_json'])}", file=out)
    print(f"  {'all formats':14} {_pct(summary['overall'])}", file=out)
    if summary["by_source"]:
        print("\nBy source", file=out)
        for src, d in summary["by_source"].items():
            print(f"  {src:22} {_pct(d)}", file=out)
    if summary.get("runs"):
        print("\nRuns with torc run (accepted specs)", file=out)
        for label, key in (("without Slurm", "without_slurm"), ("needing Slurm", "needing_slurm")):
            d = summary["runs"][key]
            if d["total"]:
                print(f"  {label:14} {d['completed']}/{d['total']} completed  {d['by_outcome']}", file=out)
                for cause, n in d["causes"]:
                    print(f"      {n:3}  {cause}", file=out)
    print("\nFields behind rejections (first error of each rejected file)", file=out)
    for name, n in summary["first_error_fields"]:
        print(f"  {n:4}  {name}", file=out)
    print("\nFields behind rejections (any problem; a file counts once per field)", file=out)
    for name, n in summary["any_problem_fields"]:
        print(f"  {n:4}  {name}", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="directories (searched recursively) or spec files")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    ap.add_argument("--base-dir", type=Path, default=None,
                    help="directory relative paths in specs are resolved from (default: see module doc)")
    ap.add_argument("--kind", action="append", default=None,
                    help="only INDEX.tsv rows of this kind (example, doc-spec); repeatable")
    ap.add_argument("--source", action="append", default=None,
                    help="only INDEX.tsv rows from this source repository; repeatable")
    ap.add_argument("--run", action="store_true",
                    help="also run each accepted spec with `torc run` (needs TORC_DATABASE_URL: a scratch database)")
    ap.add_argument("--run-timeout", type=float, default=300, help="seconds per spec for --run (default 300)")
    args = ap.parse_args(argv)

    for p in args.paths:
        if not p.exists():
            ap.error(f"{p} does not exist")
    specs = find_specs(args.paths)
    if args.kind:
        specs = [(p, m) for p, m in specs if m and m.get("kind") in args.kind]
    if args.source:
        specs = [(p, m) for p, m in specs if m and m.get("source_repo") in args.source]
    base = args.base_dir.resolve() if args.base_dir else None
    results = [check_file(p, m, base) for p, m in specs]
    if args.run:
        import os

        if not os.environ.get("TORC_DATABASE_URL"):
            ap.error("--run needs TORC_DATABASE_URL (a scratch database: each spec creates a workflow there)")
        for r in results:
            if r.accepted:
                r.run = run_file(r, base, args.run_timeout)
                print(f"ran {Path(r.path).name}: {r.run.outcome}", file=sys.stderr, flush=True)
    for r in results:
        r.__dict__.pop("_expanded", None)
    summary = summarize(results)
    if args.json:
        json.dump({"files": [asdict(r) for r in results], **summary}, sys.stdout, indent=2)
        print()
    else:
        print_table(results, summary)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())

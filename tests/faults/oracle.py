"""An oracle for fault-injection tests: every job and recovery script appends START/END lines to one
file under `flock`, so what really ran can be compared with what torc recorded in `results`.

Lines: `START job attempt run`, `END job attempt run rc`, `RSTART job attempt run`, `REND job attempt run rc`.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

# A job: START, sleep a little (deterministic per job and attempt), maybe fail, END. $1: exit code on
# attempt 1 (0: never fails); $2: tenths of a second to sleep.
JOB = textwrap.dedent("""\
    #!/usr/bin/env bash
    note() { flock oracle.lock bash -c 'echo "$1" >> oracle.txt' _ "$1"; }
    note "START $TORC_JOB_NAME $TORC_ATTEMPT_ID $TORC_RUN_ID"
    sleep "0.$2"
    rc=0
    if [ "$TORC_ATTEMPT_ID" = 1 ] && [ "$1" != 0 ]; then rc=$1; fi
    note "END $TORC_JOB_NAME $TORC_ATTEMPT_ID $TORC_RUN_ID $rc"
    exit $rc
    """)
RECOVERY = textwrap.dedent("""\
    #!/usr/bin/env bash
    note() { flock oracle.lock bash -c 'echo "$1" >> oracle.txt' _ "$1"; }
    note "RSTART $TORC_JOB_NAME $TORC_ATTEMPT_ID $TORC_RUN_ID"
    sleep 0.2
    note "REND $TORC_JOB_NAME $TORC_ATTEMPT_ID $TORC_RUN_ID 0"
    """)


def dag_spec(name: str, width: int, seed: int) -> str:
    """A three-stage DAG: `width` first jobs (some fail on attempt 1 with 10, retried after a recovery
    script, some with 11, retried without), width/2 joins, one final job. Every job has the handler, whose
    last rule retries what a lost worker leaves (154)."""
    import random

    rng = random.Random(seed)
    lines = [f"name: {name}", "failure_handlers:", "  - name: h", "    rules:",
             "      - {exit_codes: [10], recovery_script: ./recover.sh, max_retries: 6}",
             "      - {exit_codes: [11], max_retries: 6}",
             "      - {exit_codes: [154], max_retries: 12}", "jobs:"]
    for i in range(width):
        fail = rng.choice([0, 0, 10, 11])
        lines.append(f"  - {{name: a_{i}, command: './job.sh {fail} {rng.randint(1, 6)}', failure_handler: h}}")
    for k in range(width // 2):
        lines.append(f"  - {{name: b_{k}, command: './job.sh 0 {rng.randint(1, 4)}', failure_handler: h, "
                     f"depends_on: [a_{2 * k}, a_{2 * k + 1}]}}")
    lines.append(f"  - {{name: c, command: './job.sh 0 1', failure_handler: h, "
                 f"depends_on: [{', '.join(f'b_{k}' for k in range(width // 2))}]}}")
    return "\n".join(lines) + "\n"


def write_scripts(torc) -> None:
    torc.write("job.sh", JOB, executable=True)
    torc.write("recover.sh", RECOVERY, executable=True)


def read(cwd: Path) -> list[list[str]]:
    path = cwd / "oracle.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def compare(lines: list[list[str]], results: list[dict], *, exact: bool = False) -> dict:
    """Check torc's records against what ran. Returns counts; raises AssertionError on any violation:

    - no attempt ran twice (a (job, run, attempt) STARTs at most once), no recovery script ran twice;
    - nothing lost: every attempt that STARTed has exactly one result row;
    - every result is true: a recorded exit matches the END line, or is 154 (the worker died before it
      could record the end; the job may have finished meanwhile) — with `exact`, only the END's code;
    - a result without a START line is a job the dead worker had started whose first line never got
      written (154 only)."""
    starts = Counter((w[1], int(w[3]), int(w[2])) for w in lines if w[0] == "START")
    ends = {(w[1], int(w[3]), int(w[2])): int(w[4]) for w in lines if w[0] == "END"}
    rstarts = Counter((w[1], int(w[3]), int(w[2])) for w in lines if w[0] == "RSTART")
    twice = [k for k, n in starts.items() if n > 1]
    assert not twice, f"attempts that ran twice: {twice}"
    assert not [k for k, n in rstarts.items() if n > 1], f"recovery scripts that ran twice: {rstarts}"
    recorded = Counter((r["job_name"], r["run_id"], r["attempt_id"]) for r in results)
    assert not [k for k, n in recorded.items() if n > 1], f"attempts recorded twice: {recorded}"
    lost = [k for k in starts if k not in recorded]
    assert not lost, f"attempts that ran but have no result: {lost}"
    by_key = {(r["job_name"], r["run_id"], r["attempt_id"]): r for r in results}
    for k, r in by_key.items():
        if k not in starts:
            assert r["return_code"] == 154 and r["status"] == "terminated", (k, r)
        elif k in ends:
            ok = {ends[k]} if exact else {ends[k], 154}
            assert r["return_code"] in ok, (k, r, ends[k])
        else:   # started, killed before its END
            assert r["return_code"] != 0 and r["status"] == "terminated", (k, r)
    return {"attempts": len(starts), "results": len(results), "recoveries": len(rstarts),
            "recorded_without_start": len([k for k in by_key if k not in starts])}

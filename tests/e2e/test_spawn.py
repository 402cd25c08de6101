"""`torc jobs spawn` (Torc's dynamic_jobs) run by real jobs under `torc run`: a lineage spawns work and its
own next generation until it converges; a repeated call changes nothing; the cap stops a lineage."""

from __future__ import annotations

import os
import sys

import yaml

from torc_hpc.db import Database

ORCH = r"""#!/bin/bash
set -e
g=$1
if [ "$g" -ge "$LAST" ]; then
  torc jobs spawn --lineage caseA --jobs '[]' --state "{\"final\": $g}"
  exit 0
fi
n=$((g + 1))
batch="[{\"name\": \"work_$n\", \"command\": \"echo $n > w$n.txt\", \"resource_requirements\": \"tiny\"},
        {\"name\": \"orch_g$n\", \"command\": \"bash orch.sh $n\", \"depends_on\": [\"work_$n\"]}]"
torc jobs spawn --lineage caseA --state "{\"g\": $n}" --jobs "$batch"
torc jobs spawn --lineage caseA --state "{\"g\": $n}" --jobs "$batch" > repeat_$n.txt   # a retried call
"""


def _setup(torc, max_iterations: int, last: int) -> None:
    torc.write("orch.sh", ORCH)
    torc.write("wf.yaml", yaml.safe_dump({
        "name": "spawning", "dynamic_jobs": {"max_iterations": max_iterations},
        "resource_requirements": [{"name": "tiny", "num_cpus": 1, "memory": "10m", "runtime": "PT1M"}],
        "jobs": [{"name": "orch_g0", "command": "bash orch.sh 0"}]}))
    torc.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + torc.env.get("PATH", "")
    torc.env["LAST"] = str(last)


def test_a_lineage_spawns_until_it_converges(torc):
    _setup(torc, max_iterations=3, last=3)
    torc("run", "wf.yaml", timeout=180)
    wf = torc.json("workflows", "list")[0]["id"]
    assert torc.json("workflows", "status", wf)["counts"] == {"completed": 7}
    assert [(torc.cwd / f"w{n}.txt").read_text() for n in (1, 2, 3)] == ["1\n", "2\n", "3\n"]
    assert all("nothing changed" in (torc.cwd / f"repeat_{n}.txt").read_text() for n in (1, 2, 3))
    show = torc.json("workflows", "show", wf)
    [lineage] = show["lineages"]
    assert (lineage["lineage"], lineage["iterations"], lineage["state"]) == ("caseA", 3, {"final": 3})
    assert lineage["converged_at"] is not None
    with Database(torc.url) as db:
        spawned = db.conn.execute("SELECT j.name, e.detail FROM events e JOIN jobs j ON j.id = e.job_id "
                                  "WHERE e.workflow_id = %s AND e.kind = 'spawned' ORDER BY j.id", (wf,)).fetchall()
        assert [r["name"] for r in spawned] == ["work_1", "orch_g1", "work_2", "orch_g2", "work_3", "orch_g3"]
        assert [r["detail"]["iteration"] for r in spawned] == [1, 1, 2, 2, 3, 3]
        envs = {r["name"]: r["env"] for r in db.conn.execute(
            "SELECT name, env, memory_bytes FROM jobs WHERE workflow_id = %s", (wf,)).fetchall()}
        assert envs["orch_g0"] is None
        assert envs["work_2"] == {"TORC_ORCHESTRATOR_LINEAGE_ID": "caseA", "TORC_ORCHESTRATOR_GENERATION": "2"}
        edges = {(r["p"], r["c"]) for r in db.conn.execute(
            "SELECT p.name AS p, c.name AS c FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id "
            "JOIN jobs c ON c.id = d.child_id WHERE d.workflow_id = %s", (wf,)).fetchall()}
        assert {("orch_g0", "work_1"), ("orch_g0", "orch_g1"), ("work_1", "orch_g1")} <= edges


def test_the_cap_stops_a_lineage_and_says_why(torc):
    _setup(torc, max_iterations=2, last=5)
    torc("run", "wf.yaml", check=False, timeout=180)
    wf = torc.json("workflows", "list")[0]["id"]
    jobs = {j["name"]: j["status"] for j in torc.json("jobs", "list", wf)}
    assert jobs == {"orch_g0": "completed", "work_1": "completed", "orch_g1": "completed",
                    "work_2": "completed", "orch_g2": "failed"}
    failures = torc.json("workflows", "status", wf)
    err = (torc.cwd / "torc_output" / "job_stdio").glob("job_wf*_r1_a*.e")
    assert any("its cap (dynamic_jobs.max_iterations)" in p.read_text() for p in err)
    assert failures["counts"] == {"completed": 4, "failed": 1}


def test_spawning_needs_a_running_job_and_the_default_cap_is_torcs(torc):
    torc.write("wf.yaml", yaml.safe_dump({"name": "plain", "jobs": [
        {"name": "a", "command": "torc jobs spawn --lineage x --jobs '[{\"name\": \"b\", \"command\": \"true\"}]'"}]}))
    torc.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + torc.env.get("PATH", "")
    torc("run", "wf.yaml", timeout=60)          # no dynamic_jobs in the spec: Torc lets it spawn anyway
    wf = torc.json("workflows", "list")[0]["id"]
    assert {j["name"]: j["status"] for j in torc.json("jobs", "list", wf)} == {"a": "completed", "b": "completed"}
    assert torc.json("workflows", "show", wf)["dynamic_max_iterations"] == 1000
    job = torc.json("jobs", "list", wf)[0]["id"]
    out = torc("jobs", "spawn", "--workflow", wf, "--job", job, "--lineage", "x", "--jobs", "[]", check=False)
    assert out.returncode != 0 and "is completed: only a running job spawns jobs" in out.stderr

"""A worker serving several workflows serves only its owner's (issue 11 item 5): `torc worker --all-mine`
as bob never touches alice's workflow, `--workflows` naming hers is refused before anything is registered,
and so is the cluster watcher's role, which may read every owner's workflows but owns none of them."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from tests.helpers import create
from tests.security.conftest import role_url


def _torc(url: str, cwd, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, TORC_DATABASE_URL=url, TORC_NO_SLURM="1")
    return subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_worker_serves_only_its_owners_workflows(cluster_db, tmp_path):
    from torc_hpc.db import Database

    pg = cluster_db
    with Database(role_url(pg, "alice")) as alice, Database(role_url(pg, "bob")) as bob:
        hers = create(alice, {"name": "hers", "jobs": [{"name": "a_{i}", "command": "true", "parameters": {"i": "1:3"}}]},
                      working_dir=str(tmp_path))
        his = create(bob, {"name": "his", "jobs": [{"name": "b_{i}", "command": "true", "parameters": {"i": "1:2"}}]},
                     working_dir=str(tmp_path))
    out = _torc(role_url(pg, "bob"), tmp_path, "worker", "--all-mine", "--idle-timeout", "10")
    assert out.returncode == 0, out.stderr
    refused = _torc(role_url(pg, "bob"), tmp_path, "worker", "--workflows", f"{his},{hers}")
    assert refused.returncode == 3 and f"workflow(s) {hers} do not exist or are not yours" in refused.stderr
    watcher = _torc(role_url(pg, "watch"), tmp_path, "worker", "--workflows", str(hers))
    assert watcher.returncode == 3 and "not yours" in watcher.stderr, watcher.stderr
    with psycopg.connect(pg.url("torc"), autocommit=True) as owner:   # the schema owner sees everything
        status = dict(owner.execute("SELECT workflow_id, string_agg(DISTINCT status::text, ',') FROM jobs "
                                    "WHERE workflow_id IN (%s, %s) GROUP BY 1", (hers, his)).fetchall())
        rows = owner.execute("SELECT workflow_id FROM workers WHERE workflow_id IN (%s, %s)", (hers, his)).fetchall()
    assert status == {hers: "ready", his: "completed"}
    assert rows == [(his,)]   # one registration, bob's, for his own workflow

"""Dataset finalization under `torc run` (Torc's datasets): once every writer finished, a worker records the
directory's file count, size and fingerprint (manifest or content), once, with an event; a dataset whose
writer failed is not fingerprinted and says why."""

from __future__ import annotations

import hashlib
import os

import yaml

from torc_hpc.db import Database

SPEC = {
    "name": "datasets_final",
    "datasets": [{"name": "shards", "path": "out/shards/", "hash_mode": "manifest"},
                 {"name": "blobs", "path": "out/blobs", "hash_mode": "content"},
                 {"name": "broken", "path": "out/broken", "hash_mode": "manifest"}],
    "jobs": [
        {"name": "write_{p}", "command": "mkdir -p out/shards out/blobs && echo {p} > out/shards/{p}.txt && "
                                         "printf 'blob{p}' > out/blobs/b{p}.bin",
         "parameters": {"p": "1:3"}, "output_datasets": ["shards", "blobs"]},
        {"name": "read_all", "command": "cat out/shards/*.txt", "input_datasets": ["shards"]},
        {"name": "bad_writer", "command": "mkdir -p out/broken && exit 3", "output_datasets": ["broken"]},
    ]}


def _manifest(root):
    lines = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            lines.append(f"{os.path.relpath(p, root)}\t{st.st_size}\t{st.st_mtime_ns}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def test_datasets_are_fingerprinted_once_their_writers_finish(torc):
    torc.write("wf.yaml", yaml.safe_dump(SPEC))
    torc("run", "wf.yaml", check=False, timeout=120)
    wf = torc.json("workflows", "list")[0]["id"]
    ds = {d["name"]: d for d in torc.json("workflows", "show", wf)["datasets"]}
    assert (ds["shards"]["file_count"], ds["shards"]["total_bytes"]) == (3, 6)
    assert ds["shards"]["digest"] == _manifest(torc.cwd / "out/shards")
    blob_lines = sorted(f"b{p}.bin\t{hashlib.sha256(f'blob{p}'.encode()).hexdigest()}\n" for p in (1, 2, 3))
    assert ds["blobs"]["digest"] == hashlib.sha256("".join(blob_lines).encode()).hexdigest()
    assert ds["broken"]["finalized_at"] is None and ds["broken"]["digest"] is None
    assert (ds["shards"]["writers"], ds["shards"]["readers"]) == (3, 1)
    with Database(torc.url) as db:
        ev = db.conn.execute("SELECT kind, detail FROM events WHERE workflow_id = %s AND kind LIKE 'dataset%%' "
                             "ORDER BY id", (wf,)).fetchall()
        assert sorted((e["kind"], e["detail"]["dataset"]) for e in ev) == [
            ("dataset_finalized", "blobs"), ("dataset_finalized", "shards"), ("dataset_not_finalized", "broken")]
        note = next(e["detail"]["note"] for e in ev if e["detail"]["dataset"] == "broken")
        assert note == "1 of its 1 writer(s) did not complete"
        # torc's own actions are not the spec's: `workflows show` lists none
        assert torc.json("workflows", "show", wf)["actions"] == []

"""Wake-ups are private: a workflow's "jobs became ready" NOTIFY goes to a channel named by a random token that
only those who may read the workflow can see (migration 0021). Before, the channel was torc_ready_<id>, so any
role could LISTEN on it (learning when someone else's jobs became ready) or NOTIFY it (waking their idle
workers at will)."""

from __future__ import annotations

import re

import psycopg

from tests.helpers import create
from tests.security.conftest import role_url
from torc_hpc.db import Database


def _heard(conn: psycopg.Connection, within_s: float = 1.0) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=within_s, stop_after=1)]


def test_only_the_workflows_readers_know_its_channel_and_hear_it(cluster_db):
    with Database(role_url(cluster_db, "alice"), migrate=False) as alice:
        wf = create(alice, {"name": "private_wakeups", "jobs": [{"name": "a", "command": "true"}]})
        other = create(alice, {"name": "second", "jobs": [{"name": "a", "command": "true"}]})
        channel = alice.one("notify_channel", workflow_id=wf)["notify_channel"]
        assert re.fullmatch(r"torc_ready_[0-9a-f]{32}", channel)
        assert channel != alice.one("notify_channel", workflow_id=other)["notify_channel"]

        with psycopg.connect(role_url(cluster_db, "bob"), autocommit=True) as bob, \
             psycopg.connect(role_url(cluster_db, "alice"), autocommit=True) as alices_worker:
            # bob cannot read the channel (row-level security), nor set it, and the old name is silent
            assert bob.execute("SELECT notify_channel FROM workflows WHERE id = %s", (wf,)).fetchall() == []
            try:
                bob.execute("UPDATE workflows SET notify_channel = 'torc_ready_x' WHERE id = %s", (wf,))
            except psycopg.errors.InsufficientPrivilege:
                pass
            assert alice.one("notify_channel", workflow_id=wf)["notify_channel"] == channel
            bob.execute(f"LISTEN torc_ready_{wf}")
            alice.listen_ready(wf, alices_worker)
            alice.notify_ready(wf)
            assert _heard(alices_worker) == [channel]
            assert _heard(bob, 0.3) == []

            # and nobody but the owner (or the watcher) can write the column, not even alice herself
            try:
                alices_worker.execute("UPDATE workflows SET notify_channel = 'torc_ready_1' WHERE id = %s", (wf,))
                written = True
            except psycopg.errors.InsufficientPrivilege:
                written = False
            assert not written
    with Database(role_url(cluster_db, "watch"), migrate=False) as watcher:   # the watcher's view may wake on it
        assert watcher.one("notify_channel", workflow_id=wf)["notify_channel"] == channel

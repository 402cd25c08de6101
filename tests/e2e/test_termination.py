"""Torc's termination settings (execution_config) at the end of an allocation: the job gets
termination_signal sigterm_lead_seconds before SIGKILL, which comes sigkill_headroom_seconds before the end,
and the attempt is recorded with timeout_exit_code. A worker with an end time, run in this process."""

import time

from torc_hpc.db import Database
from torc_hpc.worker.loop import Worker, WorkerConfig
from torc_hpc.worker.resources import Resources
from tests.helpers import create


def test_termination_signal_lead_headroom_and_timeout_code(db_url, tmp_path):
    script = tmp_path / "stubborn.sh"
    script.write_text("#!/usr/bin/env bash\n"
                      "trap 'date +%s.%N > got_usr1.txt' USR1\n"
                      "while true; do sleep 0.1; done\n")
    script.chmod(0o755)
    with Database(db_url) as db:
        wf = create(db, {"name": "term", "execution_config": {
            "termination_signal": "SIGUSR1", "sigterm_lead_seconds": 2, "sigkill_headroom_seconds": 1,
            "timeout_exit_code": 124, "limit_resources": False},
            "jobs": [{"name": "stubborn", "command": "./stubborn.sh", "resource_requirements": {"runtime": "PT1S"}}]},
            working_dir=str(tmp_path))
    end = time.time() + 6
    cfg = WorkerConfig(workflow_id=wf, database_url=db_url, resources=Resources(cpus=2, memory_bytes=2**32),
                       end_time=end, walltime_buffer_s=60, exit_when_done=True, kill_grace_s=30,
                       output_dir=str(tmp_path / "out"))
    summary = Worker(cfg).run()
    stopped = time.time()
    assert summary.stop_reason == "walltime"
    got = float((tmp_path / "got_usr1.txt").read_text())
    # the signal came lead + headroom (3 s) before the end, SIGKILL lead (2 s) later, before the end
    assert end - 3 - 0.5 <= got <= end - 3 + 1.0, (end - got)
    assert got + 1.8 <= stopped <= end, (stopped - got, end - stopped)
    with Database(db_url) as db:
        r = db.conn.execute("SELECT return_code, status::text AS status FROM results WHERE workflow_id = %s",
                            (wf,)).fetchone()
    assert r == {"return_code": 124, "status": "terminated"}

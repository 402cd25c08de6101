"""bench/pgcpu.py counts the CPU of backends that exit inside the window (a worker leaving closes its
connections), and leaves out what a backend had used before the window and the excluded pids."""

import pytest

from bench.pgcpu import TICK, ServerCpu, _stat, postmaster_pid
from tests.pgserver import PrivatePostgres, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

BURN = "SELECT count(*) FROM generate_series(1, 3000000)"


def test_exited_backends_are_counted_and_earlier_cpu_is_not():
    with PrivatePostgres() as pg:
        early = pg.admin()                       # burns before the window, then again inside it, then leaves
        early_pid = early.execute("SELECT pg_backend_pid()").fetchone()[0]
        early.execute(BURN)
        before = sum(_stat(early_pid)[:2])
        monitor = pg.admin()
        monitor_pid = monitor.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = ServerCpu(postmaster_pid(pg.data), exclude=(monitor_pid,)).start()
        late = pg.admin()                        # born and gone inside the window
        late_pid = late.execute("SELECT pg_backend_pid()").fetchone()[0]
        late.execute(BURN)
        early.execute(BURN)
        late_ticks = sum(_stat(late_pid)[:2])
        early_inside = sum(_stat(early_pid)[:2]) - before
        late.close()
        early.close()
        monitor.execute(BURN)                    # excluded
        monitor_ticks = sum(_stat(monitor_pid)[:2])
        import time

        deadline = time.monotonic() + 10         # the postmaster reaps both backends
        while (_stat(late_pid) or _stat(early_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        report = cpu.stop()
        monitor.close()
        assert report.exited_clients == 2
        inside = (late_ticks + early_inside) / TICK
        assert report.client_s >= inside > 0
        # Nothing from before the window, nothing from the excluded monitor: each burned more than the
        # slack allowed here for the exiting backends' last ticks (the exits themselves).
        slack = 0.1
        assert before / TICK > slack and monitor_ticks / TICK > slack
        assert report.client_s <= inside + slack

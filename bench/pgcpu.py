"""PostgreSQL's own CPU time, from /proc, for benchmarks on a private server (tests/pgserver.py).

`ServerCpu` reads utime+stime of the postmaster and of every child process (backends, checkpointer,
walwriter, autovacuum, ...) at start() and stop(), and samples the children every `interval_s` in between
so it knows what each backend was and how much CPU it had used when last seen. Backends that exit during
the window are counted exactly: the postmaster reaps its children, so its cutime+cstime grows by each
exited child's whole lifetime CPU; subtracting what those children had already used at start() leaves
exactly their CPU inside the window. Only the split of that exact total between client backends and
exited background workers (autovacuum workers) leans on the samples: an exited autovacuum worker's last
`interval_s` is counted as client time (an overcount of the clients of at most that, per such worker).

`client` is the CPU of client backends (every connection to the server: torc's workers, CLI, watcher),
minus the pids passed as `exclude` (the benchmark's own monitoring connection). `server` is everything:
postmaster, background processes and clients.

Also here: a private server with the durability settings of the machine's server, for benchmarks.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
_CLIENT = re.compile(r"^postgres: \S+ \S+ (\[local\]|\S+\(\d+\))")

# What the machine's shared server runs with (checked with SHOW on 127.0.0.1:5432): durable commits.
MACHINE_LIKE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "shared_buffers": "128MB"}


def _stat(pid: int) -> tuple[int, int, int, int] | None:
    """utime, stime, cutime, cstime in clock ticks (None if the process is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()   # after "(comm)": field 3 onwards
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _kind(pid: int) -> str | None:
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    return "client" if _CLIENT.match(title) else (title.removeprefix("postgres: ") or "?")


def _children(ppid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{ppid}/task/{ppid}/children").read_text().split()]
    except OSError:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    raw = Path(f"/proc/{d}/stat").read_bytes()
                except OSError:
                    continue
                if int(raw[raw.rindex(b")") + 2:].split()[1]) == ppid:
                    out.append(int(d))
        return out


def postmaster_pid(data_dir: Path) -> int:
    return int((Path(data_dir) / "postmaster.pid").read_text().split()[0])


@dataclass
class _Seen:
    kind: str
    base: int          # ticks at start() (0 if born later)
    last: int          # ticks when last seen


@dataclass
class CpuReport:
    client_s: float
    server_s: float
    exited_clients: int
    live_clients: int
    by_kind: dict = field(default_factory=dict)


class ServerCpu:
    def __init__(self, postmaster: int, *, exclude: tuple[int, ...] = (), interval_s: float = 0.1):
        self.postmaster = postmaster
        self.exclude = set(exclude)
        self.interval_s = interval_s
        self._seen: dict[int, _Seen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _sample(self, *, at_start: bool = False) -> set[int]:
        alive = set()
        for pid in _children(self.postmaster):
            st = _stat(pid)
            if st is None:
                continue
            ticks = st[0] + st[1]
            alive.add(pid)
            with self._lock:
                s = self._seen.get(pid)
                if s is None:
                    kind = _kind(pid)
                    if kind is None:
                        continue
                    self._seen[pid] = _Seen(kind, ticks if at_start else 0, ticks)
                else:
                    s.last = ticks
                    if s.kind != "client":  # a backend's title is set after fork; look again until it is
                        s.kind = _kind(pid) or s.kind
        return alive

    def start(self) -> "ServerCpu":
        self._pm0 = _stat(self.postmaster)
        self._sample(at_start=True)
        self._thread = threading.Thread(target=self._run, daemon=True, name="pgcpu")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def stop(self) -> CpuReport:
        self._stop.set()
        if self._thread:
            self._thread.join()
        alive = self._sample()
        pm1 = _stat(self.postmaster)
        pm0 = self._pm0
        exited_exact = (pm1[2] + pm1[3]) - (pm0[2] + pm0[3])      # whole lifetimes of children reaped meanwhile
        by_kind: dict[str, float] = {}
        client = 0
        exited_nonclient = 0
        exited_clients = 0
        live_clients = 0
        for pid, s in self._seen.items():
            if pid in alive:
                if pid in self.exclude:
                    continue
                d = s.last - s.base
                kind = "client" if s.kind == "client" else s.kind.split()[0]
                if kind == "client":
                    client += d
                    live_clients += 1
                by_kind[kind] = by_kind.get(kind, 0) + d
            else:
                exited_exact -= s.base                             # its CPU before the window is not ours
                if s.kind == "client":
                    exited_clients += 1
                else:
                    exited_nonclient += s.last - s.base
        # Exited children: exact in total; split by the samples (short-lived parallel workers that were
        # never sampled count as clients' here: they work for a client's query anyway).
        client += exited_exact - exited_nonclient
        by_kind["exited client backends (and unsampled helpers)"] = exited_exact - exited_nonclient
        by_kind["exited background or parallel workers (sampled)"] = exited_nonclient
        by_kind["postmaster"] = (pm1[0] + pm1[1]) - (pm0[0] + pm0[1])
        server = sum(by_kind.values())
        return CpuReport(client_s=client / TICK, server_s=server / TICK, exited_clients=exited_clients,
                         live_clients=live_clients, by_kind={k: v / TICK for k, v in by_kind.items()})


@contextmanager
def private_server(settings: dict[str, str] | None = None):
    """A private PostgreSQL (tests/pgserver.py) for one benchmark, with the machine's durability settings
    unless `settings` overrides them. Raises SystemExit with the reason when one cannot run here."""
    from tests.pgserver import PrivatePostgres, unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"this benchmark needs a private PostgreSQL: {reason}")
    with PrivatePostgres(settings={**MACHINE_LIKE, **(settings or {})}) as pg:
        yield pg


def migrated_database(pg, name: str) -> str:
    """A new, migrated database on the private server; returns its URL."""
    import psycopg

    from torc_hpc.db import migrate as migrations

    pg.create_database(name)
    url = pg.url(name)
    with psycopg.connect(url, autocommit=True) as c:
        migrations.migrate(c)
    return url

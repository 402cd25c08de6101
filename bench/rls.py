"""7. What row-level security costs on the hot paths: `python -m bench rls [ROUNDS] [E2E_JOBS] [CLAIM_JOBS]`.

One private PostgreSQL (the machine's binaries, tests/pgserver.py) serves both sides, so only the role
differs: the schema owner (bypasses row-level security, like a single-user setup) and a role granted with
`torc db grant` (every policy evaluated, as on a shared cluster database). In alternating rounds it runs
the claims benchmark (claim + completion batches, no processes) and the torc phase of the e2e benchmark
(`torc run` of N `/bin/true` jobs), and reports the medians and granted/owner ratios (target ≥ 0.9).
It also reports the PostgreSQL CPU per 1,000 jobs the claims phase cost (client backends, from /proc:
bench/pgcpu.py), and its owner/granted ratio: on a shared machine far less noisy than jobs/s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

from bench.common import emit

ROLE = "torc_bench_user"


def main(rounds: int = 3, e2e_jobs: int = 5_000, claim_jobs: int = 50_000) -> dict:
    from bench import claims, e2e
    from bench.pgcpu import ServerCpu, postmaster_pid
    from tests.pgserver import PrivatePostgres, unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"bench rls needs a private PostgreSQL: {reason}")
    per = {"claims": {"owner": [], "granted": []}, "e2e": {"owner": [], "granted": []}}
    cpu = {"owner": [], "granted": []}   # PostgreSQL CPU ms per 1,000 jobs of the claims phase
    saved = {k: os.environ.get(k) for k in ("TORC_BENCH_ADMIN_URL", "TORC_BENCH_ROLE")}
    with PrivatePostgres(settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                                   "shared_buffers": "256MB"}) as pg:
        with pg.admin() as c:
            c.execute(f"CREATE ROLE {ROLE} LOGIN")
        os.environ["TORC_BENCH_ADMIN_URL"] = pg.url()
        try:
            for r in range(rounds):
                order = ("owner", "granted") if r % 2 == 0 else ("granted", "owner")
                for who in order:
                    if who == "granted":
                        os.environ["TORC_BENCH_ROLE"] = ROLE
                    else:
                        os.environ.pop("TORC_BENCH_ROLE", None)
                    c = claims.main(claim_jobs, 2, 256, cpu_meter=lambda: ServerCpu(postmaster_pid(pg.data)).start())
                    per["claims"][who].append(c["value"])
                    cpu[who].append(c["postgres_cpu_ms_per_1000_jobs"])
                    with tempfile.TemporaryDirectory(prefix="torc-bench-rls-") as d:
                        e2e.settle()
                        per["e2e"][who].append(e2e.torc(e2e_jobs, d)[0])
                    print(f"# round {r + 1}/{rounds} {who}: claims {per['claims'][who][-1]:.0f} jobs/s "
                          f"({cpu[who][-1]:.0f} ms of PostgreSQL CPU per 1,000 jobs), "
                          f"e2e {per['e2e'][who][-1]:.0f} jobs/s", file=sys.stderr)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    med = {b: {w: statistics.median(v) for w, v in per[b].items()} for b in per}
    ratios = {b: med[b]["granted"] / med[b]["owner"] for b in med}
    cpu_med = {w: statistics.median(v) for w, v in cpu.items()}
    return emit({"name": "rls_overhead", "value": ratios["e2e"], "unit": "granted/owner (e2e)",
                 "peer": "the schema owner, same server", "peer_value": 1.0, "ratio": ratios["e2e"],
                 "target": "granted/owner ≥ 0.9 for e2e and claims", "claims_ratio": ratios["claims"],
                 "claims_postgres_cpu_ms_per_1000_jobs": cpu_med,
                 "claims_cpu_ratio": cpu_med["owner"] / cpu_med["granted"],
                 "cpu_rounds": cpu,
                 "medians": med, "rounds": per, "e2e_jobs": e2e_jobs, "claim_jobs": claim_jobs,
                 "meets_target": min(ratios.values()) >= 0.9})


if __name__ == "__main__":
    main()

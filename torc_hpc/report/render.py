"""The report as one HTML file: a pure function of ReportData. Charts are inline SVG, styled by one <style>
block; nothing is loaded from anywhere, and the file opens the same offline, from a mail attachment or
from a cluster's home directory.

Why plain SVG instead of a plotting library: the charts here are rectangles, dots and lines; Plotly's
bundle alone is ~3.5 MB and Vega's ~0.8 MB per file, and both draw with JavaScript, so the page is empty
without it. Inline SVG costs ~80 bytes per timeline bar, needs no script, prints, and every bar is a DOM
element a test (or a person with the inspector) can count.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from html import escape

from torc_hpc.core.units import human_bytes, human_duration
from torc_hpc.limits import DAG_DRAW_MAX_JOBS, REPORT_MAX_SERIES, REPORT_SERIES_POINTS
from torc_hpc.plan import levels
from torc_hpc.report.data import Attempt, ReportData

MAX_SUBROWS = 48          # rows of overlapping bars per timeline lane (beyond: bars share the last row)
MAX_STAGES_DRAWN = 200    # stages listed for a large DAG (then how many more)
SCATTER_MAX_POINTS = 20_000   # distinct pixels per resource plot (points on the same pixel are drawn once)

CSS = """
:root{--ok:#2f9e44;--fail:#e03131;--term:#f08c00;--retried:#fab005;--run:#1c7ed6;--pend:#ae3ec9;
--cancel:#adb5bd;--ink:#212529;--dim:#868e96;--line:#dee2e6;--bg:#fff}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--ink);background:var(--bg);
margin:0 auto;max-width:1200px;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:16px 0 6px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}.kv dt{color:var(--dim)}.kv dd{margin:0}
.chip{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px;margin-right:4px}
.completed{background:var(--ok)}.failed{background:var(--fail)}.terminated{background:var(--term)}
.running{background:var(--run)}.pending_failed{background:var(--pend)}.canceled,.disabled{background:var(--cancel)}
.ready{background:#74c0fc}.blocked{background:#ced4da;color:#495057}
svg{display:block;max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:var(--ink)}
svg .axis{stroke:var(--line)}svg .lane{fill:#f8f9fa}
.b{height:8px;stroke:#fff;stroke-width:.4}.b.ok{fill:var(--ok)}.b.fail{fill:var(--fail)}.b.term{fill:var(--term)}.b.retried{fill:var(--retried)}
.b.run{fill:var(--run)}
.pt{fill:none;stroke-linecap:round;stroke-width:5}.pt.over{stroke:var(--fail)}.pt.near{stroke:var(--term)}
.pt.ok{stroke:var(--ok)}.pt.low{stroke:var(--run)}
.diag{stroke:var(--ink);stroke-dasharray:4 3}
svg.series polyline{fill:none;stroke-width:1.5}svg.series .mem{stroke:var(--run)}svg.series .cpu{stroke:var(--term)}
svg.series .req{stroke:var(--fail);stroke-dasharray:5 3}.mem-label{color:var(--run);fill:var(--run)}
.cpu-label{color:var(--term);fill:var(--term)}
table{border-collapse:collapse;margin:4px 0}td,th{padding:2px 10px 2px 0;text-align:left;white-space:nowrap}
td.n,th.n{text-align:right}th{color:var(--dim);font-weight:600}
ol#failures li{margin:0 0 10px}pre{background:#f1f3f5;padding:6px 8px;margin:4px 0;overflow-x:auto;font-size:12px}
.legend span{margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;
vertical-align:-1px}.dim{color:var(--dim)}.plots{display:flex;flex-wrap:wrap;gap:24px}
.node rect{stroke:#495057;stroke-width:.5}.edge{fill:none;stroke:#adb5bd}
"""

_OUTCOME_CLASS = {"completed": "ok", "failed": "fail", "terminated": "term", "running": "run"}
_STATUS_FILL = {"completed": "var(--ok)", "failed": "var(--fail)", "terminated": "var(--term)",
                "running": "var(--run)", "pending_failed": "var(--pend)", "canceled": "var(--cancel)",
                "disabled": "var(--cancel)", "ready": "#74c0fc", "blocked": "#ced4da"}


# ---- small formatting helpers (units as people read them) -----------------------------------------

def _bytes(n) -> str:
    return "–" if n is None else human_bytes(n)


def _dur(s) -> str:
    return "–" if s is None else human_duration(s)


def _pattern(name: str) -> str:
    """A name with its numbers folded (sim_m1_s2 → sim_m#_s#): how a stage of a sweep is named."""
    return re.sub(r"\d+", "#", name)


# ---- sections ------------------------------------------------------------------------------------

def render(d: ReportData) -> str:
    wf = d.workflow
    names = {j.id: j.name for j in d.jobs}
    body = [
        f"<h1>{escape(wf['name'])} <span class='dim'>· workflow {wf['id']} · run {wf['run_id']}</span></h1>",
        _summary(d),
        _timeline(d, names),
        _resources(d, names),
        _monitoring(d),
        _failures(d, names),
        _dag(d),
        f"<p class='dim'>torc report · generated {d.generated_at.astimezone():%Y-%m-%d %H:%M:%S %Z} · "
        f"one file, no network needed</p>",
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>torc report · {escape(wf['name'])} (workflow {wf['id']})</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _span(attempts: list[Attempt], now: datetime) -> list[tuple[datetime, datetime, Attempt]]:
    out = []
    for a in attempts:
        start = a.started_at
        end = a.completed_at
        if start is None and end is not None and a.exec_time_s is not None:
            start = end - timedelta(seconds=a.exec_time_s)
        if start is None:
            continue
        if end is None:
            end = start + timedelta(seconds=a.exec_time_s) if a.exec_time_s is not None else now
        out.append((start, max(end, start), a))
    return out


def _summary(d: ReportData) -> str:
    wf = d.workflow
    total = sum(d.counts.values())
    chips = "".join(f"<span class='chip {escape(k)}'>{v} {escape(k)}</span>" for k, v in d.counts.items())
    spans = _span(d.attempts, d.generated_at)
    finished = [a for a in d.attempts if a.status != "running"]
    rows = [("jobs", f"{total} {chips}"),
            ("attempts", f"{len(finished)} finished" + (f", {len(d.attempts) - len(finished)} running"
                                                        if len(d.attempts) > len(finished) else "")
             + f" · {d.retries} retries in this run"),
            ("created", f"{wf['created_at'].astimezone():%Y-%m-%d %H:%M:%S}" + (
                f" from {escape(wf['spec_path'])}" if wf.get("spec_path") else ""))]
    if spans:
        t0 = min(s for s, _, _ in spans)
        t1 = max(e for _, e, _ in spans)
        rows.append(("ran", f"{t0.astimezone():%Y-%m-%d %H:%M:%S} → {t1.astimezone():%H:%M:%S} "
                            f"({_dur((t1 - t0).total_seconds())} wall-clock)"))
    cpu = sum(a.cpu_time_s or 0 for a in finished)
    busy = sum(a.exec_time_s or 0 for a in finished)
    peak = max((a.peak_memory_bytes or 0 for a in finished), default=0)
    rows.append(("work", f"{_dur(busy)} of job time · {_dur(cpu)} CPU time · largest peak memory {_bytes(peak)}"))
    rows.append(("workers", f"{len(d.workers)} worker(s), {len(d.allocations)} Slurm allocation(s)"))
    if wf.get("canceled_at"):
        rows.append(("canceled", f"{wf['canceled_at'].astimezone():%Y-%m-%d %H:%M:%S}"))
    return ("<section id='summary'><h2>Summary</h2><dl class='kv'>"
            + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl></section>")


def _lanes(d: ReportData, spans):
    """Lane key and label for each attempt: its allocation when the worker ran in one, else its worker."""
    workers = {w["id"]: w for w in d.workers}
    allocs = {a["slurm_job_id"]: a for a in d.allocations if a.get("slurm_job_id")}
    lanes: dict[tuple, list] = defaultdict(list)
    labels: dict[tuple, str] = {}
    for start, end, a in spans:
        w = workers.get(a.worker_id)
        if w is None:
            key, label = ("none", 0), "no worker recorded"
        elif w["slurm_job_id"]:
            al = allocs.get(w["slurm_job_id"])
            key = ("alloc", w["slurm_job_id"])
            label = (f"allocation {al['id']} · Slurm {w['slurm_job_id']}" if al
                     else f"Slurm job {w['slurm_job_id']}")
        else:
            key, label = ("worker", w["id"]), f"worker {w['id']} · {w['hostname']}"
        lanes[key].append((start, end, a))
        labels[key] = label
    return lanes, labels


def _timeline(d: ReportData, names: dict[int, str]) -> str:
    spans = _span(d.attempts, d.generated_at)
    head = "<section id='timeline-section'><h2>Timeline</h2>"
    if not spans:
        return head + "<p class='dim'>no attempt has started yet</p><svg id='timeline'></svg></section>"
    t0 = min(s for s, _, _ in spans)
    t1 = max(e for _, e, _ in spans)
    total = max((t1 - t0).total_seconds(), 1e-3)
    last_attempt: dict[tuple[int, int], int] = {}
    for a in d.attempts:
        key = (a.job_id, a.run_id)
        last_attempt[key] = max(last_attempt.get(key, 0), a.attempt_id)
    for j in d.jobs:   # a job waiting for its retry: the failed attempt before it was retried
        key = (j.id, d.workflow["run_id"])
        if j.status in ("ready", "running") and j.attempt_id > last_attempt.get(key, 0):
            last_attempt[key] = j.attempt_id
    lanes, labels = _lanes(d, spans)
    order = sorted(lanes, key=lambda k: min(s for s, _, _ in lanes[k]))
    left, width, pitch, lane_gap, top = 190, 960, 10, 8, 24
    out, y = [], top
    for key in order:
        items = sorted(lanes[key], key=lambda t: t[0])
        free: list[tuple[datetime, int]] = []
        rows_used = 0
        placed = []
        for start, end, a in items:
            if free and free[0][0] <= start:
                _, row = heapq.heappop(free)
            elif rows_used < MAX_SUBROWS:
                row = rows_used
                rows_used += 1
            else:
                _, row = heapq.heappop(free)
            heapq.heappush(free, (end, row))
            placed.append((start, end, a, row))
        lane_h = rows_used * pitch
        out.append(f"<rect class='lane' x='0' y='{y - 2}' width='{left + width}' height='{lane_h + 4}'/>"
                   f"<text x='4' y='{y + 9}'>{escape(labels[key][:30])}</text>")
        for start, end, a, row in placed:
            x = left + (start - t0).total_seconds() / total * width
            w = max(0.6, (end - start).total_seconds() / total * width)
            cls = _OUTCOME_CLASS.get(a.status, "fail")
            if cls in ("fail", "term") and a.attempt_id < last_attempt.get((a.job_id, a.run_id), 0):
                cls = "retried"
            rc = "" if a.return_code is None else f" · exit {a.return_code}"
            tip = (f"{names.get(a.job_id, a.job_id)} · attempt {a.attempt_id}"
                   + (f" (run {a.run_id})" if a.run_id != 1 else "") + f" · {_dur((end - start).total_seconds())}"
                   + rc + (" · running" if a.status == "running" else ""))
            out.append(f"<rect class='b {cls}' x='{x:.1f}' y='{y + row * pitch}' width='{w:.1f}'>"
                       f"<title>{escape(tip)}</title></rect>")
        y += lane_h + lane_gap
    ticks = []
    for i in range(7):
        x = left + i * width / 6
        ticks.append(f"<line class='axis' x1='{x:.0f}' y1='14' x2='{x:.0f}' y2='{y}'/>"
                     f"<text x='{x + 2:.0f}' y='11'>{'+' + _dur(total * i / 6) if i else 'start'}</text>")
    svg = (f"<svg id='timeline' viewBox='0 0 {left + width + 40} {y + 4}' width='{left + width + 40}' "
           f"role='img' aria-label='timeline of every attempt'>" + "".join(ticks) + "".join(out) + "</svg>")
    legend = ("<p class='legend'><span><i style='background:var(--ok)'></i>completed</span>"
              "<span><i style='background:var(--retried)'></i>failed, then retried</span>"
              "<span><i style='background:var(--fail)'></i>failed</span>"
              "<span><i style='background:var(--term)'></i>terminated</span>"
              "<span><i style='background:var(--run)'></i>running</span></p>")
    note = (f"<p class='dim'>One bar per attempt ({len(spans)}), one lane per worker or allocation; time from "
            f"{t0.astimezone():%Y-%m-%d %H:%M:%S}. Hover a bar for the job, attempt, duration and exit code.</p>")
    if d.attempts_truncated:
        note += f"<p class='dim'>Only the first {len(d.attempts)} attempts are drawn.</p>"
    return head + note + legend + svg + "</section>"


_BYTE_TICKS = [2 ** k for k in range(10, 51, 2)]                      # 1 KiB, 4 KiB, … 1 PiB
_TIME_TICKS = [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400]


def _scatter(points: list[tuple[float, float]], title: str, fmt, ident: str, tick_values: list[float]) -> str:
    """Used against requested, one dot per job, log-log, with the line where used = requested."""
    if not points:
        return f"<figure id='{ident}'><figcaption>{title}</figcaption><p class='dim'>nothing measured yet</p></figure>"
    positive = [v for p in points for v in p if v and v > 0]
    lo = min(positive) / 1.5
    hi = max(positive) * 1.5
    if hi / lo < 10:
        mid = math.sqrt(hi * lo)
        lo, hi = mid / 4, mid * 4
    size, pad = 340, 48
    span = math.log10(hi) - math.log10(lo)

    def pos(v: float) -> float:
        v = max(v, lo)
        return (math.log10(v) - math.log10(lo)) / span * size

    groups: dict[str, set] = defaultdict(set)
    for req, used in points:
        ratio = (used or 0) / req if req else 0
        cls = "over" if ratio > 1 else "near" if ratio >= 0.9 else "low" if ratio < 0.25 else "ok"
        px = round(pad + pos(req))
        py = round(pad + size - pos(used or lo))
        if sum(len(g) for g in groups.values()) < SCATTER_MAX_POINTS:
            groups[cls].add((px, py))
    paths = "".join(f"<path class='pt {c}' d='" + "".join(f"M{x} {y}h0" for x, y in sorted(g)) + "'/>"
                    for c, g in groups.items())
    ticks = []
    candidates = [v for v in tick_values if lo <= v <= hi]
    step = max(1, math.ceil(len(candidates) / 7))
    for v in candidates[::step]:
        p = pos(v)
        ticks.append(f"<line class='axis' x1='{pad + p:.0f}' y1='{pad}' x2='{pad + p:.0f}' y2='{pad + size}'/>"
                     f"<text x='{pad + p:.0f}' y='{pad + size + 14}' text-anchor='middle'>{fmt(v)}</text>"
                     f"<line class='axis' x1='{pad}' y1='{pad + size - p:.0f}' x2='{pad + size}' "
                     f"y2='{pad + size - p:.0f}'/><text x='{pad - 4}' y='{pad + size - p + 4:.0f}' "
                     f"text-anchor='end'>{fmt(v)}</text>")
    diag = f"<line class='diag' x1='{pad}' y1='{pad + size}' x2='{pad + size}' y2='{pad}'/>"
    labels = (f"<text x='{pad + size / 2}' y='{pad + size + 32}' text-anchor='middle'>requested</text>"
              f"<text x='12' y='{pad + size / 2}' transform='rotate(-90 12 {pad + size / 2})' "
              f"text-anchor='middle'>used</text><text x='{pad + size - 4}' y='{pad + 14}' text-anchor='end'>"
              f"above the line: more than requested</text>")
    svg = (f"<svg viewBox='0 0 {size + pad + 16} {size + pad + 40}' width='{size + pad + 16}'>"
           + "".join(ticks) + diag + paths + labels + "</svg>")
    return f"<figure id='{ident}'><figcaption><b>{title}</b></figcaption>{svg}</figure>"


def _ratio_table(rows, title: str, fmt) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(n)}</td><td class='n'>{fmt(req)}</td><td class='n'>{fmt(used)}</td>"
                   f"<td class='n'>{used / req * 100:.0f}%</td></tr>" for n, req, used in rows)
    return (f"<h3>{title}</h3><table><tr><th>job</th><th class='n'>requested</th><th class='n'>used</th>"
            f"<th class='n'>used/requested</th></tr>{body}</table>")


def _resources(d: ReportData, names: dict[int, str]) -> str:
    jobs = {j.id: j for j in d.jobs}
    latest: dict[int, Attempt] = {}
    for a in d.attempts:
        if a.status == "running":
            continue
        cur = latest.get(a.job_id)
        if cur is None or (a.run_id, a.attempt_id) > (cur.run_id, cur.attempt_id):
            latest[a.job_id] = a
    mem, rt = [], []
    for jid, a in latest.items():
        j = jobs.get(jid)
        if j is None:
            continue
        if a.peak_memory_bytes is not None and j.memory_bytes:
            mem.append((names[jid], j.memory_bytes, a.peak_memory_bytes))
        if a.exec_time_s is not None and j.runtime_s:
            rt.append((names[jid], j.runtime_s, a.exec_time_s))

    def stats(rows, what):
        if not rows:
            return ""
        ratios = sorted(u / r for _, r, u in rows)
        med = ratios[len(ratios) // 2]
        over = sum(1 for x in ratios if x > 1)
        near = sum(1 for x in ratios if 0.9 <= x <= 1)
        low = sum(1 for x in ratios if x < 0.25)
        return (f"<p>{what}: {len(rows)} jobs · median use {med * 100:.0f}% of the request · "
                f"<b>{over}</b> above it · {near} within 10% of it · {low} below a quarter of it</p>")

    def extremes(rows, fmt, what):
        top = sorted(rows, key=lambda t: t[2] / t[1], reverse=True)[:10]
        top = [t for t in top if t[2] / t[1] >= 0.9]
        bottom = sorted(rows, key=lambda t: t[2] / t[1])[:10]
        bottom = [t for t in bottom if t[2] / t[1] < 0.25]
        return (_ratio_table(top, f"{what}: closest to or above the request", fmt)
                + _ratio_table(bottom, f"{what}: most over-requested", fmt))

    plots = ("<div class='plots'>"
             + _scatter([(r, u) for _, r, u in mem], "Peak memory vs request (per job)", _bytes, "memory-plot",
                        _BYTE_TICKS)
             + _scatter([(r, u) for _, r, u in rt], "Runtime vs request (per job)", _dur, "runtime-plot",
                        _TIME_TICKS)
             + "</div>")
    return ("<section id='resources'><h2>Resources: used against requested</h2>"
            "<p class='dim'>The latest finished attempt of each job. Dots above the dashed line used more than "
            "they asked for (out-of-memory and walltime kills come from there); dots far below it asked for too "
            "much (their allocations wait longer and hold resources idle).</p>"
            + stats(mem, "memory") + stats(rt, "runtime") + plots
            + extremes(mem, _bytes, "memory") + extremes(rt, _dur, "runtime") + "</section>")


def _downsample(t: list, ys: list, points: int) -> tuple[list, list]:
    """At most `points` points, keeping each bucket's maximum (a peak never disappears from the plot)."""
    if len(t) <= points:
        return t, ys
    step = len(t) / points
    ot, oy = [], []
    for b in range(points):
        lo, hi = int(b * step), max(int((b + 1) * step), int(b * step) + 1)
        vals = [y for y in ys[lo:hi] if y is not None]
        ot.append(t[lo])
        oy.append(max(vals) if vals else None)
    return ot, oy


def _polyline(t: list, ys: list, xs, ys_scale, cls: str) -> str:
    """One line per run of known values (a gap where a metric was not sampled)."""
    out, run = [], []
    for x, y in zip(t, ys):
        if y is None:
            if len(run) > 1:
                out.append(run)
            run = []
            continue
        run.append(f"{xs(x):.1f},{ys_scale(y):.1f}")
    if len(run) > 1:
        out.append(run)
    if not out and run:
        out.append(run + run)
    return "".join(f"<polyline class='{cls}' points='{' '.join(r)}'/>" for r in out)


def _series_svg(e: dict) -> str:
    """Memory (left axis, with the request dashed) and CPU % (right axis) of one attempt over its run time."""
    t, cpu, mem = e["t"], e["cpu"], e["mem"]
    t_c, cpu = _downsample(t, cpu, REPORT_SERIES_POINTS)
    t_m, mem = _downsample(t, mem, REPORT_SERIES_POINTS)
    w, h, pad_l, pad_r, pad_t, pad_b = 580, 150, 64, 84, 10, 26
    span = max(t[-1] if t else 1.0, 1e-3)
    req = e.get("requested_memory_bytes") or 0
    mem_top = max([v for v in mem if v is not None] + [req, 1]) * 1.1
    cpu_top = max([v for v in cpu if v is not None] + [100.0]) * 1.1

    def xs(x):
        return pad_l + x / span * (w - pad_l - pad_r)

    def ym(y):
        return pad_t + (1 - y / mem_top) * (h - pad_t - pad_b)

    def yc(y):
        return pad_t + (1 - y / cpu_top) * (h - pad_t - pad_b)

    axes = (f"<line class='axis' x1='{pad_l}' y1='{h - pad_b}' x2='{w - pad_r}' y2='{h - pad_b}'/>"
            f"<text x='{pad_l - 4}' y='{pad_t + 10}' text-anchor='end' class='mem-label'>{_bytes(mem_top)}</text>"
            f"<text x='{pad_l - 4}' y='{h - pad_b}' text-anchor='end'>0</text>"
            f"<text x='{w - pad_r + 4}' y='{pad_t + 10}' class='cpu-label'>{cpu_top:.0f}% CPU</text>"
            f"<text x='{w - pad_r}' y='{h - 8}' text-anchor='end'>{_dur(span)}</text>"
            f"<text x='{pad_l}' y='{h - 8}'>0</text>")
    request = (f"<line class='req' x1='{pad_l}' y1='{ym(req):.1f}' x2='{w - pad_r}' y2='{ym(req):.1f}'>"
               f"<title>memory request {_bytes(req)}</title></line>") if req and req <= mem_top else ""
    return (f"<svg class='series' viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img' "
            f"aria-label='memory and CPU of {escape(e['job_name'])}'>" + axes + request
            + _polyline(t_m, mem, xs, ym, "mem") + _polyline(t_c, cpu, xs, yc, "cpu") + "</svg>")


def _monitoring(d: ReportData) -> str:
    """resource_monitor: each monitored attempt's summary, and memory and CPU over time for the attempts with
    the most samples."""
    if not d.monitored:
        return ""
    rows = sorted(d.monitored, key=lambda r: -(r["memory_peak_bytes"] or 0))[:REPORT_MAX_SERIES * 4]
    body = "".join(
        f"<tr><td>{escape(r['job_name'])}</td><td class='n'>{r['attempt_id']}</td><td class='n'>{r['samples']}</td>"
        f"<td class='n'>{_pct(r['cpu_percent_peak'])}</td><td class='n'>{_pct(r['cpu_percent_avg'])}</td>"
        f"<td class='n'>{_bytes(r['memory_peak_bytes'])}</td><td class='n'>{_bytes(r['memory_avg_bytes'])}</td>"
        f"<td class='n'>{_bytes(r['requested_memory_bytes'])}</td></tr>" for r in rows)
    table = ("<table id='monitor-summary'><tr><th>job</th><th class='n'>attempt</th><th class='n'>samples</th>"
             "<th class='n'>peak CPU</th><th class='n'>avg CPU</th><th class='n'>peak memory</th>"
             "<th class='n'>avg memory</th><th class='n'>requested</th></tr>" + body + "</table>")
    more = len(d.monitored) - len(rows)
    figures = "".join(
        f"<figure class='series-fig' data-job='{e['job_id']}' data-attempt='{e['attempt_id']}'><figcaption><b>"
        f"{escape(e['job_name'])}</b> attempt {e['attempt_id']} (run {e['run_id']}) · {len(e['t'])} samples · "
        f"<span class='mem-label'>memory</span> · <span class='cpu-label'>CPU %</span> · "
        f"<span class='dim'>dashed: memory request</span></figcaption>{_series_svg(e)}</figure>"
        for e in d.series)
    return ("<section id='monitoring'><h2>Resource monitor</h2>"
            f"<p class='dim'>Jobs sampled by the resource monitor (resource_monitor in the spec): {len(d.monitored)} "
            "attempt(s). CPU % counts cores (200% = two busy cores); memory is the resident memory of the job's "
            "process group." + (f" The {more} with the least memory are not listed." if more > 0 else "")
            + "</p>" + table + (f"<div class='plots'>{figures}</div>" if figures else "") + "</section>")


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0f}%"


def _failures(d: ReportData, names: dict[int, str]) -> str:
    f = d.failures or {"total": 0, "jobs": []}
    head = "<section id='failures-section'><h2>Failures</h2>"
    if not f.get("total") and not d.failure_events:
        return head + "<p>No job failed.</p><ol id='failures'></ol></section>"
    items = []
    for j in f["jobs"]:
        tail = j.get("stderr_tail")
        pre = (f"<pre>{escape(tail)}</pre>" if tail else
               "<p class='dim'>(stderr is empty)</p>" if tail == "" else
               f"<p class='dim'>({escape(j['stderr_not_kept'])})</p>" if j.get("stderr_not_kept") else
               f"<p class='dim'>(no stderr file at {escape(str(j['logs']['stderr']))})</p>")
        items.append(f"<li class='failure' data-job='{j['id']}'><b>{escape(j['name'])}</b> "
                     f"<span class='chip {escape(j['status'])}'>{escape(j['status'])}</span> exit {j['return_code']}"
                     f" · attempt {j['attempt_id']} (run {j['run_id']})"
                     + (f" · {escape(j['decision'])}" if j.get("decision") else "")
                     + (f"<br><span class='dim'>stderr: {escape(j['logs']['stderr'])}</span>"
                        if j["logs"]["stderr"] else "") + f"{pre}</li>")
    more = f["total"] - len(f["jobs"])
    text = (f"<p>{f['total']} job(s) ended failed or terminated, or await a decision (pending_failed)"
            + (f"; the first {len(f['jobs'])} are shown" if more > 0 else "") + ".</p>")
    events = ""
    if d.failure_events:
        from torc_hpc.workflows import describe_decision

        rows = []
        for e in d.failure_events:
            attempt = e["attempt_id"] - 1 if e["kind"] == "retry" and e["attempt_id"] else e["attempt_id"]
            rc = (e["detail"] or {}).get("return_code", "")
            rows.append(f"<tr><td>{e['ts'].astimezone():%H:%M:%S}</td><td>{escape(names.get(e['job_id'], str(e['job_id'])))}"
                        f"</td><td class='n'>{attempt}</td><td class='n'>{rc}</td>"
                        f"<td>{escape(describe_decision(e['kind'], e['detail']))}</td></tr>")
        events = ("<h3>Every decision of the failure handlers</h3><table id='decisions'><tr><th>time</th><th>job</th>"
                  "<th class='n'>attempt</th><th class='n'>exit</th><th>decision</th></tr>" + "".join(rows)
                  + "</table>")
    return head + text + "<ol id='failures'>" + "".join(items) + "</ol>" + events + "</section>"


def _dag(d: ReportData) -> str:
    head = "<section id='dag'><h2>Dependencies</h2>"
    n = len(d.jobs)
    if not n:
        return head + "<p class='dim'>no jobs</p></section>"
    index = {j.id: i for i, j in enumerate(d.jobs)}
    parents = [index[p] for p in d.parents if p in index]
    children = [index[c] for c in d.children if c in index]
    lv = levels(n, parents, children)
    by_level: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        by_level[lv[i]].append(i)
    stages = sorted(by_level)
    if n <= DAG_DRAW_MAX_JOBS:
        colw, rowh, boxw, boxh = 170, 28, 150, 20
        pos = {}
        for s in stages:
            for r, i in enumerate(by_level[s]):
                pos[i] = (12 + s * colw, 12 + r * rowh)
        height = 24 + max(len(v) for v in by_level.values()) * rowh
        edges = "".join(
            f"<path class='edge' d='M{pos[p][0] + boxw} {pos[p][1] + boxh / 2} C{pos[p][0] + boxw + 12} "
            f"{pos[p][1] + boxh / 2} {pos[c][0] - 12} {pos[c][1] + boxh / 2} {pos[c][0]} {pos[c][1] + boxh / 2}'/>"
            for p, c in zip(parents, children))
        nodes = "".join(
            f"<g class='node'><rect x='{x}' y='{y}' width='{boxw}' height='{boxh}' rx='4' "
            f"style='fill:{_STATUS_FILL.get(d.jobs[i].status, '#ced4da')}'/><text x='{x + 6}' y='{y + 14}'>"
            f"{escape(d.jobs[i].name[:22])}</text><title>{escape(d.jobs[i].name)}: {d.jobs[i].status}</title></g>"
            for i, (x, y) in pos.items())
        svg = (f"<svg viewBox='0 0 {24 + len(stages) * colw} {height}' width='{24 + len(stages) * colw}'>"
               f"{edges}{nodes}</svg>")
        return head + f"<p class='dim'>{n} jobs in {len(stages)} stage(s), colored by status.</p>" + svg + "</section>"
    rows = []
    for s in stages[:MAX_STAGES_DRAWN]:
        members = by_level[s]
        status = Counter(d.jobs[i].status for i in members)
        patterns = Counter(_pattern(d.jobs[i].name) for i in members)
        groups = patterns.most_common(3)
        bar, x = [], 0.0
        for st, c in sorted(status.items()):
            w = c / len(members) * 200
            bar.append(f"<rect x='{x:.1f}' y='0' width='{w:.1f}' height='12' style='fill:{_STATUS_FILL.get(st)}'>"
                       f"<title>{c} {st}</title></rect>")
            x += w
        label = ", ".join(f"{escape(g)} ×{c}" for g, c in groups) + (" …" if len(patterns) > 3 else "")
        rows.append(f"<tr><td class='n'>{s + 1}</td><td class='n'>{len(members)}</td>"
                    f"<td><svg width='200' height='12'>{''.join(bar)}</svg></td><td>{label}</td></tr>")
    more = (f"<p class='dim'>… and {len(stages) - MAX_STAGES_DRAWN} more stages</p>"
            if len(stages) > MAX_STAGES_DRAWN else "")
    return (head + f"<p class='dim'>{n} jobs and {len(parents)} dependencies in {len(stages)} stages (topological "
            f"levels); too many to draw one by one, so each stage is a row: its size, its statuses and its names "
            f"(numbers folded).</p><table id='stages'><tr><th class='n'>stage</th><th class='n'>jobs</th>"
            f"<th>status</th><th>names</th></tr>" + "".join(rows) + "</table>" + more + "</section>")


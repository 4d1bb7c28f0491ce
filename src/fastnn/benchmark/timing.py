"""The measurements: every workload on every contender and thread count, rounds interleaved in
worker processes, samples disturbed by other work re-run; and the interleaved 1-/2-thread runs
of the scaling target."""
import dataclasses
import statistics
import time
from typing import Callable

import numpy as np

from .machine import floor_seconds, machine_cpus
from .processes import Worker, busy_cores
from .report import _fmt_time
from .workloads import EPOCH_CONTENDERS, GEMM_CONTENDERS, SCALING_THREADS, SCALING_WORKLOAD, _runs


@dataclasses.dataclass
class Plan:
    """How to measure: rounds, the per-GEMM time, retries of contended samples, and where the
    workers find the data (tmpdir) and the private copy of the package (pkg_parent)."""
    rounds: int
    warmup: int
    min_time: float
    min_reps: int
    settle: float
    timeout: float
    max_stall: float
    retries: int
    backoff: float
    tmpdir: str
    pkg_parent: str
    log: Callable[[str], None]


@dataclasses.dataclass
class Measurements:
    results: list = dataclasses.field(default_factory=list)   # one row per workload, threads, contender
    infos: dict = dataclasses.field(default_factory=dict)     # "engine/threads" -> the worker's info
    background: dict = dataclasses.field(default_factory=dict)   # threads -> other processes' busy cores
    workers: list = dataclasses.field(default_factory=list)
    scaling: dict = None


def measure(workloads, engines, thread_counts, plan, probes, notes):
    """Every workload on every engine's contenders, thread count by thread count; then the
    scaling runs. The workers are closed however it ends."""
    m = Measurements()
    try:
        for t in thread_counts:
            _measure_thread_count(t, workloads, engines, plan, probes, m, notes)
        m.scaling = _measure_scaling(workloads, engines, thread_counts, plan.rounds, plan.warmup, plan.settle,
                                     plan.timeout, plan.tmpdir, plan.pkg_parent, m.workers, plan.log)
    finally:
        for w in m.workers:
            w.close()
    return m


def _measure_thread_count(t, workloads, engines, plan, probes, m, notes):
    workers = {e: Worker(e, t, plan.tmpdir, plan.tmpdir, plan.timeout, plan.pkg_parent) for e in engines}
    m.workers += workers.values()
    for e, w in workers.items():
        m.infos[f"{e}/{t}"] = w.call({"op": "info"})
    foreign = busy_cores()
    m.background[str(t)] = foreign
    usable = machine_cpus()
    if foreign is not None and foreign + t > usable + 0.25:
        msg = (f"other processes kept {foreign:.1f} of {usable} CPUs busy before the {t}-thread runs: "
               f"{t}-thread results are likely contended (see †)")
        notes.append(msg)
        plan.log("warning: " + msg)
    for wl in workloads:
        rows = _measure_workload(wl, t, workers, engines, plan, probes, m.results)
        m.results += rows
        plan.log(_progress_line(wl, t, rows))
    for w in workers.values():
        w.close()


def _measure_workload(wl, t, workers, engines, plan, probes, earlier):
    """The rows of one workload on t threads: a warm-up round, then plan.rounds rounds in which
    every contender runs once (the order rotated each round)."""
    table = GEMM_CONTENDERS if wl["kind"] == "gemm" else EPOCH_CONTENDERS
    names = [c for c, e in table.items() if e in engines and _runs(c, wl)]
    times = {c: [] for c in names}
    stalls = {c: [] for c in names}
    extra = {c: {"retries": 0} for c in names}
    budget = [plan.retries * len(names)]      # retries per workload and thread count: bounded time
    for r in range(plan.warmup + plan.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for c in order:
            if extra[c].get("error"):
                continue
            job = {"op": wl["kind"], "contender": c, **wl}
            if wl["kind"] == "gemm":
                job.update(min_time=plan.min_time, min_reps=plan.min_reps)
            _set_timeouts(workers, job, earlier, plan.timeout)
            ans = _sample(workers[table[c]], job, t, plan, extra[c], budget, measured=r >= plan.warmup)
            if "error" in ans:
                extra[c]["error"] = ans["error"]
                plan.log(f"  {c} failed on {wl['id']} ({t} threads): {ans['error']}")
                continue
            extra[c]["check"] = ans.get("check")
            if ans.get("reps"):
                extra[c]["reps"] = ans["reps"]
            if r >= plan.warmup:
                times[c].append(ans["seconds"])
                stalls[c].append(ans.get("stall"))
    floor = floor_seconds(wl, t, probes)
    return [_result_row(wl, t, c, table[c], times[c], stalls[c], extra[c], floor, plan.max_stall) for c in names]


def _set_timeouts(workers, job, earlier, timeout):
    """A runaway (oversubscribed) sample fails, not hangs: 30× the 1-thread median when known."""
    ref = [x["median_s"] for x in earlier if x["workload"] == job["id"] and x["threads"] == 1
           and x["contender"] == job["contender"] and "median_s" in x]
    for w in workers.values():
        w.timeout = min(timeout, max(60.0, 30 * ref[0] * (job.get("min_reps", 1) + 1)
                                     + 30 * job.get("min_time", 0))) if ref else timeout


def _sample(worker, job, t, plan, extra, budget, measured):
    """One sample of job["contender"]: re-run (measured rounds only, within the workload's retry
    budget) while other work stalled the CPUs for more than plan.max_stall of it; a crashed
    worker is restarted and asked once more."""
    c, wid = job["contender"], job["id"]
    for attempt in range(1 + (plan.retries if measured else 0)):
        if attempt:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            extra["retries"] += 1
            time.sleep(plan.backoff)
        ans = worker.call(job)
        if "worker exited" in ans.get("error", ""):    # once more, in a fresh worker
            plan.log(f"  {c} crashed on {wid} ({t} threads): {ans['error']}; retrying once")
            extra["crashes"] = extra.get("crashes", 0) + 1
            ans = worker.call(job)
        if t > 1 and plan.settle:
            time.sleep(plan.settle)    # let that worker's idle pool threads stop spinning
        if "error" in ans or (ans.get("stall") or 0.0) <= plan.max_stall \
                or ans["seconds"] * ans.get("reps", 1) > 5.0:   # too long to repeat
            break
    return ans


def _result_row(wl, t, c, engine, times, stalls, extra, floor, max_stall):
    row = {"kind": wl["kind"], "workload": wl["id"], "label": wl["label"], "threads": t,
           "contender": c, "engine": engine, "times_s": times, "flops": wl["flops"],
           "floor_s": floor, "cpu_stall": stalls,
           "contended": sum(1 for x in stalls if x is not None and x > max_stall),
           **{k: v for k, v in extra.items()}}
    if times:
        row.update(_stats(times))
        row["gflops"] = wl["flops"] / row["median_s"] / 1e9
        row["pct_floor"] = 100.0 * floor / row["median_s"] if floor else None
    return row


def _stats(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def _measure_scaling(workloads, engines, thread_counts, rounds, warmup, settle, timeout, tmpdir, pkg_parent,
                     all_workers, log):
    """The h=400 epoch of fastnn-cpp on 1 and on 2 threads, the two alternating round by round
    (order rotated), so that a machine that speeds up or slows down during the run -- shared
    machines do, by 10% and more over minutes -- moves both sides of the ratio alike. The
    per-thread-count tables run their thread counts one after the other, minutes apart.
    None when the workload, fastnn-cpp, or a 2-thread run is not part of this benchmark."""
    wl = next((w for w in workloads if w["id"] == SCALING_WORKLOAD), None)
    if wl is None or "cpp" not in engines or 1 not in thread_counts or \
            not any(t >= SCALING_THREADS for t in thread_counts):
        return None
    workers = {t: Worker("cpp", t, tmpdir, tmpdir, timeout, pkg_parent) for t in (1, SCALING_THREADS)}
    all_workers += workers.values()
    times = {1: [], SCALING_THREADS: []}
    round_trips = []   # the core-to-core round trip right after each multi-thread sample
    job = {"op": "epoch", "contender": "fastnn-cpp", **wl}
    for r in range(warmup + rounds):
        for t in ((1, SCALING_THREADS) if r % 2 == 0 else (SCALING_THREADS, 1)):
            ans = workers[t].call({**job, "round_trip": t > 1})
            if settle:
                time.sleep(settle)
            if "error" in ans:
                log(f"  scaling run failed ({t} threads): {ans['error']}")
                return {"workload": wl["id"], "error": ans["error"]}
            if r >= warmup:
                times[t].append(ans["seconds"])
                if ans.get("round_trip_ns") is not None:
                    round_trips.append(ans["round_trip_ns"])
    for w in workers.values():
        w.close()
    one, two = float(np.median(times[1])), float(np.median(times[SCALING_THREADS]))
    log(f"[scaling] {wl['label']}: 1 thread {_fmt_time(one)}, {SCALING_THREADS} threads {_fmt_time(two)} "
        f"(interleaved): {one / two:.2f}×")
    return {"workload": wl["id"], "label": wl["label"], "threads": [1, SCALING_THREADS],
            "times_s": {str(k): v for k, v in times.items()}, "median_s": {"1": one, str(SCALING_THREADS): two},
            "speedup": one / two, "round_trip_ns": round_trips}


def _progress_line(wl, t, rows):
    parts = []
    for r in rows:
        if "median_s" in r:
            parts.append(f"{r['contender']} {_fmt_time(r['median_s'])}")
        else:
            parts.append(f"{r['contender']} failed")
    return f"[{t} thr] {wl['label']}: " + ", ".join(parts)

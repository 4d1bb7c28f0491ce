"""The machine: hardware probes (FMA peak, read bandwidth) and the floors they give, CPU model and
flags, NumPy's BLAS."""
import os
import platform
import statistics
import sys
import threading


ISA_ORDER = ("generic", "avx2", "avx512")

def _concurrently(fn, n):
    """Sum of fn() run in n threads at once (the probes release the GIL)."""
    results = [0.0] * n
    barrier = threading.Barrier(n)

    def body(i):
        barrier.wait()
        results[i] = fn()

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(results), results

def run_probes(thread_counts, seconds=0.2, bw_bytes=1 << 29):
    """FMA peak (fp32, GFLOP/s) of every ISA up to the detected one on 1 thread, the best ISA's
    peak and the read bandwidth (GB/s) on each thread count (n concurrent single-thread probes)."""
    try:
        from fastnn import _core
        _core.probe_fma_peak_gflops
    except (ImportError, AttributeError) as exc:
        return {"available": False, "reason": f"fastnn._core probes not available ({exc})"}
    best = _core.detected_isa()
    isas = [i for i in ISA_ORDER if ISA_ORDER.index(i) <= ISA_ORDER.index(best)] if best in ISA_ORDER else [best]
    per_isa = {}
    for isa in isas:
        _core.probe_fma_peak_gflops(isa, False, seconds / 4)                # warm the clocks
        per_isa[isa] = max(_core.probe_fma_peak_gflops(isa, False, seconds) for _ in range(2))
    peak, peak_each, bw, bw_each = {}, {}, {}, {}
    for t in thread_counts:
        if t == 1:
            peak[t], peak_each[t] = per_isa[best], [per_isa[best]]
        else:
            peak[t], peak_each[t] = _concurrently(lambda: _core.probe_fma_peak_gflops(best, False, seconds), t)
        bw[t], bw_each[t] = _concurrently(lambda: _core.probe_read_bandwidth_gbs(bw_bytes, seconds * 1.5), t)
    # Not a floor: what fastnn's own micro-kernel reaches with its operands in L1 (context for
    # the GEMM rows' % of the floor; older builds lack the probe).
    kernel = getattr(_core, "probe_micro_kernel_gflops", None)
    round_trip_ns = core_to_core_round_trip_ns(seconds / 2, repeats=3)
    return {"available": True, "best_isa": best, "fma_peak_gflops_1thread_by_isa": per_isa,
            "core_to_core_round_trip_ns": round_trip_ns,
            "micro_kernel_gflops": None if kernel is None else max(kernel(seconds) for _ in range(2)),
            "fma_peak_gflops": {str(t): v for t, v in peak.items()},
            "fma_peak_gflops_per_thread": {str(t): v for t, v in peak_each.items()},
            "read_bandwidth_gbs": {str(t): v for t, v in bw.items()},
            "read_bandwidth_gbs_per_thread": {str(t): v for t, v in bw_each.items()},
            "read_bandwidth_buffer_bytes": bw_bytes}

def core_to_core_round_trip_ns(seconds, repeats=1):
    """Where two threads of this process run now: the round trip of a cache line between them
    (ns; the median of `repeats` probes of about `seconds` each), or None where the process may
    run on one CPU only or the core is an older build without the probe."""
    try:
        from fastnn import _core
        probe = _core.probe_core_to_core_ns
    except (ImportError, AttributeError):
        return None
    if machine_cpus() < 2:
        return None
    return float(statistics.median(probe(seconds) for _ in range(repeats)))

def floor_seconds(workload, threads, probes):
    if not probes.get("available"):
        return None
    peak = probes["fma_peak_gflops"].get(str(threads))
    if not peak:
        return None
    floor = workload["flops"] / (peak * 1e9)
    if workload.get("read_floor"):
        bw = probes["read_bandwidth_gbs"].get(str(threads))
        if bw:
            floor = max(floor, workload["x_bytes"] / (bw * 1e9))
    return floor

def machine_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

def machine_info():
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "python": sys.version.split()[0], "logical_cpus": os.cpu_count()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        fields = {}
        for line in text.split("\n\n")[0].splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        info["cpu_model"] = fields.get("model name")
        info["cpu_family_model_stepping"] = [fields.get("cpu family"), fields.get("model"), fields.get("stepping")]
        flags = set(fields.get("flags", "").split())
        info["cpu_flags_of_interest"] = sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw",
                                                        "avx512dq", "avx512_bf16", "avx512_fp16", "amx_tile",
                                                        "hypervisor"})
    except OSError:
        info["cpu_model"] = platform.processor() or None
    return info

def _blas_summary(threadpools):
    if not threadpools:
        return None
    blas = [p for p in threadpools if p.get("user_api") == "blas"]
    if not blas:
        return None
    p = blas[0]
    return f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')} kernel, {p.get('threading_layer')})"

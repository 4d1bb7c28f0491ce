"""Issue 5's speed targets, evaluated from the medians (met / not met / n/a), and the check that
every contender computes what NumPy computes."""
import numpy as np

from .workloads import DENSE_ONLY


def _mark_agreement(results, notes):
    """Flag contenders whose results (norm of C, or of the trained weights) differ from NumPy's:
    a contender that computes something else is not a fair comparison."""
    ref = {(r["workload"], r["threads"]): r.get("check") for r in results if r["engine"] == "numpy"}
    for r in results:
        base, mine = ref.get((r["workload"], r["threads"])), r.get("check")
        if base is None or mine is None:
            continue
        a, b = np.atleast_1d(np.asarray(mine, float)), np.atleast_1d(np.asarray(base, float))
        tol = 1e-4 if r["kind"] == "gemm" else 2e-2
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
        r["agrees_with_numpy"] = bool(rel <= tol)
        r["relative_difference"] = rel
        if not r["agrees_with_numpy"]:
            notes.append(f"{r['contender']} on {r['label']} ({r['threads']} threads) differs from NumPy's "
                         f"result by {rel:.2e} (relative): check its math")

def _row(results, workload, threads, contender):
    for r in results:
        if r["workload"] == workload and r["threads"] == threads and r["contender"] == contender and "median_s" in r:
            return r
    return None

def _torch_peer(results, workload, threads):
    rows = [r for r in (_row(results, workload, threads, c) for c in ("torch-manual", "torch-autograd")) if r]
    return min(rows, key=lambda r: r["median_s"]) if rows else None

def evaluate_targets(out):
    """Issue 5's targets, each met / not met / n/a, computed from the medians (1 thread unless
    stated). Speed-up = peer median / fastnn-cpp median."""
    res = out["results"]
    targets = []

    def add(tid, text, measured, needed, ok, why=None, info=False):
        # info: a figure shown beside the targets for reference, not one of them (never "not met")
        status = "n/a" if ok is None else ("info" if info else ("met" if ok else "not met"))
        targets.append({"id": tid, "target": text, "measured": measured, "needed": needed, "status": status,
                        **({"why": why} if why else {})})

    def speedup(workload, peer, threads=1):
        cpp = _row(res, workload, threads, "fastnn-cpp")
        other = _torch_peer(res, workload, threads) if peer == "torch" else _row(res, workload, threads, peer)
        if not cpp:
            return None, None, f"fastnn-cpp not measured on {workload}, {threads} thread(s)"
        if not other:
            return None, None, f"{peer} not measured on {workload}, {threads} thread(s)"
        return other["median_s"] / cpp["median_s"], other, None

    def pct(workload, threads=1, contender="fastnn-cpp"):
        cpp = _row(res, workload, threads, contender)
        return cpp.get("pct_floor") if cpp else None

    # softmax vs NumPy: ≥2.5×, or ≥70 % of the floor and ≥1.5×
    s, _, why = speedup("softmax", "fastnn-numpy")
    p = pct("softmax")
    ok = None if s is None else (s >= 2.5 or (p is not None and p >= 70 and s >= 1.5))
    add("softmax-numpy", "softmax epoch ≥2.5× NumPy (or ≥70% of floor and ≥1.5×)",
        None if s is None else f"{s:.2f}×" + (f", {p:.0f}% of floor" if p is not None else ""),
        "≥2.5× (or ≥70% and ≥1.5×)", ok, why)
    for tid, wl, peer, need, text in [
            ("softmax-torch", "softmax", "torch", 2.5, "softmax epoch ≥2.5× PyTorch"),
            ("h100-numpy", "mlp-h100", "fastnn-numpy", 1.5, "h=100 epoch ≥1.5× NumPy"),
            ("h100-torch", "mlp-h100", "torch", 1.5, "h=100 epoch ≥1.5× PyTorch"),
            ("h400-numpy", "mlp-h400", "fastnn-numpy", 1.3, "h=400 epoch ≥1.3× NumPy"),
            ("h400-torch", "mlp-h400", "torch", 1.2, "h=400 epoch ≥1.2× PyTorch")]:
        s, other, why = speedup(wl, peer)
        measured = None if s is None else f"{s:.2f}×" + (f" (vs {other['contender']})" if peer == "torch" else "")
        add(tid, text, measured, f"≥{need}×", None if s is None else s >= need, why)
    p = pct("mlp-h400")
    add("h400-floor", "h=400 epoch ≥70% of floor", None if p is None else f"{p:.0f}%", "≥70%",
        None if p is None else p >= 70,
        None if p is not None else "no fastnn-cpp measurement or no probes")
    # For reference, not a target of the issue: the same epoch with the dense kernels. The floor
    # counts dense FLOPs, which zero skipping avoids; this row shows how near the dense GEMMs
    # themselves come to the FMA peak.
    p = pct("mlp-h400", contender=DENSE_ONLY)
    add("h400-floor-dense", "for reference: h=400 epoch with the dense kernels (fastnn-cpp-dense), % of floor",
        None if p is None else f"{p:.0f}%", "(≥70% would match the target above)", None if p is None else p >= 70,
        None if p is not None else "no fastnn-cpp-dense measurement or no probes", info=True)
    # From the interleaved 1-/2-thread runs when the benchmark made them (see _measure_scaling);
    # otherwise from the two tables' medians.
    sc = out.get("scaling") or {}
    if sc.get("speedup"):
        s, how = sc["speedup"], " (interleaved runs)"
    else:
        one, two = _row(res, "mlp-h400", 1, "fastnn-cpp"), _row(res, "mlp-h400", 2, "fastnn-cpp")
        s, how = (one["median_s"] / two["median_s"] if one and two else None), ""
    add("h400-2threads", "h=400 epoch on 2 threads ≥1.7× faster than on 1", None if s is None else f"{s:.2f}×{how}",
        "≥1.7×", None if s is None else s >= 1.7, None if s is not None else "needs fastnn-cpp runs on 1 and 2 threads")
    s, _, why = speedup("sgemm-1024", "fastnn-numpy")
    add("sgemm1024-numpy", "sgemm 1024³ at least as fast as NumPy", None if s is None else f"{s:.2f}×", "≥1.0×",
        None if s is None else s >= 1.0, why)
    return targets

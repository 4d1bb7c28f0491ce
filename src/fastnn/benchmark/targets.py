"""The speed targets of issue 5 (which the shipped code meets: `--check` holds it to them) and of
issue 20 (open: dense inputs, every CPU), evaluated from the medians (met / not met / n/a; info for
figures shown for reference), and the check that every contender computes what NumPy computes."""
import numpy as np

from .workloads import DENSE_ONLY, DENSE_SCALING_WORKLOAD, SCALING_THREADS, SCALING_WORKLOAD

# The issues whose targets `--check` fails on unless told otherwise: those the code was accepted
# against. Issue 20's are goals of open work; `--check 5,20` includes them.
CHECKED_ISSUES = (5,)


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

def _speedup(res, workload, peer, threads=1):
    """(peer median / fastnn-cpp median, the peer's row, None) or (None, None, why not)."""
    cpp = _row(res, workload, threads, "fastnn-cpp")
    other = _torch_peer(res, workload, threads) if peer == "torch" else _row(res, workload, threads, peer)
    if not cpp:
        return None, None, f"fastnn-cpp not measured on {workload}, {threads} thread(s)"
    if not other:
        return None, None, f"{peer} not measured on {workload}, {threads} thread(s)"
    return other["median_s"] / cpp["median_s"], other, None

def _pct(res, workload, threads=1, contender="fastnn-cpp"):
    row = _row(res, workload, threads, contender)
    return row.get("pct_floor") if row else None

def _adder(targets, issue):
    def add(tid, text, measured, needed, ok, why=None, info=False):
        # info: a figure shown beside the targets for reference, not one of them (never "not met")
        status = "n/a" if ok is None else ("info" if info else ("met" if ok else "not met"))
        targets.append({"id": tid, "issue": issue, "target": text, "measured": measured, "needed": needed,
                        "status": status, **({"why": why} if why else {})})
    return add

def evaluate_targets(out):
    """The targets of issue 5 and then of issue 20, each met / not met / n/a (or info), computed
    from the medians (1 thread unless stated). Speed-up = peer median / fastnn-cpp median."""
    targets = []
    _issue5_targets(out, _adder(targets, 5))
    _issue20_targets(out, _adder(targets, 20))
    return targets

def failed_targets(targets, issues=CHECKED_ISSUES):
    """The targets of `issues` that are not met (what `--check` fails on)."""
    return [t for t in targets if t["status"] == "not met" and t.get("issue", 5) in issues]

def _issue5_targets(out, add):
    """Issue 5: raw MNIST, the epochs as a user runs them (zero skipping on)."""
    res = out["results"]

    def speedup(workload, peer, threads=1):
        return _speedup(res, workload, peer, threads)

    def pct(workload, threads=1, contender="fastnn-cpp"):
        return _pct(res, workload, threads, contender)

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
    s, how = _thread_speedup(out, SCALING_WORKLOAD)
    add("h400-2threads", "h=400 epoch on 2 threads ≥1.7× faster than on 1", None if s is None else f"{s:.2f}×{how}",
        "≥1.7×", None if s is None else s >= 1.7, None if s is not None else "needs fastnn-cpp runs on 1 and 2 threads")
    s, _, why = speedup("sgemm-1024", "fastnn-numpy")
    add("sgemm1024-numpy", "sgemm 1024³ at least as fast as NumPy", None if s is None else f"{s:.2f}×", "≥1.0×",
        None if s is None else s >= 1.0, why)


def _thread_speedup(out, workload, contender="fastnn-cpp"):
    """(1-thread median / 2-thread median, how it was measured), or (None, ""). fastnn-cpp on
    SCALING_WORKLOAD: from the interleaved 1-/2-thread runs when the benchmark made them (see
    _measure_scaling); otherwise from the two tables' medians."""
    sc = out.get("scaling") or {}
    if contender == "fastnn-cpp" and sc.get("workload", SCALING_WORKLOAD) == workload and sc.get("speedup"):
        return sc["speedup"], " (interleaved runs)"
    one = _row(out["results"], workload, 1, contender)
    two = _row(out["results"], workload, SCALING_THREADS, contender)
    return (one["median_s"] / two["median_s"] if one and two else None), ""

def _issue20_targets(out, add):
    """Issue 20: the epochs on centred X (no zeros to skip: the dense kernels against the floor
    and the peers), the softmax epoch on raw and centred X, and 2-thread scaling on both."""
    res = out["results"]
    h400 = "mlp-h400-centred"
    p, pn = _pct(res, h400), _pct(res, h400, contender="fastnn-numpy")
    st, torch, why_t = _speedup(res, h400, "torch")
    sn, _, why_n = _speedup(res, h400, "fastnn-numpy")
    by_floor = None if p is None or st is None else (p >= 88 and st >= 1.3)
    by_numpy = None if sn is None or pn is None else (sn >= 1.3 and pn >= 75)
    add("dense-h400", "dense h=400 epoch ≥88% of floor and ≥1.3× PyTorch (or ≥1.3× NumPy where NumPy is ≥75% "
        "of floor)", _figures(p, st, torch, sn, pn), "≥88% and ≥1.3× torch (or ≥1.3× a ≥75% NumPy)",
        _either(by_floor, by_numpy), why_t or why_n or (None if p is not None else "no probes"))
    h100 = "mlp-h100-centred"
    p = _pct(res, h100)
    st, torch, why_t = _speedup(res, h100, "torch")
    sn, _, why_n = _speedup(res, h100, "fastnn-numpy")
    floor_or_numpy = _either(None if p is None else p >= 80, None if sn is None else sn >= 1.5)
    ok = None if floor_or_numpy is None or st is None else (floor_or_numpy and st >= 1.5)
    add("dense-h100", "dense h=100 epoch ≥80% of floor or ≥1.5× NumPy, and ≥1.5× PyTorch",
        _figures(p, st, torch, sn, None), "(≥80% or ≥1.5× NumPy) and ≥1.5× torch", ok, why_t or why_n)
    for tid, wl, what in (("softmax-raw", "softmax", "raw"), ("softmax-dense", "softmax-centred", "centred")):
        p = _pct(res, wl)
        sn, _, why = _speedup(res, wl, "fastnn-numpy")
        add(tid, f"softmax epoch ({what} X) ≥80% of floor or ≥3× NumPy", _figures(p, None, None, sn, None),
            "≥80% or ≥3× NumPy", _either(None if p is None else p >= 80, None if sn is None else sn >= 3), why)
    for tid, wl, what in (("h400-2threads-raw", SCALING_WORKLOAD, "raw"), ("h400-2threads-dense", h400, "centred")):
        s, how = _thread_speedup(out, wl)
        numpy_s, _ = _thread_speedup(out, wl, "fastnn-numpy")
        ok = None if s is None or numpy_s is None or numpy_s < 1.5 else s >= 1.8
        why = ("needs fastnn-cpp and NumPy runs on 1 and 2 threads" if s is None or numpy_s is None else
               f"NumPy's own 2-thread speed-up {numpy_s:.2f}× < 1.5×: the host is not idle enough to judge"
               if numpy_s < 1.5 else None)
        add(tid, f"h=400 epoch ({what} X) on 2 threads ≥1.8× faster than on 1, where NumPy's own speed-up is ≥1.5×",
            None if s is None else f"{s:.2f}×{how}" + ("" if numpy_s is None else f", NumPy {numpy_s:.2f}×"),
            "≥1.8× (NumPy ≥1.5×)", ok, why)

def _either(a, b):
    """One of two alternative conditions: met if either is, not met if both are known and not
    met, unknown (None) otherwise."""
    if a or b:
        return True
    return False if a is not None and b is not None else None

def _figures(p, st, torch, sn, pn):
    """'83% of floor, 1.53× torch-manual, 1.27× NumPy (NumPy 70% of floor)': what is known."""
    parts = []
    if p is not None:
        parts.append(f"{p:.0f}% of floor")
    if st is not None:
        parts.append(f"{st:.2f}× {torch['contender']}")
    if sn is not None:
        parts.append(f"{sn:.2f}× NumPy" + (f" (NumPy {pn:.0f}% of floor)" if pn is not None else ""))
    return ", ".join(parts) or None

"""The markdown report and the JSON file."""
import math
import os

import numpy as np

from .targets import _row
from .workloads import DENSE_ONLY, PIXELS_ONLY


TABLE_HEADER = "| workload | threads | contender | median | min–max | GFLOP/s | % of floor | × NumPy |"

TARGETS_HEADER = "| target | measured | needed | verdict |"

def _fmt_time(s):
    if s is None:
        return "—"
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1e3:.0f} µs" if ms < 0.1 else f"{ms:.3f} ms"

def _fmt_range(lo, hi):
    if lo is None:
        return "—"
    a, b = _fmt_time(lo), _fmt_time(hi)
    ua, ub = a.split()[1], b.split()[1]
    return f"{a.split()[0]}–{b}" if ua == ub else f"{a}–{b}"

def _table(rows, results):
    lines = [TABLE_HEADER, "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "median_s" not in r:
            why = r.get("error", "no measurement")
            lines.append(f"| {r['label']} | {r['threads']} | {r['contender']} | failed | {why[:60]} | | | |")
            continue
        base = _row(results, r["workload"], r["threads"], "fastnn-numpy")
        x = f"{base['median_s'] / r['median_s']:.2f}×" if base else "—"
        pf = f"{r['pct_floor']:.0f}%" if r.get("pct_floor") is not None else "—"
        name = r["contender"] + ("" if r.get("agrees_with_numpy", True) else " ⚠")
        cpp_bold = r["contender"] == "fastnn-cpp"
        med = _fmt_time(r["median_s"]) + (" †" if r.get("contended") else "")
        lines.append(f"| {r['label']} | {r['threads']} | {name} | {'**' + med + '**' if cpp_bold else med} | "
                     f"{_fmt_range(r['min_s'], r['max_s'])} | {r['gflops']:.1f} | {pf} | {x} |")
    return lines

def _header(out):
    """The title and what was measured where: machine, versions, probes, data, method."""
    m, p, cfg = out["machine"], out["probes"], out["config"]
    L = [f"# fastnn benchmark — {out['created']}", ""]
    cpu = m.get("cpu_model") or "unknown CPU"
    fms = m.get("cpu_family_model_stepping")
    L.append(f"* **Machine**: {cpu}" + (f" (family {fms[0]}, model {fms[1]})" if fms and fms[0] else "")
             + f", {m.get('usable_cpus')} usable CPUs; {m.get('platform')}")
    L.append(f"* **fastnn** {out['versions'].get('fastnn')}: ISA in use {m.get('isa_active') or '—'} "
             f"(detected {m.get('isa_detected') or '—'})")
    if m.get("numpy_blas"):
        L.append(f"* **NumPy** {out['versions'].get('numpy')}: {m['numpy_blas']}")
    else:
        L.append(f"* **NumPy** {out['versions'].get('numpy')}")
    if "torch" in out["versions"]:
        cap = out["blas"].get("torch", {}).get("cpu_capability")
        L.append(f"* **PyTorch** {out['versions']['torch']}" + (f" (CPU capability {cap})" if cap else ""))
    if p.get("available"):
        peaks = ", ".join(f"{v:.0f} GFLOP/s on {t} thread{'s' if t != '1' else ''}"
                          for t, v in p["fma_peak_gflops"].items())
        bws = ", ".join(f"{v:.1f} GB/s on {t} thread{'s' if t != '1' else ''}"
                        for t, v in p["read_bandwidth_gbs"].items())
        rt = p.get("core_to_core_round_trip_ns")
        L.append(f"* **Probes**: FMA peak ({p['best_isa']}, fp32) {peaks}; read bandwidth {bws}"
                 + (f"; core-to-core round trip {rt:.0f} ns (two threads handing a cache line to each "
                    f"other)" if rt else ""))
        if p.get("micro_kernel_gflops"):
            one = p["fma_peak_gflops"].get("1")
            share = f" ({100 * p['micro_kernel_gflops'] / one:.0f}% of the FMA peak)" if one else ""
            L.append(f"* **fastnn's GEMM micro-kernel** with its operands in L1 (not a floor, the kernel's own "
                     f"ceiling on this core): {p['micro_kernel_gflops']:.0f} GFLOP/s on 1 thread{share}")
    else:
        L.append(f"* **Probes**: not available ({p.get('reason')}); no floors")
    if out.get("data"):
        d = out["data"]
        L.append(f"* **Data**: {d['rows']}×{d['cols']} float32 from {d['source']}")
    L.append(f"* **Method**: {cfg['rounds']} rounds after {cfg['warmup_rounds']} warm-up, contenders interleaved "
             f"(order rotated each round), one worker process per contender and thread count; "
             f"median (bold for fastnn-cpp) and min–max; float32.")
    return L


def _round_trip_note(round_trips):
    """The core-to-core round trips probed after the multi-thread samples of the scaling runs: a
    hypervisor may place a VM's vCPUs on cores that share a cache or on cores that do not, and
    move them; the hand-overs of every batch, and so the speed-up, follow."""
    if not round_trips:
        return ""
    lo, mid, hi = min(round_trips), float(np.median(round_trips)), max(round_trips)
    return (f" Core-to-core round trip probed after each of the {len(round_trips)} multi-thread samples: "
            f"median {mid:.0f} ns ({lo:.0f}–{hi:.0f} ns). Hundreds of ns mean threads on cores that share no "
            f"cache (another CCD or socket, or vCPUs placed so): every batch's hand-overs then cost more, "
            f"and the speed-up is the placement's as much as fastnn's.")


def render_markdown(out):
    L = _header(out) + [""]
    res = out["results"]
    for kind, title in (("epoch", "Epochs (batch 100, lr 0.1)"), ("gemm", "SGEMM C = A·B (float32)")):
        rows = [r for r in res if r["kind"] == kind]
        if not rows:
            continue
        L += [f"## {title}", ""] + _table(rows, res) + [""]
        if kind == "epoch" and (out.get("scaling") or {}).get("speedup"):
            sc = out["scaling"]
            t2 = str(sc["threads"][1])
            L += [f"Thread scaling, {sc['label']} (fastnn-cpp on 1 and {t2} threads alternating round by round, "
                  f"{len(sc['times_s']['1'])} rounds): {_fmt_time(sc['median_s']['1'])} on 1 thread, "
                  f"{_fmt_time(sc['median_s'][t2])} on {t2}: **{sc['speedup']:.2f}×**."
                  + _round_trip_note(sc.get("round_trip_ns")), ""]
    L += _targets(out["targets"])
    L += _footnotes(out)
    L.append("")
    return "\n".join(L)


TARGET_SECTIONS = {
    5: "## Targets of issue 5 (1 thread unless stated; `--check` fails when one is not met)",
    20: "## Targets of issue 20, open: dense inputs and every CPU (1 thread unless stated; `--check 5,20` "
        "includes them)",
}

def _targets(targets):
    """One table per issue: each target's measurement and verdict."""
    L = []
    for issue, title in TARGET_SECTIONS.items():
        mine = [t for t in targets if t.get("issue", 5) == issue]
        if not mine:
            continue
        L += [title, "", TARGETS_HEADER, "|---|---:|---|---|"]
        for t in mine:
            verdict = {"met": "✅ met", "not met": "❌ not met", "info": "ℹ️ not a target"}.get(t["status"], "n/a")
            if t["status"] == "n/a" and t.get("why"):
                verdict += f" ({t['why']})"
            L.append(f"| {t['target']} | {t.get('measured') or '—'} | {t['needed']} | {verdict} |")
        L.append("")
    return L


def _footnotes(out):
    """What the columns mean, what fastnn-cpp-dense and -pixels are, contended samples, notes."""
    res, cfg = out["results"], out["config"]
    L = []
    L.append("Floor: the workload's GEMM FLOPs at the probed FMA peak (softmax epoch: or one read of X at the "
             "probed read bandwidth, whichever is longer). % of floor = floor / median. × NumPy = NumPy's median / "
             "this median. ⚠ = result differs from NumPy's (see notes).")
    if any(r["contender"] == DENSE_ONLY for r in res):
        L.append("")
        L.append("fastnn-cpp skips the zeros of X in the first layer of a net with a hidden layer when X is mostly "
                 "zeros (MNIST: 19% nonzero; `fastnn.set_skip_zeros`), so its first-layer products do about a "
                 "fifth of the dense multiply-adds. fastnn-cpp-dense is the same package with that turned off: "
                 "the dense GEMMs. The floor counts the dense FLOPs for both, so fastnn-cpp's % of floor can "
                 "pass 100%: it measures the epoch against the dense work, not the kernels against the FMA peak.")
    if any(r.get("workload", "").endswith("-centred") for r in res):
        L.append("")
        L.append("Centred X: the same rows minus their column means (float32), as features centred or "
                 "standardized for training are: no zeros, so every contender, fastnn-cpp included, does the "
                 "dense work; its % of floor is the dense kernels' against the FMA peak.")
    if any(r["contender"] == PIXELS_ONLY for r in res):
        L.append("")
        L.append("fastnn-cpp-pixels is fastnn-cpp's softmax epoch with X given as `fastnn.Pixels` (MNIST's uint8 "
                 "bytes and a scale of 1/255, widened batch by batch in the core): a quarter of the bytes of "
                 "float32 X to read. Its floor is the float32 epoch's (one read of float32 X or the FLOPs).")
    contended = [r for r in res if r.get("contended")]
    retried = sum(r.get("retries", 0) for r in res)
    if contended or retried:
        L.append(f"† {sum(r['contended'] for r in contended)} sample(s) in {len(contended)} row(s) ran while other "
                 f"work competed for the CPUs (PSI CPU stall above {cfg['max_cpu_stall']:.0%} of the sample) even "
                 f"after {cfg['retries']} retries; {retried} sample(s) were re-run in all. Rows with † are "
                 "pessimistic: rerun on a quiet machine.")
    if out["notes"]:
        L += ["", "Notes:", ""] + [f"* {n}" for n in out["notes"]]
    return L

def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x

def _output_paths(out_arg, stamp):
    if out_arg and os.path.splitext(out_arg)[1] in (".json", ".md"):
        stem = os.path.splitext(out_arg)[0]
    else:
        directory = out_arg or os.path.join("bench", "results")
        stem = os.path.join(directory, f"bench-{stamp}")
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    return stem + ".md", stem + ".json"

"""The command line: `fastnn bench`, bench/run.py, `python -m fastnn.benchmark`."""
import argparse
import datetime as _dt
import json
import signal
import sys
import threading

from .report import _json_safe, _output_paths, render_markdown
from .run import run_benchmark
from .targets import CHECKED_ISSUES, failed_targets


def build_parser():
    p = argparse.ArgumentParser(prog="fastnn bench", description="Benchmark fastnn-cpp against NumPy and PyTorch "
                                "(SGEMM and MNIST epochs); prints a markdown table and writes it with a JSON file.")
    p.add_argument("--quick", action="store_true", help="fewer rounds and GEMM sizes (about a minute)")
    p.add_argument("--smoke", action="store_true", help="a tiny run for tests: one small GEMM, a small synthetic "
                   "epoch, 1 round, 1 thread, no torch unless --contenders says so")
    p.add_argument("--threads", default="1,all", help="thread counts, comma-separated; 'all' = usable CPUs "
                   "(default 1,all)")
    p.add_argument("--rounds", type=int, default=None, help="measured rounds (default 5; --quick 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--epochs-only", action="store_true", help="only the MNIST epochs")
    g.add_argument("--gemm-only", action="store_true", help="only the SGEMM workloads (no MNIST needed)")
    p.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_DATA)")
    p.add_argument("--inputs", default="raw,centred", help="the epochs' X, comma-separated: raw (MNIST as parsed, "
                   "81%% zeros) and centred (minus its column means: dense); default raw,centred")
    p.add_argument("--out", default=None, help="output directory, or a path ending in .md/.json for both files "
                   "(default bench/results/)")
    p.add_argument("--contenders", default=None, help="engines to run, comma-separated from cpp,numpy,torch "
                   "(default: all that are installed)")
    p.add_argument("--min-time", type=float, default=None, help="seconds of calls per GEMM measurement")
    p.add_argument("--settle", type=float, default=0.1, help="pause after a multi-threaded measurement, so the "
                   "previous worker's pool threads stop spinning (default 0.1 s)")
    p.add_argument("--max-stall", type=float, default=0.05, help="a sample during which some task waited for a "
                   "CPU (Linux PSI) for more than this fraction of its time is re-run (default 0.05)")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a contended sample (default 2)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per measurement")
    p.add_argument("--check", nargs="?", const=",".join(map(str, CHECKED_ISSUES)), default=None, metavar="ISSUES",
                   help="exit with status 3 when a target of these issues (comma-separated; default "
                   f"{','.join(map(str, CHECKED_ISSUES))}, the accepted ones) is not met")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv=None):
    """Command-line entry point (`fastnn bench`, bench/run.py). Returns the exit status."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum, frame):     # run the cleanup (stop the workers) on `kill`
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, _terminate)
    if args.rounds is not None and args.rounds < 1:
        print("fastnn bench: --rounds: expected at least 1", file=sys.stderr)
        return 2
    checked = _checked_issues(args.check)
    if checked == ():
        print(f"fastnn bench: --check: expected issue numbers, comma-separated (e.g. 5,20), got {args.check!r}",
              file=sys.stderr)
        return 2
    try:
        out = run_benchmark(quick=args.quick, smoke=args.smoke, threads=args.threads, rounds=args.rounds,
                            gemm=not args.epochs_only, epochs=not args.gemm_only, data=args.data,
                            inputs=args.inputs, contenders=args.contenders, min_time=args.min_time, settle=args.settle,
                            timeout=args.timeout, max_stall=args.max_stall, retries=max(0, args.retries),
                            progress=not args.quiet)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("fastnn bench: interrupted", file=sys.stderr)
        return 130
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    md_path, json_path = _output_paths(args.out, stamp)
    md = render_markdown(out)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(md)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(_json_safe(out), f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(md)
    print(f"wrote {md_path} and {json_path} ({out['duration_s']:.0f} s)", file=sys.stderr)
    if checked and failed_targets(out["targets"], checked):
        return 3
    failed = [r for r in out["results"] if "median_s" not in r]
    return 1 if failed else 0


def _checked_issues(spec):
    """--check's issues as a tuple of ints; None without --check, () when malformed."""
    if spec is None:
        return None
    try:
        issues = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        return ()
    return issues

"""The `fastnn` command (also `python -m fastnn`): train, eval, bench, info.

    fastnn train                       # a 784-400-10 ReLU MLP on MNIST, 10 epochs
    fastnn train --model softmax --epochs 5 --save softmax.npz --plot curves.png
    fastnn eval softmax.npz
    fastnn bench --help
    fastnn info

Exit codes: 0 success, 1 an error (one line on stderr naming what and where; `--debug` adds the
traceback), 2 bad arguments (argparse usage), 130 interrupted by Ctrl-C (after saving what was
asked for). Output paths are checked before training; a model that cannot be saved where asked
is saved to a named fallback file instead (see docs/faults.md).
"""
import argparse
import math
import os
import platform
import sys
import time
import traceback

from .cli_outputs import (OutputError, Stdout, check_distinct, check_output_path, check_plot_format,
                          fallback_directories, save_with_fallback, silence_stdout)

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
DATASET_CHOICES = ("mnist", "fashion-mnist")


class CommandError(Exception):
    """An error to report as `fastnn <command>: error: ...` with exit code 1."""


# ---------------------------------------------------------------------------------------------
# argument types


def _int_at_least(low, wording):
    """An argparse type: an integer >= low, else the error 'expected <wording>, got ...'."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _hidden_sizes(text):
    """'400' or '256,128' -> [400] or [256, 128]."""
    parts = [p.strip() for p in text.split(",")]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return sizes


def _file_name(text):
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    return text


def _dataset_name(text):
    key = text.strip().lower().replace("_", "-")
    if key not in DATASET_CHOICES:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASET_CHOICES)})")
    return key


# ---------------------------------------------------------------------------------------------
# the parser


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train and evaluate softmax regression and ReLU MLPs on MNIST / Fashion-MNIST.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,bench,info}")

    data_opts = argparse.ArgumentParser(add_help=False)
    g = data_opts.add_argument_group("data")
    g.add_argument("--data", metavar="DIR",
                   help="directory with the four IDX .gz files (default: $FASTNN_DATA, then the "
                        "user cache, then a download)")
    g.add_argument("--no-download", action="store_true",
                   help="never download: fail if the files are not found locally")
    g.add_argument("--test-limit", type=_positive_int, metavar="N",
                   help="use only the first N test samples")

    run_opts = argparse.ArgumentParser(add_help=False)
    g = run_opts.add_argument_group("runtime")
    g.add_argument("--backend", choices=("cpp", "numpy"),
                   help="compute backend (default: cpp when built, else numpy; $FASTNN_BACKEND)")
    g.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads inside each batch (default: the CPUs available)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error")

    t = sub.add_parser(
        "train", parents=[data_opts, run_opts], help="train a model and print one table row per epoch",
        description="Train by minibatch SGD, printing train/test loss and error, seconds and "
                    "samples/s per epoch. Ctrl-C stops after saving what --save/--history/--plot ask for.")
    g = t.add_argument_group("model and training")
    g.add_argument("--model", choices=("mlp", "softmax"), default="mlp", help="default: mlp")
    g.add_argument("--hidden", type=_hidden_sizes, action="append", metavar="SIZES",
                   help="hidden layer sizes of the MLP: repeat the option or give a comma list, "
                        "e.g. --hidden 256,128 (default: 400)")
    g.add_argument("--epochs", type=_positive_int, default=10, help="default: 10")
    g.add_argument("--lr", type=_positive_float, default=0.2, help="learning rate (default: 0.2)")
    g.add_argument("--batch", type=_positive_int, default=100, help="minibatch size (default: 100)")
    g.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the weight initialisation (default: 0)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    g.add_argument("--dense", action="store_true",
                   help="always run the dense GEMMs: do not skip the zeros of a mostly-zero X in the "
                        "first layer (fastnn.set_skip_zeros(False); cpp backend)")
    t.add_argument("--dataset", type=_dataset_name, default="mnist",
                   help="mnist or fashion-mnist (default: mnist)")
    t.add_argument("--train-limit", type=_positive_int, metavar="N",
                   help="train on the first N training samples only")
    g = t.add_argument_group("output")
    g.add_argument("--save", type=_file_name, metavar="MODEL.npz", help="save the trained model")
    g.add_argument("--history", type=_file_name, metavar="HISTORY.csv", help="write the per-epoch table as CSV")
    g.add_argument("--plot", type=_file_name, metavar="CURVES.png",
                   help="plot loss and error per epoch (needs matplotlib)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no preamble")

    e = sub.add_parser("eval", parents=[data_opts, run_opts], help="evaluate a saved model on the test set",
                       description="Print the loss and error of a model saved by `fastnn train --save`.")
    e.add_argument("model", type=_file_name, metavar="MODEL.npz")
    e.add_argument("--dataset", type=_dataset_name,
                   help="default: the dataset the model was trained on")

    sub.add_parser("bench", add_help=False, help="run the benchmark harness (fastnn bench --help)")
    sub.add_parser("info", help="version, backends, build and CPU details").add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    return parser


# ---------------------------------------------------------------------------------------------
# helpers


def _setup_runtime(parser, args):
    import fastnn
    if args.backend is not None:
        if args.backend not in fastnn.available_backends():
            parser.error(f"argument --backend: {args.backend!r} is not available on this installation "
                         f"(available: {', '.join(fastnn.available_backends())})")
        fastnn.set_backend(args.backend)
    else:
        _current_backend()
    if getattr(args, "dense", False):   # (train only: evaluation is dense anyway)
        fastnn.set_skip_zeros(False)
    if args.threads is not None:
        cpus = _cpus_available()
        if cpus and args.threads > cpus:
            _warn(args, f"--threads {args.threads} is more than the {_plural(cpus, 'CPU')} available; "
                        f"going on with {args.threads} (slower than {cpus} on most machines)")
        try:
            fastnn.set_num_threads(args.threads)
        except RuntimeError:
            pass     # no C++ core: only BLAS threads matter
        except ValueError as exc:
            raise CommandError(f"--threads: {exc}") from None
        try:
            import threadpoolctl
            threadpoolctl.threadpool_limits(args.threads)
        except ImportError:
            pass
    return fastnn.get_backend()


def _current_backend():
    """The backend in use; CommandError when FASTNN_BACKEND names none that works."""
    import fastnn
    try:
        return fastnn.get_backend()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _cpus_available():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _warn(args, text):
    print(f"fastnn {args.command}: warning: {text}", file=sys.stderr, flush=True)


def _threads_now():
    try:
        from .runtime import get_num_threads
        return get_num_threads()
    except RuntimeError:
        return None


def _load_data(args, dataset):
    from .datasets import DatasetDownloadError, DatasetNotFoundError, load_dataset
    try:
        return load_dataset(dataset, args.data, download=not args.no_download,
                            progress=not getattr(args, "quiet", False) and sys.stderr.isatty())
    except (DatasetNotFoundError, DatasetDownloadError, ValueError) as exc:
        raise CommandError(str(exc)) from None


TABLE_HEADER = ("| epoch | train loss | train err | test loss | test err | seconds | samples/s |\n"
                "|------:|-----------:|----------:|----------:|---------:|--------:|----------:|")


def format_row(r):
    return (f"| {r['epoch']:>5} | {r['train_loss']:>10.5f} | {r['train_err']:>9.5f} | "
            f"{r['test_loss']:>9.5f} | {r['test_err']:>8.5f} | {r['seconds']:>7.2f} | "
            f"{r['samples_per_s']:>9,.0f} |")


def _title(dataset):
    from .datasets import DATASETS
    return DATASETS[dataset].title if dataset in DATASETS else str(dataset)


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


class _ProgressBar:
    """One tqdm bar per epoch on stderr; a no-op without tqdm or a terminal."""

    def __init__(self, enabled, epochs):
        self.tqdm = None
        if enabled:
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:
                pass
        self.epochs, self.epoch, self.bar, self.done = epochs, 0, None, 0

    @property
    def active(self):
        return self.tqdm is not None

    def __call__(self, done, n):
        if self.bar is None:
            self.epoch += 1
            self.done = 0
            self.bar = self.tqdm(total=n, desc=f"epoch {self.epoch}/{self.epochs}", unit="img",
                                 unit_scale=True, leave=False, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.done)
        self.done = done

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------------------------------
# commands


def cmd_train(parser, args):
    import numpy as np

    from . import __version__
    from .fitting import TrainingDivergedError, fit

    if args.model == "softmax" and args.hidden:
        parser.error("argument --hidden: not allowed with --model softmax")
    hidden = [h for group in (args.hidden or [[400]]) for h in group]
    _check_before_training(args, hidden)
    backend = _setup_runtime(parser, args)

    data = _load_data(args, args.dataset)
    X_tr, y_tr, X_te, y_te = data
    if args.train_limit:
        X_tr, y_tr = X_tr[:args.train_limit], y_tr[:args.train_limit]
    if args.test_limit:
        X_te, y_te = X_te[:args.test_limit], y_te[:args.test_limit]

    k = int(max(y_tr.max(), y_te.max())) + 1
    sizes = [X_tr.shape[1]] + ([] if args.model == "softmax" else hidden) + [k]
    threads = _threads_now()
    out = Stdout()
    if not args.quiet:
        out.say(f"fastnn {__version__}: {args.model} {'-'.join(map(str, sizes))} ({args.dtype}) on "
                f"{args.dataset} ({len(y_tr):,} train / {len(y_te):,} test); backend {backend}"
                + (f", {_plural(threads, 'thread')}" if threads else "")
                + f"; lr {args.lr:g}, batch {args.batch}, {_plural(args.epochs, 'epoch')}, seed {args.seed}")
    out.say(TABLE_HEADER)

    bar = _ProgressBar(not args.quiet and sys.stderr.isatty(), args.epochs)
    history_failed = []

    def on_epoch(record, history):
        bar.close()
        out.say(format_row(record))
        if args.history:
            try:
                history.to_csv(args.history)
            except OSError as exc:          # written again at the end; training goes on
                if not history_failed:
                    _warn(args, f"--history: cannot write {args.history!r} ({_why(exc)}); training goes "
                                f"on, the history is written again at the end")
                history_failed.append(exc)

    settings = {"dataset": args.dataset, "train_limit": args.train_limit, "test_limit": args.test_limit,
                "backend": backend, "threads": threads, "fastnn_version": __version__}
    diverged = None
    try:
        history = fit(X_tr, y_tr, X_te, y_te, model=args.model, hidden=hidden, epochs=args.epochs,
                      lr=args.lr, batch=args.batch, seed=args.seed, dtype=np.dtype(args.dtype),
                      settings=settings, on_epoch=on_epoch, progress=bar if bar.active else None)
    except TrainingDivergedError as exc:
        history, diverged = exc.history, exc
    except ValueError as exc:       # e.g. a net too large for this machine
        raise CommandError(str(exc)) from None
    finally:
        bar.close()

    if history.interrupted:
        print(f"fastnn train: interrupted after {_plural(len(history), 'complete epoch')}", file=sys.stderr,
              flush=True)
    failures = _save_outputs(args, history, out, save_model=diverged is None)
    if out.broken:
        print("fastnn train: stdout was closed (broken pipe); the table was cut short, training and the "
              "outputs went on", file=sys.stderr, flush=True)
    if diverged is not None:
        failures.insert(0, f"{diverged}; the model was not saved (its weights are not finite); "
                           f"try a smaller --lr")
    for failure in failures:
        print(f"fastnn train: error: {failure}", file=sys.stderr, flush=True)
    if failures:
        return EXIT_ERROR
    return EXIT_INTERRUPTED if history.interrupted else 0


def _check_before_training(args, hidden):
    """Everything that can fail after training, checked before it: output paths (directory
    exists and accepts a file, target not a directory, plot format known to matplotlib), and a
    net that cannot fit in memory."""
    from .fitting import MissingExtraError, check_fits_in_memory, require_matplotlib
    if args.plot:
        try:
            require_matplotlib()
        except MissingExtraError as exc:
            raise CommandError(f"--plot: {exc}") from None
    try:
        outputs = [("--save", args.save), ("--history", args.history), ("--plot", args.plot)]
        for option, path in outputs:
            if path:
                check_output_path(option, path)
        check_distinct(outputs)
        if args.plot:
            check_plot_format(args.plot)
    except OutputError as exc:
        raise CommandError(str(exc)) from None
    sizes = [784] + ([] if args.model == "softmax" else hidden) + [10]   # the datasets' shapes
    try:
        check_fits_in_memory(sizes, args.dtype, args.batch)
    except ValueError as exc:
        raise CommandError(f"--hidden: {exc}") from None


def _why(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def _save_outputs(args, history, out, save_model=True):
    """Write what --save, --history and --plot ask for, each whatever happens to the others (a
    second Ctrl-C here is ignored until done). A model that cannot be written where asked goes to
    a fallback file (said in the message). Returns the failures, one line each."""
    import signal

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:     # not the main thread
        pass
    failures = []
    try:
        if args.save and save_model:
            _save_model_output(args, history, out, failures)
        if args.history:
            _write_output("--history", args.history, history.to_csv, out, failures, "history")
        if args.plot:
            if len(history):
                m = history.model
                title = (f"{m.describe()} on {_title(m.settings.get('dataset'))}, "
                         f"lr {m.settings['lr']:g}, batch {m.settings['batch']}")
                _write_output("--plot", args.plot, lambda p: history.plot(p, title=title), out, failures, "plot")
            else:
                print("fastnn train: no complete epoch, no plot written", file=sys.stderr)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return failures


def _save_model_output(args, history, out, failures):
    from .model_io import save_model
    written, error = save_with_fallback(args.save, lambda p: save_model(p, history.model))
    if error is None:
        out.say(f"saved model to {args.save}")
    elif written is not None:
        failures.append(f"--save: cannot write {args.save!r} ({_why(error)}); the model was saved to "
                        f"{written} instead")
    else:
        tried = ", ".join(fallback_directories(args.save))
        failures.append(f"--save: cannot write {args.save!r} ({_why(error)}), nor a fallback file in "
                        f"{tried}; the model is lost")


def _write_output(option, path, write, out, failures, what):
    try:
        write(path)
    except (OSError, ValueError) as exc:   # ValueError: matplotlib's answer to some bad paths
        failures.append(f"{option}: cannot write {path!r} ({_why(exc)})")
    else:
        out.say(f"saved {what} to {path}")


def cmd_eval(parser, args):
    from .model_io import load_model
    try:
        model = load_model(args.model)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    backend = _setup_runtime(parser, args)
    dataset = args.dataset or model.settings.get("dataset", "mnist")
    if dataset not in DATASET_CHOICES:
        raise CommandError(f"{args.model}: unknown dataset {dataset!r} in its settings; pass --dataset")
    _, _, X, y = _load_data(args, dataset)
    if args.test_limit:
        X, y = X[:args.test_limit], y[:args.test_limit]
    if model.layer_sizes[0] != X.shape[1] or model.layer_sizes[-1] <= int(y.max()):
        raise CommandError(f"{args.model}: a {model.describe()} model does not fit {dataset} "
                           f"({X.shape[1]} features, {int(y.max()) + 1} classes)")
    start = time.perf_counter()
    loss, err = model.evaluate(X, y)
    seconds = time.perf_counter() - start
    s = model.settings
    done = s.get("epochs_completed")
    trained = f"{_plural(done, 'epoch') if isinstance(done, int) else '? epochs'} on {s.get('dataset', '?')}"
    if s.get("lr") is not None:
        trained += f", lr {s['lr']:g}, batch {s.get('batch')}"
    print(f"model: {args.model}: {model.describe()}, trained {trained}")
    print(f"data:  {dataset} test set, {len(y):,} samples; backend {backend}; {seconds:.2f} s")
    print(f"test loss {loss:.5f}  test err {err:.5f}")
    return 0


def _cpu_simd_features():
    wanted = ["sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f",
              "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile",
              "asimd", "sve", "neon"]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return None


def cmd_info(parser, args):
    import numpy as np

    import fastnn
    from . import backends
    from .datasets import DatasetNotFoundError, cache_dir, find_dataset

    print(f"fastnn {fastnn.__version__}  (python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.system()} {platform.machine()})")
    available = fastnn.available_backends()
    try:
        in_use, backend_error = fastnn.get_backend(), None
    except ValueError as exc:      # FASTNN_BACKEND names no usable backend: reported, then exit 1
        in_use, backend_error = f"none: {exc}", exc
    print(f"backends: {', '.join(available)}  (in use: {in_use})")
    for name, exc in backends._load_errors.items():
        print(f"  {name}: not available ({exc})")
    try:
        info = fastnn.build_info()
    except RuntimeError as exc:
        print(f"build_info: the C++ extension is missing ({exc})")
        info = {}
    else:
        print("build_info:")
        for key, value in info.items():
            print(f"  {key}: {value}")
    features = _cpu_simd_features()
    print(f"cpu simd features: {' '.join(features) if features else 'unknown'}"
          + (f"  (core uses: {info['simd_active']})" if info.get("simd_active") else ""))
    threads = _threads_now()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"threads: {threads if threads else 'n/a (no C++ core)'}  (CPUs available: {cpus})")
    extras = []
    for module, extra in (("pooch", "data"), ("tqdm", "cli"), ("matplotlib", "plot")):
        try:
            mod = __import__(module)
            extras.append(f"{module} {getattr(mod, '__version__', '')} [{extra}]")
        except ImportError:
            extras.append(f"{module} missing [{extra}]")
    print(f"optional: {', '.join(extras)}")
    for name in DATASET_CHOICES:
        try:
            where = find_dataset(name, download=False)
        except DatasetNotFoundError:
            where = f"not found locally (would download into {cache_dir(name)})"
        print(f"data {name}: {where}")
    if backend_error is not None:
        raise CommandError(str(backend_error))
    return 0


def cmd_bench(argv):
    try:
        from . import benchmark
    except ImportError as exc:
        print(f"fastnn bench: error: the benchmark harness (fastnn.benchmark) is not available ({exc})",
              file=sys.stderr)
        return EXIT_ERROR
    return benchmark.main(list(argv)) or 0


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    """Entry point of the `fastnn` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bench":      # everything after `bench` belongs to the harness
            return cmd_bench(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        command = {"train": cmd_train, "eval": cmd_eval, "info": cmd_info}[args.command]
        return command(parser, args)
    except CommandError as exc:
        return _report(argv, str(exc))
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:     # e.g. `fastnn info | head -1`
        silence_stdout()
        return EXIT_ERROR
    except MemoryError as exc:
        return _report(argv, f"out of memory{': ' + str(exc) if str(exc) else ''}", debug=True)
    except Exception as exc:    # a bug or an unforeseen fault: still one line (--debug: the traceback)
        return _report(argv, f"{type(exc).__name__}: {exc}", debug=True)


def _command_name(argv):
    return next((a for a in argv if a in ("train", "eval", "info")), "")


def _report(argv, message, debug=False):
    """One line on stderr, `fastnn <command>: error: <message>`; with --debug, the traceback first."""
    if "--debug" in argv:
        traceback.print_exc()
    elif debug:
        message += " (run again with --debug for the traceback)"
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"fastnn {_command_name(argv)}: error: {line}".replace("fastnn : ", "fastnn: "), file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

"""What `fastnn train` writes, made safe: output paths checked before training, a stdout that
survives a closed pipe, and a fallback file for a model that cannot be saved where asked.

    check_output_path("--save", "out/m.npz")      # OutputError now, not after an hour of training
    out = Stdout(); out.say("| 1 | ... |")        # after `| head -2` exits: silently dropped
    where = save_with_fallback(path, write)       # (path written, error or None)
"""
import os
import sys
import tempfile
import time


class OutputError(Exception):
    """An output cannot be written; the message names the option and the path."""


def check_output_path(option, path):
    """OutputError unless `path` can be written atomically: its directory exists and accepts a
    new file (tried for real, with the save's own temporary name), and `path` is absent, a
    regular file, or a symbolic link to one."""
    if path == "":
        raise OutputError(f"{option}: expected a file name, got an empty string")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise OutputError(f"{option}: {path!r} is a directory")
    if os.path.exists(target) and not os.path.isfile(target):
        raise OutputError(f"{option}: {path!r} exists and is not a regular file")
    from .model_io import temporary_path
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        shown = os.path.dirname(os.path.abspath(path))
        state = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise OutputError(f"{option}: {shown!r} {state}")
    try:
        _try_create(temporary_path(target))
    except OSError as exc:
        raise OutputError(f"{option}: cannot write in {directory!r} ({exc.strerror or exc})") from None


def _try_create(path):
    if os.path.lexists(path):
        os.unlink(path)               # a leftover temporary of an interrupted save
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.unlink(path)


def check_distinct(paths):
    """OutputError when two options name the same file (one would overwrite the other)."""
    seen = {}
    for option, path in paths:
        if path:
            key = os.path.realpath(path)
            if key in seen:
                raise OutputError(f"{seen[key]} and {option}: both write {path!r}")
            seen[key] = option


def check_plot_format(path):
    """OutputError unless matplotlib can write the format of `path`'s suffix."""
    from matplotlib.figure import Figure
    supported = Figure().canvas.get_supported_filetypes()
    suffix = os.path.splitext(path)[1][1:].lower()
    if suffix and suffix not in supported:
        raise OutputError(f"--plot: matplotlib cannot write {suffix!r} files ({path!r}); use one of "
                          f"{', '.join(sorted(supported))}")


def fallback_directories(path):
    """Where a model goes when its own directory refuses it: the current directory, the temporary
    directory, the home directory (each once)."""
    out = []
    for d in (os.getcwd(), tempfile.gettempdir(), os.path.expanduser("~")):
        d = os.path.realpath(d)
        if d not in out and d != os.path.dirname(os.path.realpath(path)):
            out.append(d)
    return out


def save_with_fallback(path, save):
    """Call save(path); when it fails with OSError, call save() on a new file named
    fastnn-rescue-<time>-<pid>-<name> in each fallback directory until one works.
    Returns (the path written or None, the first OSError or None)."""
    try:
        save(path)
        return path, None
    except OSError as exc:
        first = exc
    name = f"fastnn-rescue-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.path.basename(path) or 'model.npz'}"
    for directory in fallback_directories(path):
        candidate = os.path.join(directory, name)
        try:
            save(candidate)
            return candidate, first
        except OSError:
            continue
    return None, first


class Stdout:
    """print() to stdout that survives a reader who went away (`fastnn train | head -2`): after
    the first BrokenPipeError, stdout is pointed at os.devnull (so that the interpreter's final
    flush does not fail either) and the rest is dropped; `broken` tells it happened."""

    def __init__(self):
        self.broken = False

    def say(self, text=""):
        if self.broken:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.broken = True
            silence_stdout()


def silence_stdout():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass

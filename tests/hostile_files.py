"""Builders of the hostile and malformed files of issue 17 (model files and IDX gzip bombs), for
the tests and for measuring the memory their loading takes (`python tests/hostile_files.py DIR`
writes them all and prints the peak RSS of loading each in a fresh interpreter)."""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np

GOOD_SIZES = [784, 32, 10]


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_header(dtype, shape):
    """The .npy header alone (what np.save writes before the data)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def metadata(sizes=GOOD_SIZES, kind="mlp", dtype="float32", settings="{}", version=1):
    return {"fastnn_format": np.array(version), "kind": np.array(kind),
            "layer_sizes": np.array(sizes, dtype=np.int64), "dtype": np.array(dtype),
            "settings": np.array(settings)}


def weights(sizes=GOOD_SIZES, dtype=np.float32):
    rng = np.random.default_rng(0)
    return {f"W{i}": rng.standard_normal((a, b)).astype(dtype) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}


def write_npz(path, members, compress=False):
    """members: name -> array (saved as name.npy) or bytes (written as they are)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, value in members.items():
            data = value if isinstance(value, bytes) else npy_bytes(value)
            zf.writestr(name if name.endswith(".npy") or isinstance(value, bytes) else name + ".npy", data)
    return path


def zero_bomb_npz(path, declared_bytes, level=1):
    """A small deflated file whose W0 is `declared_bytes` of zeros under a consistent .npy header
    (float32, shape (rows, 1024)), with layer_sizes that do not match it: the reproducer of the
    4.2 MB file that made load_model read 4.2 GB before its shape check."""
    rows = declared_bytes // 4096
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, value in metadata().items():
            zf.writestr(name + ".npy", npy_bytes(value))
        with zf.open("W0.npy", "w", force_zip64=True) as f:
            f.write(npy_header(np.float32, (rows, 1024)))
            chunk = bytes(1 << 24)
            left = rows * 4096
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        zf.writestr("W1.npy", npy_bytes(weights()["W1"]))
    return path


def huge_shape_npz(path):
    """A few KB declaring W0 of shape (10**6, 10**6) float32 (3.6 TiB) in its .npy header."""
    members = {**metadata(sizes=[10**6, 10**6]), "W0.npy": npy_header(np.float32, (10**6, 10**6)) + bytes(64)}
    return write_npz(path, members)


def hostile_models(directory):
    """name -> path of every malformed model file of the issue (each must be refused)."""
    d = str(directory)
    good = {**metadata(), **weights()}
    w = weights()
    files = {
        "zero-bomb": zero_bomb_npz(os.path.join(d, "zero-bomb.npz"), 400 << 20),
        "huge-shape": huge_shape_npz(os.path.join(d, "huge-shape.npz")),
        "deep-json": write_npz(os.path.join(d, "deep-json.npz"),
                               {**good, "settings": np.array("[" * 100000 + "]" * 100000)}),
        "raw-member": write_npz(os.path.join(d, "raw-member.npz"),
                                {**{k: v for k, v in good.items() if k != "kind"}, "kind.npy": b"mlp"}),
        "non-npy-member": write_npz(os.path.join(d, "non-npy-member.npz"), {**good, "notes.txt": b"hello"}),
        "pk-only": os.path.join(d, "pk-only.npz"),
        "softmax-two-matrices": write_npz(os.path.join(d, "softmax-two.npz"), {**good, "kind": np.array("softmax")}),
        "version-1.9": write_npz(os.path.join(d, "v19.npz"), {**good, "fastnn_format": np.array(1.9)}),
        "version-str": write_npz(os.path.join(d, "vstr.npz"), {**good, "fastnn_format": np.array("1")}),
        "size-784.5": write_npz(os.path.join(d, "frac.npz"), {**good, "layer_sizes": np.array([784.5, 32, 10])}),
        "extra-W2": write_npz(os.path.join(d, "extra.npz"), {**good, "W2": np.ones((10, 10), np.float32)}),
        "float16": write_npz(os.path.join(d, "f16.npz"),
                             {**good, "dtype": np.array("float16"), **{k: a.astype(np.float16) for k, a in w.items()}}),
        "int64": write_npz(os.path.join(d, "i64.npz"), {**good, "W0": w["W0"].astype(np.int64)}),
        "big-endian": write_npz(os.path.join(d, "be.npz"), {**good, "W0": w["W0"].astype(">f4")}),
        "lr-abc": write_npz(os.path.join(d, "lr.npz"), {**good, "settings": np.array(json.dumps({"lr": "abc"}))}),
        "missing-W1": write_npz(os.path.join(d, "missing.npz"), {k: v for k, v in good.items() if k != "W1"}),
        "object-dtype": write_npz(os.path.join(d, "object.npz"), {**good, "W0": np.array([None, 1], dtype=object)}),
    }
    with open(files["pk-only"], "wb") as f:
        f.write(b"PK")
    return files


def idx_gzip_bomb(path, declared_images, actual_bytes, level=1):
    """An IDX image gzip that declares `declared_images` 28x28 images and inflates to
    `actual_bytes` bytes of data after its header (written in chunks: never in memory)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)    # 31: gzip container
    with open(path, "wb") as f:
        f.write(comp.compress(struct.pack(">iiii", 2051, declared_images, 28, 28)))
        chunk = bytes(1 << 24)
        left = actual_bytes
        while left:
            n = min(left, len(chunk))
            f.write(comp.compress(chunk[:n]))
            left -= n
        f.write(comp.flush())
    return path


def idx_labels_gzip(path, labels):
    data = struct.pack(">ii", 2049, len(labels)) + np.asarray(labels, dtype=np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    return path


PEAK_RSS_SCRIPT = """
import resource, sys
import fastnn
from fastnn.mnist import parse_mnist, read_idx_images
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kind, paths = sys.argv[1], sys.argv[2:]
base = peak()
for p in paths:
    try:
        if kind == "model":
            fastnn.load_model(p)
        elif kind == "images":
            read_idx_images(p)
        else:
            parse_mnist(*p.split(","))
        outcome = "LOADED"
    except ValueError as exc:
        outcome = "ValueError"
    print(p, outcome, peak() - base)
print("BASE", base)
"""


def peak_rss_over_baseline(kind, paths, env=None):
    """Load each path in one fresh interpreter; returns ({path: (outcome, peak bytes over the
    interpreter's baseline after `import fastnn`)}, baseline bytes)."""
    r = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, kind, *map(str, paths)], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    out, base = {}, None
    for line in r.stdout.splitlines():
        parts = line.rsplit(" ", 2)
        if parts[0] == "BASE" or line.startswith("BASE"):
            base = int(line.split()[1])
        else:
            out[parts[0]] = (parts[1], int(parts[2]))
    return out, base


if __name__ == "__main__":
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    files = hostile_models(directory)
    if len(sys.argv) > 2 and sys.argv[2] == "--full-size":    # the issue's own 4.2 GB bomb
        files["zero-bomb-4.2GB"] = zero_bomb_npz(os.path.join(directory, "zero-bomb-4g.npz"), 4200 << 20)
    results, base = peak_rss_over_baseline("model", files.values())
    print(f"baseline after `import fastnn`: {base / 2**20:.1f} MiB")
    for name, path in files.items():
        outcome, extra = results[str(path)]
        print(f"{name:22s} {os.path.getsize(path):>12,} bytes  {outcome:10s} peak RSS +{extra / 2**20:.1f} MiB")

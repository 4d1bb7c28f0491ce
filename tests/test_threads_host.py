"""The C++ core's thread count follows the host, survives fork, and obeys threadpoolctl.

  * Default: the smaller of the CPUs this process may run on and OMP_NUM_THREADS;
    set_num_threads(n) overrides it, set_num_threads(None) follows the host again.
  * threadpoolctl.threadpool_limits(n) limits fastnn inside the block and restores it after, and
    threadpool_info() lists fastnn (a registered controller: fastnn/threadpool.py).
  * A child forked after multi-threaded work (os.fork, multiprocessing "fork",
    ProcessPoolExecutor) runs single-threaded and gives the parent's bits; before this, GNU
    OpenMP's pool made such a child wait for ever.
  * joblib/loky and dask workers get one thread per worker, and a parallel grid search picks the
    same parameters as a sequential one.

Each scenario that depends on the process's start-up (environment, affinity, fork) runs in a fresh
interpreter, with a timeout, and its process group killed if it hangs.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif("cpp" not in fastnn.available_backends(), reason="cpp backend not built")

LINUX = sys.platform.startswith("linux")


def run_python(code, env=None, timeout=60):
    """Runs `code` in a fresh interpreter; returns the JSON its last stdout line holds. A hang past
    `timeout` kills the whole process group (forked children too) and fails the test."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"did not finish within {timeout} s (hung); stderr:\n{err[-2000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1]), err


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ---- the default follows the host -----------------------------------------------------------

def test_omp_num_threads_sets_the_default():
    code = """
        import json, fastnn
        info = fastnn.build_info()
        print(json.dumps([fastnn.get_num_threads(), info["num_threads_source"]]))
    """
    assert run_python(code, {"OMP_NUM_THREADS": "1"})[0] == [1, "host"]
    assert run_python(code, {"OMP_NUM_THREADS": "64"})[0] == [usable_cpus(), "host"]
    assert run_python(code)[0] == [usable_cpus(), "host"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_the_affinity_mask_caps_the_default():
    cpu = min(os.sched_getaffinity(0))
    code = f"""
        import json, os
        os.sched_setaffinity(0, {{{cpu}}})
        import fastnn
        print(json.dumps(fastnn.get_num_threads()))
    """
    assert run_python(code)[0] == 1


def test_set_num_threads_overrides_the_host_and_none_follows_it_again():
    code = """
        import json, fastnn
        seen = [fastnn.get_num_threads()]
        fastnn.set_num_threads(3); seen += [fastnn.get_num_threads(), fastnn.build_info()["num_threads_source"]]
        fastnn.set_num_threads(None); seen += [fastnn.get_num_threads(), fastnn.build_info()["num_threads_source"]]
        print(json.dumps(seen))
    """
    assert run_python(code, {"OMP_NUM_THREADS": "1"})[0] == [1, 3, "set_num_threads", 1, "host"]


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                                        (True, TypeError)])
def test_set_num_threads_refuses_what_is_not_a_count(bad, error):
    before = fastnn.get_num_threads()
    with pytest.raises(error, match="n: expected an integer >= 1 or None"):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before


@pytest.mark.skipif(not LINUX, reason="counts the threads in /proc/self/task")
@pytest.mark.parametrize("limit", ["env", "threadpoolctl", "set_num_threads"])
def test_a_limit_of_one_starts_no_thread(limit):
    # The surest sign that nothing runs beside the caller: the process gains no thread during an
    # h=400 epoch (a team of 2 would leave libgomp's pool thread behind; see the control below).
    code = f"""
        import contextlib, json, os, numpy as np, fastnn
        limit = {limit!r}
        if limit == "threadpoolctl":
            from threadpoolctl import threadpool_limits
            block = threadpool_limits(1)
        elif limit == "set_num_threads":
            fastnn.set_num_threads(1); block = contextlib.nullcontext()
        else:
            block = contextlib.nullcontext()
        rng = np.random.default_rng(0)
        X = rng.random((500, 784), dtype=np.float32); y = rng.integers(0, 10, 500)
        W1 = rng.standard_normal((784, 400), dtype=np.float32) / 28; W2 = np.zeros((400, 10), np.float32)
        fastnn.set_backend("cpp")
        threads = lambda: len(os.listdir("/proc/self/task"))
        with block:
            before = threads(); fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=100); during = threads()
            inside = fastnn.get_num_threads()
        fastnn.set_num_threads(2); fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=100)
        print(json.dumps([before, during, inside, threads()]))
    """
    if limit == "threadpoolctl":
        pytest.importorskip("threadpoolctl")
    env = {"OMP_NUM_THREADS": "1"} if limit == "env" else {}
    (before, during, inside, after_two), _ = run_python(code, env)
    assert inside == 1
    assert during == before
    assert after_two > during   # the control: a team of two does add a thread


# ---- threadpoolctl ---------------------------------------------------------------------------

def test_threadpoolctl_lists_limits_and_restores_fastnn():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    saved_setting = fastnn.build_info()["num_threads_source"]
    fastnn.set_num_threads(None)
    try:
        host = fastnn.get_num_threads()
        entries = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "fastnn"]
        assert len(entries) == 1
        assert entries[0]["user_api"] == "openmp"
        assert entries[0]["num_threads"] == host
        assert entries[0]["version"] == fastnn.__version__
        with threadpoolctl.threadpool_limits(1):
            assert fastnn.get_num_threads() == 1
        assert fastnn.get_num_threads() == host
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert fastnn.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):   # not fastnn's API
            assert fastnn.get_num_threads() == host
        assert fastnn.get_num_threads() == host
    finally:
        if saved_setting == "set_num_threads":
            fastnn.set_num_threads(host)


# ---- fork ------------------------------------------------------------------------------------

FORK_SCRIPT = """
    import concurrent.futures as cf, json, multiprocessing as mp, os, sys, warnings
    import numpy as np, fastnn

    fastnn.set_backend("cpp")
    fastnn.set_num_threads(2)          # the parent runs teams of threads: libgomp's pool exists

    def work():
        rng = np.random.default_rng(1)
        A = rng.standard_normal((256, 256), dtype=np.float32); B = rng.standard_normal((256, 256), dtype=np.float32)
        X = rng.random((600, 784), dtype=np.float32) * (rng.random((600, 784)) < 0.2)
        y = rng.integers(0, 10, 600)
        W1 = rng.standard_normal((784, 400), dtype=np.float32) / 28; W2 = rng.standard_normal((400, 10), dtype=np.float32) / 20
        theta = np.zeros((784, 10), np.float32)
        fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=100)
        fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=100)
        digest = b"".join(a.tobytes() for a in (fastnn.matmul(A, B), W1, W2, theta))
        return [__import__("hashlib").sha256(digest).hexdigest(), fastnn.get_num_threads(),
                fastnn.build_info()["num_threads_source"]]

    def in_child(_):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return work()

    parent = work()
    results = {}
    with mp.get_context("fork").Pool(2) as pool:
        results["multiprocessing fork"] = pool.map(in_child, range(2))
    with cf.ProcessPoolExecutor(2) as ex:        # the platform's default start method
        results["ProcessPoolExecutor()"] = list(ex.map(in_child, range(2)))
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        results["ProcessPoolExecutor(fork)"] = list(ex.map(in_child, range(2)))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        with warnings.catch_warnings(record=True) as caught:
            os.write(w, json.dumps(in_child(0)).encode()); os._exit(0)
    os.close(w)
    results["os.fork"] = [json.loads(os.read(r, 4096))]
    os.waitpid(pid, 0)
    print(json.dumps({"parent": parent, "start_method": mp.get_start_method(), "children": results}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_children_forked_after_threads_finish_with_the_parents_bits():
    result, stderr = run_python(FORK_SCRIPT, timeout=60)
    parent_digest, parent_threads, _ = result["parent"]
    assert parent_threads == 2
    for variant, children in result["children"].items():
        for digest, threads, source in children:
            assert digest == parent_digest, variant
            if variant != "ProcessPoolExecutor()" or result["start_method"] == "fork":
                assert (threads, source) == (1, "fork (single-threaded child)"), variant
    assert "forked after fastnn ran multi-threaded work" in stderr   # the one-line warning


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_before_any_threaded_work_keeps_its_threads():
    code = """
        import json, os, fastnn
        fastnn.set_num_threads(2)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, json.dumps([fastnn.get_num_threads(), fastnn.build_info()["num_threads_source"]]).encode())
            os._exit(0)
        os.close(w); child = json.loads(os.read(r, 4096)); os.waitpid(pid, 0)
        print(json.dumps(child))
    """
    assert run_python(code)[0] == [2, "set_num_threads"]


# ---- parallel sweeps: joblib/loky, dask ------------------------------------------------------

def _small_digits(n=900, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((4, 20)) * 2
    y = rng.integers(0, 4, n)
    X = (centers[y] + rng.standard_normal((n, 20))).astype(np.float32)
    return X, y


def _grid_search(n_jobs):
    import warnings
    from sklearn.model_selection import GridSearchCV
    from fastnn.estimators import MLPClassifier
    X, y = _small_digits()
    grid = {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1.0]}
    search = GridSearchCV(MLPClassifier(max_iter=5, random_state=0, backend="cpp"), grid, cv=3, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning at max_iter=5
        return search.fit(X, y)


def test_grid_search_with_two_jobs_picks_what_one_job_picks():
    pytest.importorskip("sklearn")
    sequential, parallel = _grid_search(1), _grid_search(2)
    assert parallel.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(parallel.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"])


def test_joblib_workers_get_one_thread_each():
    joblib = pytest.importorskip("joblib")
    counts = joblib.Parallel(n_jobs=2)(joblib.delayed(fastnn.get_num_threads)() for _ in range(4))
    assert set(counts) == {max(1, joblib.cpu_count() // 2)}


def test_dask_workers_use_one_thread_and_search_like_one_job():
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("sklearn")
    import joblib
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        per_worker = client.run(fastnn.get_num_threads)
        assert list(per_worker.values()) == [1, 1]
        with joblib.parallel_backend("dask"):
            on_dask = _grid_search(-1)
    assert on_dask.best_params_ == _grid_search(1).best_params_


# ---- a busy host -----------------------------------------------------------------------------

@pytest.mark.skipif(not LINUX or usable_cpus() < 2, reason="needs Linux and 2 CPUs to share with a hog")
def test_a_crowded_host_makes_the_next_epochs_single_threaded_with_the_same_bits():
    # One CPU-bound process beside a 2-thread epoch on 2 CPUs: the epoch's threads are preempted
    # thousands of times a second (an idle host: tens), BusyHostWatch says "busy", and the host's
    # count is 1 for the next epochs. A count the user set is never reduced.
    code = """
        import json, os, resource, subprocess, sys
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])   # 2 CPUs, shared with the hog
        import numpy as np, fastnn
        fastnn.set_backend("cpp")
        rng = np.random.default_rng(0)
        X = rng.random((12000, 784), dtype=np.float32); y = rng.integers(0, 10, 12000)
        W = [rng.standard_normal((784, 400), dtype=np.float32) / 28, np.zeros((400, 10), np.float32)]
        def epoch():
            W1, W2 = W[0].copy(), W[1].copy()
            fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=100)
            return W1.tobytes() + W2.tobytes()
        fastnn.set_num_threads(1); alone = epoch(); fastnn.set_num_threads(None)
        hogs = [subprocess.Popen([sys.executable, "-c", "print(flush=True)\\nwhile True: pass"], stdout=subprocess.PIPE)]
        try:
            for h in hogs:
                h.stdout.readline()          # each hog is up and spinning
            seen = []
            for _ in range(10):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
                same = epoch() == alone
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - before
                seen.append([same, fastnn.build_info()["num_threads_source"], switches])
                if seen[-1][1].startswith("host (busy"):
                    same = epoch() == alone  # an epoch on one thread, same bits
                    seen.append([same, fastnn.build_info()["num_threads_source"]])
                    break
            fastnn.set_num_threads(2); epoch(); seen.append([True, fastnn.build_info()["num_threads_source"]])
        finally:
            for h in hogs: h.kill()
        print(json.dumps(seen))
    """
    seen, _ = run_python(code, {"OMP_NUM_THREADS": "2"}, timeout=120)
    assert all(row[0] for row in seen)
    assert any(row[1] == "host (busy: 1 thread for now)" for row in seen[:-1]), seen
    assert seen[-1][1] == "set_num_threads"


def test_epoch_thread_cap_grows_with_the_batch_and_never_passes_the_count():
    """An epoch of a net with a hidden layer shares each batch among at most as many threads as
    its first layer's width and the batch make worth it (EpochThreadCap): never more than the
    count in force, never fewer than 1, one for a tiny net, and no fewer for a wider layer or a
    larger batch. The epochs themselves give the same bits on any count (test_threads_determinism)."""
    from fastnn import _core
    saved = fastnn.get_num_threads() if fastnn.build_info()["num_threads_source"] == "set_num_threads" else None
    try:
        fastnn.set_num_threads(64)
        assert _core._epoch_threads(1, 1) == 1
        counts = [_core._epoch_threads(100, d1) for d1 in (1, 10, 50, 100, 400, 1000, 4096)]
        assert counts == sorted(counts) and 1 <= counts[0] and counts[-1] <= 64 and counts[-1] > counts[0]
        assert _core._epoch_threads(1000, 400) >= _core._epoch_threads(100, 400)
        fastnn.set_num_threads(2)
        assert all(1 <= _core._epoch_threads(b, d1) <= 2 for b in (1, 100, 10000) for d1 in (1, 100, 10000))
        with pytest.raises(ValueError, match="batch"):
            _core._epoch_threads(0, 100)
    finally:
        fastnn.set_num_threads(saved)


@pytest.mark.skipif(not LINUX or usable_cpus() < 2, reason="needs Linux and 2 CPUs")
def test_an_epoch_binds_its_threads_only_while_it_runs():
    """Each epoch on several threads binds its team, one thread per CPU, and gives every thread its
    own mask back at the end (EpochPinning): after epochs of every kind, no thread of the process
    (libgomp's pool threads live on and serve other OpenMP code) is left on fewer CPUs, whether the
    epoch ends normally or by an exception raised before it starts; the bits do not change."""
    code = """
        import json, os
        import numpy as np, fastnn
        fastnn.set_backend("cpp")
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
        rng = np.random.default_rng(0)
        X = rng.random((3000, 200), dtype=np.float32); y = rng.integers(0, 10, 3000)
        W = [rng.standard_normal((200, 128), dtype=np.float32) / 14, np.zeros((128, 10), np.float32)]
        def masks():
            return {tid: sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}
        results = []
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            W1, W2 = W[0].copy(), W[1].copy()
            fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=100)                    # hw0 dense epoch
            fastnn.train_epoch(X, y, [W1, W2], None, fastnn.Adam(), lr=1e-3, batch=100)   # estimators' engine
            theta = np.zeros((200, 10), np.float32)
            fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=100)       # fused softmax
            results.append((W1.tobytes() + W2.tobytes() + theta.tobytes()).hex())
        after = masks()
        try:
            fastnn.nn_epoch(X, y, np.zeros((200, 128), np.float64), W[1], lr=0.1, batch=0)
        except ValueError:
            pass
        print(json.dumps({"cpus": cpus, "after": after, "after_error": masks(),
                          "same_bits": results[0] == results[1], "tasks": len(after)}))
    """
    seen, _ = run_python(code, {"OMP_NUM_THREADS": "2"}, timeout=120)
    assert seen["same_bits"]
    assert seen["tasks"] >= 2, seen            # the pool's thread exists, so its mask was checked
    for masks in (seen["after"], seen["after_error"]):
        assert all(m == seen["cpus"] for m in masks.values()), masks


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_team_round_trip_probe_on_one_cpu_answers_and_the_epoch_runs():
    """Two threads on one CPU: each hand-over of the 2-thread epoch's round-trip probe
    (train_epoch.hpp, panel_lists_setting) waits for the scheduler; the probe still answers, in
    well under a second, and a 2-thread zero-skipping epoch (panels: the probe runs) trains with
    the same bits as one thread."""
    cpu = min(os.sched_getaffinity(0))
    code = f"""
        import json, os, time
        import numpy as np
        os.sched_setaffinity(0, {{{cpu}}})
        import fastnn
        from fastnn import _core
        fastnn.set_num_threads(2)
        t = time.perf_counter(); ns = _core._team_round_trip_ns(); took = time.perf_counter() - t
        rng = np.random.default_rng(5)
        X = (rng.random((300, 784)) * (rng.random((300, 784)) < 0.2)).astype(np.float32)
        y = rng.integers(0, 10, 300)
        W0 = [(rng.standard_normal((784, 64)) / 28).astype(np.float32),
              (rng.standard_normal((64, 10)) / 8).astype(np.float32)]
        out = []
        for n in (1, 2):
            fastnn.set_num_threads(n)
            W = [w.copy() for w in W0]
            fastnn.nn_epoch(X, y, W[0], W[1], lr=0.1, batch=50)
            out.append([w.tobytes().hex() for w in W])
        print(json.dumps([ns, took, out[0] == out[1]]))
    """
    (ns, took, same), _ = run_python(code, timeout=120)
    assert ns >= 0 and took < 1.0
    assert same

"""A data matrix whose rows are not contiguous (a Fortran-ordered X, as pandas' DataFrame.to_numpy()
gives) works everywhere, and the training loops that read it again and again -- hw0's train_*,
fastnn.fit and the estimators' fit -- copy it to C order once rather than in every epoch's call."""
import numpy as np
import pytest

import fastnn
from fastnn import api, training, validation


def _problem(rng, n=300, d=20, k=4):
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X, rng.integers(0, k, n)


def _watch(monkeypatch, module, name):
    """The X of every call of module.name (which still runs), in a list."""
    seen = []
    function = getattr(module, name)

    def watched(X_, *args, **kwargs):
        seen.append(X_)
        return function(X_, *args, **kwargs)

    monkeypatch.setattr(module, name, watched)
    return seen


def test_with_contiguous_rows_copies_only_what_needs_it():
    rng = np.random.default_rng(0)
    X, _ = _problem(rng)
    assert validation.with_contiguous_rows(X) is X
    wide = np.zeros((30, 40), np.float32)
    view = wide[:, :20]                                  # rows of adjacent values, a row stride of 40
    assert validation.with_contiguous_rows(view) is view
    for strided in (np.asfortranarray(X), X[:, ::2]):
        out = validation.with_contiguous_rows(strided)
        assert out.flags.c_contiguous and np.array_equal(out, strided)
    pixels = fastnn.Pixels(np.zeros((3, 4), np.uint8), 1 / 255)
    assert validation.with_contiguous_rows(pixels) is pixels
    assert validation.with_contiguous_rows([[1.0, 2.0]]) == [[1.0, 2.0]]


@pytest.mark.parametrize("backend_name", ["numpy", "cpp"])
def test_hw0_training_loops_copy_a_fortran_x_once(backend_name, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    X, y = _problem(rng)
    seen = _watch(monkeypatch, training, "nn_epoch")
    with fastnn.use_backend(backend_name):
        expected = fastnn.train_nn(X, y, X[:50], y[:50], hidden_dim=8, epochs=3, lr=0.1, batch=32)
        seen.clear()
        got = fastnn.train_nn(np.asfortranarray(X), y, np.asfortranarray(X[:50]), y[:50], hidden_dim=8, epochs=3,
                              lr=0.1, batch=32)
    capsys.readouterr()
    assert len(seen) == 3 and all(s is seen[0] for s in seen) and seen[0].flags.c_contiguous
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_fit_copies_a_fortran_x_once(monkeypatch):
    from fastnn import fitting
    rng = np.random.default_rng(2)
    X, y = _problem(rng)
    seen = _watch(monkeypatch, fitting, "mlp_epoch")
    with fastnn.use_backend("cpp"):
        fastnn.fit(np.asfortranarray(X), y, hidden=(8,), epochs=2, lr=0.1, batch=32)
    assert len(seen) == 2 and seen[1] is seen[0] and seen[0].flags.c_contiguous


def test_estimator_fit_copies_a_fortran_x_once(monkeypatch):
    pytest.importorskip("sklearn")
    from fastnn.estimators import MLPClassifier
    rng = np.random.default_rng(3)
    X, y = _problem(rng)
    seen = _watch(monkeypatch, api, "train_epoch")
    fits = []
    for X_in in (X, np.asfortranarray(X)):
        seen.clear()
        clf = MLPClassifier((8,), max_iter=3, tol=0, random_state=0, batch_size=32)
        with fastnn.use_backend("cpp"), pytest.warns(Warning, match="Maximum iterations"):
            clf.fit(X_in, y)
        assert len(seen) == 3 and all(s is seen[0] for s in seen) and seen[0].flags.c_contiguous
        fits.append(clf.predict_proba(np.asfortranarray(X)))
    np.testing.assert_array_equal(fits[0], fits[1])

import gzip

import numpy as np
import pytest

import fastnn


def test_parse_mnist_train(mnist_train):
    X, y = mnist_train
    assert X.dtype == np.float32 and X.shape == (60000, 784)
    assert y.dtype == np.uint8 and y.shape == (60000,)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    # hw0's reference figures
    np.testing.assert_allclose(np.linalg.norm(X[:10]), 27.892084, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(X[:1000]), 293.0717, rtol=1e-6)


def test_parse_mnist_test(mnist_test):
    X, y = mnist_test
    assert X.shape == (10000, 784) and y.shape == (10000,)
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])


def _write_idx(path, magic, dims, payload, compress):
    header = np.array([magic, *dims], dtype=">i4").tobytes()
    data = header + bytes(payload)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_parse_raw_and_gzip(tmp_path, compress):
    pixels = np.arange(3 * 2 * 2, dtype=np.uint8) * 20
    img = _write_idx(tmp_path / "img", 2051, (3, 2, 2), pixels, compress)
    lab = _write_idx(tmp_path / "lab", 2049, (3,), [2, 0, 1], compress)
    X, y = fastnn.parse_mnist(img, lab)
    np.testing.assert_allclose(X, pixels.reshape(3, 4) / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(y, [2, 0, 1])


def test_bad_magic_names_file(tmp_path):
    img = _write_idx(tmp_path / "img.gz", 2049, (1, 2, 2), [0] * 4, True)
    lab = _write_idx(tmp_path / "lab.gz", 2049, (1,), [0], True)
    with pytest.raises(ValueError, match=r"img\.gz.*magic number 2049, expected 2051"):
        fastnn.parse_mnist(img, lab)
    with pytest.raises(ValueError, match=r"lab\.gz.*magic number 2049, expected 2051"):
        fastnn.parse_mnist(lab, img)


def test_truncated_file_names_file(tmp_path):
    img = _write_idx(tmp_path / "img.gz", 2051, (2, 2, 2), [0] * 7, True)
    lab = _write_idx(tmp_path / "lab.gz", 2049, (2,), [0, 1], True)
    with pytest.raises(ValueError, match=r"img\.gz.*truncated"):
        fastnn.parse_mnist(img, lab)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.*truncated"):
        fastnn.parse_mnist(tmp_path / "empty", lab)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(ValueError, match=r"broken\.gz"):
        fastnn.parse_mnist(broken, lab)


def test_count_mismatch(tmp_path):
    img = _write_idx(tmp_path / "img", 2051, (2, 1, 1), [0, 255], False)
    lab = _write_idx(tmp_path / "lab", 2049, (3,), [0, 1, 2], False)
    with pytest.raises(ValueError, match=r"3 labels.*2 images"):
        fastnn.parse_mnist(img, lab)

"""Dataset files that lie: labels outside the dataset's classes, and gzip bombs whose header
claims more (or less) than the labels agree with. Refused with a ValueError naming the file,
after reading no more than the headers declare."""
import gzip
import struct

import numpy as np
import pytest

from fastnn.datasets import FILES, load_dataset
from fastnn.mnist import parse_mnist, read_idx_images
from hostile_files import idx_gzip_bomb, idx_labels_gzip, peak_rss_over_baseline

RSS_LIMIT = 100 * 2**20


def fake_dataset(directory, n_train=30, n_test=10, bad=None):
    """The four gzip IDX files of a tiny MNIST-shaped dataset; bad=(split, index, label)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        if bad and bad[0] == split:
            labels[bad[1]] = bad[2]
        (directory / FILES[split, "images"]).write_bytes(
            gzip.compress(struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes(), mtime=0))
        idx_labels_gzip(directory / FILES[split, "labels"], labels)
    return directory


@pytest.mark.parametrize("split, index, label", [("train", 17, 255), ("test", 3, 200), ("train", 0, 10)])
def test_labels_outside_the_classes_name_file_and_index(tmp_path, split, index, label):
    fake_dataset(tmp_path, bad=(split, index, label))
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", tmp_path, download=False)
    assert str(info.value) == (f"{tmp_path / FILES[split, 'labels']}: label {label} at index {index} is "
                               f"outside the dataset's 10 classes (0 to 9)")


def test_a_clean_fake_dataset_loads(tmp_path):
    data = load_dataset("fashion-mnist", fake_dataset(tmp_path), download=False)
    assert data.X_train.shape == (30, 784) and data.y_test.tolist() == list(range(10))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    labels = idx_labels_gzip(d / "labels.gz", np.zeros(100, np.uint8))
    return {
        # the issue's: claims 3,000,000 images (2.35 GB), the labels say 100
        "claims-3M": (idx_gzip_bomb(d / "claims-3M.gz", 3_000_000, 300 << 20), labels),
        # claims 100 images, inflates to 300 MB: read stops after the declared 78,400 bytes
        "inflates-past-its-count": (idx_gzip_bomb(d / "long.gz", 100, 300 << 20), labels),
    }


def test_gzip_bombs_are_refused_with_bounded_memory(bombs):
    paths = [f"{images},{labels}" for images, labels in bombs.values()]
    results, _ = peak_rss_over_baseline("parse", paths)
    for (name, (images, labels)), key in zip(bombs.items(), paths):
        outcome, extra = results[key]
        assert outcome == "ValueError", name
        assert extra <= RSS_LIMIT, f"{name}: peak RSS {extra / 2**20:.0f} MiB over the interpreter"
    with pytest.raises(ValueError, match="labels.gz: 100 labels, but .*claims-3M.gz has 3000000 images"):
        parse_mnist(*bombs["claims-3M"])
    with pytest.raises(ValueError, match="long.gz: IDX image file has trailing bytes after the 78416 expected"):
        read_idx_images(bombs["inflates-past-its-count"][0])


def test_a_count_no_gzip_file_of_that_size_can_hold_is_refused_before_allocating(tmp_path):
    path = tmp_path / "small.gz"
    path.write_bytes(gzip.compress(struct.pack(">iiii", 2051, 2_000_000_000, 28, 28), mtime=0))
    with pytest.raises(ValueError, match=r"small.gz: corrupt IDX image file: .* more than a \d+-byte gzip"):
        read_idx_images(path)

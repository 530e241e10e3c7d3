"""Small data sets in the files' own formats, written by the tests (no download): torchvision's MNIST
IDX files and CIFAR-10's pickled batches, read back through torchvision's own code."""

import pickle
import struct

import numpy as np


def write_idx(path, array):
    """MNIST's IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def make_mnist(root, folder="MNIST", n_train=50, n_test=30, n_classes=10):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % n_classes
        images = rng.integers(0, 256, size=(n, 28, 28))
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def make_cifar10(root, per_batch=20, n_test=30):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)

    def dump(name, n):
        batch = {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            "labels": list(np.arange(n) % 10),
        }
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)

    for i in range(1, 6):
        dump(f"data_batch_{i}", per_batch)
    dump("test_batch", n_test)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)

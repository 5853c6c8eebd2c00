"""Shared fixtures: the real MNIST folder, and small IDX datasets written on the fly."""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from mnist_nbdev.data import FILES


def _default_data() -> Path:
    here = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("MNIST_NBDEV_DATA") or here.parent / "shared" / "data")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    "The folder holding the real MNIST files (torchvision's layout)."
    root = _default_data()
    if not (root / "MNIST" / "raw" / FILES["train_images"]).exists():
        pytest.fail(f"real MNIST not found under {root}; set MNIST_NBDEV_DATA")
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    "Encode a uint8 array in IDX format."
    assert array.dtype == np.uint8
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_dataset(folder: Path, n_train=120, n_test=40, size=12, n_classes=3, gz=False, seed=0) -> dict:
    "A small non-MNIST dataset in IDX format: class k is a bright k-th horizontal band, with noise."
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, n_classes, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
        band = size // n_classes
        for i, k in enumerate(labels):
            images[i, k * band : (k + 1) * band] = 200
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    for key, name in FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays

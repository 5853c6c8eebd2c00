"""Data loading against real and broken files: layouts, gzip, truncation, corruption, no network."""
import gzip
import shutil
import subprocess
import sys
import time
import warnings

import pytest
import torch

from conftest import idx_bytes
from conftest import write_idx_dataset
from mnist_nbdev.data import FILES
from mnist_nbdev.batches import Batches
from mnist_nbdev.data import DataNotFoundError
from mnist_nbdev.data import IDXError
from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import read_idx


@pytest.fixture(scope="module")
def real(mnist_dir):
    return load_mnist(mnist_dir)


def copy_mnist(src_raw, dst, gz=False, names=None):
    dst.mkdir(parents=True, exist_ok=True)
    for name in names or FILES.values():
        data = (src_raw / name).read_bytes()
        if gz:
            (dst / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (dst / name).write_bytes(data)


def test_torchvision_layout(real, mnist_dir):
    assert len(real.train) == 60_000 and len(real.test) == 10_000
    assert real.source == mnist_dir / "MNIST" / "raw"
    assert torch.bincount(real.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_flat_folder_of_gz_files(tmp_path, mnist_dir, real):
    copy_mnist(mnist_dir / "MNIST" / "raw", tmp_path, gz=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the md5 of the decompressed files must match: no warning
        data = load_mnist(tmp_path, download_missing=False)
    assert data.source == tmp_path
    assert torch.equal(data.train.images, real.train.images)
    assert torch.equal(data.test.labels, real.test.labels)


def test_gz_under_torchvision_layout(tmp_path, mnist_dir, real):
    copy_mnist(mnist_dir / "MNIST" / "raw", tmp_path / "MNIST" / "raw", gz=True)
    data = load_mnist(tmp_path, download_missing=False)
    assert torch.equal(data.test.images, real.test.images)


def test_environment_variable_is_used(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path)
    monkeypatch.setenv("MNIST_NBDEV_DATA", str(tmp_path))
    assert load_mnist(download_missing=False).source == tmp_path


def test_non_mnist_idx_dataset(tmp_path):
    arrays = write_idx_dataset(tmp_path, n_train=90, n_test=30, size=12, n_classes=3, gz=True)
    data = load_mnist(tmp_path, download_missing=False)
    assert data.image_size == (12, 12)
    assert data.n_classes == 3
    assert len(data.train) == 90 and len(data.test) == 30
    assert torch.equal(data.train.images, torch.from_numpy(arrays["train_images"]))
    xb, yb = next(iter(Batches(data.train, bs=16, shuffle=True)))
    assert xb.shape == (16, 1, 12, 12) and yb.dtype == torch.int64


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_named(tmp_path, mnist_dir, gz):
    raw = mnist_dir / "MNIST" / "raw"
    copy_mnist(raw, tmp_path, gz=False)
    name = FILES["test_images"]
    cut = (raw / name).read_bytes()[:-784 * 3]
    (tmp_path / name).unlink()
    if gz:
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(cut))
    else:
        (tmp_path / name).write_bytes(cut)
    with pytest.raises(IDXError, match=rf"{name}.*truncated.*\(10000, 28, 28\)"):
        load_mnist(tmp_path, download_missing=False)


def test_truncated_gzip_stream_is_named(tmp_path, mnist_dir):
    copy_mnist(mnist_dir / "MNIST" / "raw", tmp_path, gz=True)
    path = tmp_path / f"{FILES['train_labels']}.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXError, match=rf"{FILES['train_labels']}.gz: not a complete gzip file"):
        load_mnist(tmp_path, download_missing=False)


def test_file_that_is_not_idx(tmp_path, mnist_dir):
    copy_mnist(mnist_dir / "MNIST" / "raw", tmp_path)
    (tmp_path / FILES["train_labels"]).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(IDXError, match=rf"{FILES['train_labels']}: not an IDX file \(magic number 0x3C68746D"):
        load_mnist(tmp_path, download_missing=False)


def test_wrong_kind_of_file(tmp_path, mnist_dir):
    "Labels where images belong: a valid IDX file of the wrong shape."
    raw = mnist_dir / "MNIST" / "raw"
    copy_mnist(raw, tmp_path)
    shutil.copy(raw / FILES["test_labels"], tmp_path / FILES["test_images"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its md5 is not the images' md5 either
        with pytest.raises(IDXError, match=rf"{FILES['test_images']}: expected uint8 images of shape \(N, H, W\)"):
            load_mnist(tmp_path, download_missing=False)


def test_image_and_label_counts_must_match(tmp_path):
    arrays = write_idx_dataset(tmp_path, n_train=50)
    (tmp_path / FILES["train_labels"]).write_bytes(idx_bytes(arrays["train_labels"][:49]))
    with pytest.raises(IDXError, match="holds 50 images but .* holds 49 labels"):
        load_mnist(tmp_path, download_missing=False)


def test_altered_mnist_file_warns_but_loads(tmp_path, mnist_dir):
    raw = mnist_dir / "MNIST" / "raw"
    copy_mnist(raw, tmp_path)
    data = bytearray((raw / FILES["test_labels"]).read_bytes())
    data[-1] = (data[-1] + 1) % 10  # still a valid label file, but not MNIST's
    (tmp_path / FILES["test_labels"]).write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=rf"{FILES['test_labels']}: md5 .* differs from the official MNIST"):
        labels = read_idx(tmp_path / FILES["test_labels"])
    assert len(labels) == 10_000


def test_partial_folder_names_what_is_missing(tmp_path, mnist_dir):
    copy_mnist(mnist_dir / "MNIST" / "raw", tmp_path, names=list(FILES.values())[:3])
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path, download_missing=False)
    message = str(info.value)
    assert f"{tmp_path}  (missing t10k-labels-idx1-ubyte)" in message
    assert "MNIST_NBDEV_DATA" in message and "--data" in message


def test_missing_data_without_network_fails_fast_and_clearly(tmp_path):
    "No files anywhere and (on this machine) no network: one clear message within seconds, no traceback wall."
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = "from mnist_nbdev.data import load_mnist\nload_mnist()"
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert result.returncode != 0
    assert "DataNotFoundError: MNIST data not found" in result.stderr
    for name in FILES.values():
        assert name in result.stderr
    assert str(tmp_path / "cache" / "mnist_nbdev" / "MNIST" / "raw") in result.stderr
    assert "failed" in result.stderr
    assert seconds < 30, f"took {seconds:.1f} s"

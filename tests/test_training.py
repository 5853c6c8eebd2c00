"""Training as a user runs it: the command, reproducibility, SIGKILL and --resume, safe model files."""
import json
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from mnist_nbdev.data import load_mnist
from mnist_nbdev.training import ModelFileError
from mnist_nbdev.training import TrainConfig
from mnist_nbdev.training import load_model
from mnist_nbdev.training import train

QUICK = ["--train-subset", "4000", "--test-subset", "1000", "--threads", "1"]


def mnist_train(*args, timeout=300, **kwargs):
    return subprocess.run(["mnist-train", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def data(mnist_dir):
    return load_mnist(mnist_dir)


def test_same_seed_same_weights(data):
    config = TrainConfig(recipe="fast", epochs=1, train_subset=3000, test_subset=500, threads=1, device="cpu")
    a = train(config, data=data, progress=False).model.state_dict()
    b = train(config, data=data, progress=False).model.state_dict()
    c = train(TrainConfig(**{**config.__dict__, "seed": 1}), data=data, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_command_trains_and_saves_a_model_that_loads(tmp_path, data):
    result = mnist_train("--epochs", "2", *QUICK, "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and str(tmp_path / "m") in result.stdout
    assert result.stdout.count("epoch ") == 2  # one line per epoch when output is not a terminal
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    for key in ("arch", "recipe", "config", "seed", "normalization", "history", "test_accuracy", "train_seconds", "versions"):
        assert key in info
    assert 0.85 < info["test_accuracy"] <= 1
    assert set(info["normalization"]) == {"mean", "std"}
    assert info["versions"]["torch"] == torch.__version__
    model = load_model(tmp_path / "m")
    xb = (data.test.images[:200].unsqueeze(1).float() / 255 - info["normalization"]["mean"]) / info["normalization"]["std"]
    accuracy = (model(xb).argmax(1) == data.test.labels[:200]).float().mean().item()
    assert accuracy > 0.85


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "bs must be at least 1"),
        (["--recipe", "nope"], "invalid choice: 'nope'"),
        (["--epochs", "two"], "invalid int value: 'two'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--lr", "-0.1"], "lr must be a positive number"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, args, message):
    result = mnist_train(*args, "--out", str(tmp_path / "m"), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_missing_data_exits_1_with_the_data_message(tmp_path):
    result = mnist_train("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"), timeout=60,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "MNIST data not found" in result.stderr and "train-images-idx3-ubyte" in result.stderr
    assert "Traceback" not in result.stderr


def _wait_for_epoch(folder: Path, epoch: int, proc, limit=240):
    deadline = time.time() + limit
    while time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        try:
            if json.loads((folder / "checkpoint.json").read_text())["epoch"] >= epoch:
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint for epoch {epoch} within {limit} s")


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    args = ["--recipe", "tutorial", "--epochs", "3", *QUICK]
    straight = mnist_train(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(["mnist-train", *args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_epoch(killed, 1, proc)
        time.sleep(0.5)  # well into epoch 2
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert json.loads((killed / "checkpoint.json").read_text())["epoch"] == 1
    assert not (killed / "model.json").exists()

    resumed = mnist_train(*args, "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("epoch ") == 2  # epochs 2 and 3 only
    a = json.loads((tmp_path / "straight" / "model.json").read_text())
    b = json.loads((killed / "model.json").read_text())
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.001
    assert [h["test_loss"] for h in a["history"]] == pytest.approx([h["test_loss"] for h in b["history"]], abs=1e-4)
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"
    for name in ("model.json", "checkpoint.json"):
        json.loads((killed / name).read_text())
    load_model(killed)


def test_resume_with_other_options_is_refused(tmp_path):
    out = str(tmp_path / "m")
    assert mnist_train("--epochs", "1", *QUICK, "--out", out).returncode == 0
    result = mnist_train("--epochs", "1", "--lr", "0.01", *QUICK, "--out", out, "--resume", timeout=60)
    assert result.returncode == 2 and "another config" in result.stderr


class _Exploit:
    "Unpickling this creates a file: the proof that a loader executed a stranger's code."

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_model_loading_never_unpickles(tmp_path, data):
    folder = tmp_path / "m"
    train(TrainConfig(epochs=1, train_subset=1000, test_subset=200), out_dir=folder, data=data, progress=False)
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": _Exploit(marker)}))
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(folder)
    assert not marker.exists()


def test_broken_model_folders_are_named(tmp_path, data):
    folder = tmp_path / "m"
    train(TrainConfig(epochs=1, train_subset=1000, test_subset=200), out_dir=folder, data=data, progress=False)
    with pytest.raises(ModelFileError, match="no such model folder"):
        load_model(tmp_path / "absent")
    (folder / "model.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match="model.json: not valid JSON"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelFileError, match="model.json: missing"):
        load_model(folder)

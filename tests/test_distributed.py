"""DistributedDataParallel with torchrun: two processes on loopback, gloo on CPU."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_nbdev.training import load_model

QUICK = ["--epochs", "2", "--train-subset", "6000", "--test-subset", "2000", "--batch-size", "64"]
ENV = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def torchrun(*args, timeout=300):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0",
               "-m", "mnist_nbdev.training", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    "The reference: one process, the same global batch."
    out = tmp_path_factory.mktemp("single")
    result = subprocess.run(["mnist-train", *QUICK, "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "model.json").read_text()), out


def test_two_processes_match_one(tmp_path, single):
    out = tmp_path / "ddp"
    result = torchrun(*QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch 2/2") == 1  # rank 0 alone prints
    info = json.loads((out / "model.json").read_text())
    assert info["world_size"] == 2
    digests = info["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks end with identical weights
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", "checkpoint.safetensors", "model.json", "model.safetensors"]

    # Each global batch holds the same 64 images as in one process; only the order of float additions
    # differs (two partial gradients averaged instead of one sum), which over 188 steps moves the weights
    # by rounding, not by a different optimisation. So the curves agree closely, not bit for bit.
    reference, _ = single
    for a, b in zip(info["history"], reference["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=0.01)
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=0.01)
    assert abs(info["test_accuracy"] - reference["test_accuracy"]) <= 0.005  # 10 of 2,000 test images

    model = load_model(out)
    from mnist_nbdev.data import load_mnist
    from mnist_nbdev.evaluation import evaluate

    split = load_mnist().test.subset(2000, seed=0)
    assert evaluate(model, split)["accuracy"] == info["test_accuracy"]  # metrics counted each test image once


def test_mnist_train_nproc_and_resume(tmp_path):
    out = tmp_path / "m"
    args = ["--epochs", "1", "--train-subset", "4000", "--test-subset", "1000", "--out", str(out)]
    first = subprocess.run(["mnist-train", "--nproc", "2", *args], capture_output=True, text=True, timeout=300, env=ENV)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "model saved to" in first.stdout
    more = ["--epochs", "2", "--train-subset", "4000", "--test-subset", "1000", "--out", str(out)]
    # the config changed (2 epochs): resume must refuse it, in the launcher, before starting processes
    refused = subprocess.run(["mnist-train", "--nproc", "2", *more, "--resume"], capture_output=True, text=True, timeout=300, env=ENV)
    assert refused.returncode != 0 and "another config" in refused.stderr


def test_batch_that_does_not_split_is_refused(tmp_path):
    result = subprocess.run(["mnist-train", "--nproc", "2", "--batch-size", "65", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode != 0
    assert "does not split evenly over 2 processes" in result.stderr


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _children(pid: int) -> list:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_lost_peer_ends_the_run(tmp_path, how):
    "SIGKILL: torchrun ends the survivor. SIGSTOP (a hung peer): the collective timeout ends it, with a message."
    timeout = 15
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0",
         "-m", "mnist_nbdev.training", "--recipe", "tutorial", "--epochs", "3", "--train-subset", "20000", "--dist-timeout", str(timeout),
         "--out", str(tmp_path / "m")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "m" / "checkpoint.json").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        # Epoch 1 is done and saved; both workers are now inside epoch 2. Take one away.
        workers = []
        while time.time() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.1)
        assert len(workers) == 2
        time.sleep(2)
        victim = workers[1]
        os.kill(victim, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        t0 = time.time()
        _, stderr = proc.communicate(timeout=timeout + 60)
        took = time.time() - t0
    finally:
        for pid in _children(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
    assert proc.returncode != 0
    assert took < timeout + 45, f"the run took {took:.0f} s to end"
    if how == "stop":
        assert "lost contact with its peers" in stderr


def test_sigkill_then_resume_under_torchrun(tmp_path):
    "The whole job killed mid-epoch, then resumed with --resume: it ends as the uninterrupted run did."
    args = ["--recipe", "tutorial", "--epochs", "2", "--train-subset", "4000", "--test-subset", "1000"]
    straight = torchrun(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0",
               "-m", "mnist_nbdev.training", *args, "--out", str(killed)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 240
        while not (killed / "checkpoint.json").exists():
            assert proc.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
            time.sleep(0.05)
        time.sleep(0.5)  # into epoch 2
        assert proc.poll() is None
        workers = _children(proc.pid)  # torchrun starts each worker in a session of its own
        assert len(workers) == 2
        for pid in [*workers, proc.pid]:  # the launcher and both workers at once, as in a crash
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in workers:  # gone, so that nothing of the killed run writes any more
            while _alive(pid):
                time.sleep(0.05)
    finally:
        proc.kill()
    assert json.loads((killed / "checkpoint.json").read_text())["epoch"] == 1
    assert not (killed / "model.json").exists()

    resumed = torchrun(*args, "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 1/2" not in resumed.stdout and resumed.stdout.count("epoch 2/2") == 1
    a = json.loads((tmp_path / "straight" / "model.json").read_text())
    b = json.loads((killed / "model.json").read_text())
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.001
    assert b["rank_weights_sha256"][0] == b["rank_weights_sha256"][1]

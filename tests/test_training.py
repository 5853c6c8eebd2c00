"""Training as a user runs it: the command, reproducibility, SIGKILL and --resume, safe model files."""
import json
import os
import pickle
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from mnist_nbdev.checkpoints import save_checkpoint
from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import to_pixels
from mnist_nbdev.files import ModelFileError
from mnist_nbdev.files import RECORD_DIGEST
from mnist_nbdev.files import build_model
from mnist_nbdev.files import load_model
from mnist_nbdev.loop import new_state
from mnist_nbdev.training import Runtime
from mnist_nbdev.training import TrainConfig
from mnist_nbdev.training import train
from mnist_nbdev.training import weights_sha256

QUICK = ["--train-subset", "4000", "--test-subset", "1000", "--threads", "1"]


def mnist_train(*args, timeout=300, **kwargs):
    return subprocess.run(["mnist-train", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float) -> str:
    "Read `proc`'s stdout until a line containing `text`; fail after `timeout` seconds."
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(left):
                line = proc.stdout.readline()
                if text in line:
                    return line
                assert line, f"the process ended before printing {text!r}"
    raise AssertionError(f"no line with {text!r} within {timeout} s")


@pytest.fixture(scope="module")
def data(mnist_dir):
    return load_mnist(mnist_dir)


def test_same_seed_same_weights(data):
    config = TrainConfig(recipe="fast", epochs=1, train_subset=3000, test_subset=500)
    runtime = Runtime(device="cpu", threads=1)
    runs = [train(c, data=data, runtime=runtime, progress=False).model.state_dict()
            for c in (config, config, TrainConfig(**{**config.__dict__, "seed": 1}))]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_train_leaves_torch_thread_setting_as_it_found_it(data):
    before = torch.get_num_threads()
    config = TrainConfig(recipe="tutorial", epochs=1, train_subset=200, test_subset=100)
    train(config, data=data, runtime=Runtime(threads=before + 1), progress=False)
    assert torch.get_num_threads() == before


def test_command_trains_and_saves_a_model_that_loads(tmp_path, data):
    result = mnist_train("--epochs", "2", *QUICK, "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and str(tmp_path / "m") in result.stdout
    assert result.stdout.count("epoch ") == 2  # one line per epoch when output is not a terminal
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    for key in ("arch", "recipe", "config", "seed", "normalization", "history",
                "test_accuracy", "train_seconds", "versions", "runtime"):
        assert key in info
    assert 0.85 < info["test_accuracy"] <= 1
    assert set(info["normalization"]) == {"mean", "std"}
    assert info["versions"]["torch"] == torch.__version__
    assert info["runtime"]["threads"] == 1 and "threads" not in info["config"]
    model = load_model(tmp_path / "m")  # takes pixels in [0, 1]: it normalises itself
    with torch.inference_mode():
        predictions = model(to_pixels(data.test.images[:200])).argmax(1)
    assert (predictions == data.test.labels[:200]).float().mean().item() > 0.85


def test_bf16_trains_as_well_and_is_recorded(tmp_path, data):
    "--bf16: forward passes under autocast, entered step by step, so the model learns as in float32."
    result = mnist_train("--epochs", "1", *QUICK, "--bf16", "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["runtime"]["bf16"] is True and "bf16" not in info["config"]
    plain = train(TrainConfig(epochs=1, train_subset=4000, test_subset=1000), data=data,
                  runtime=Runtime(threads=1), progress=False)
    # 31 steps: rounding moves the result by a few images in 100; a stale cache would leave it at chance
    assert info["test_accuracy"] > 0.8 and abs(info["test_accuracy"] - plain.test_accuracy) < 0.05, (
        info["test_accuracy"], plain.test_accuracy)


def test_train_under_autocast_is_refused(data):
    "One autocast around a whole run would serve every step the first step's bf16 weights."
    with torch.autocast("cpu", torch.bfloat16):
        with pytest.raises(ValueError, match=r"Runtime\(bf16=True\)"):
            train(TrainConfig(epochs=1, train_subset=256, test_subset=100), data=data, progress=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "bs must be at least 1"),
        (["--recipe", "nope"], "invalid choice: 'nope'"),
        (["--epochs", "two"], "invalid int value: 'two'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--lr", "-0.1"], "lr must be a positive number"),
        (["--threads", "0"], "threads must be at least 1"),
        (["--seed", str(2**70)], "--seed: seed must be from 0 to 2**63 - 1"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, args, message):
    result = mnist_train(*args, "--out", str(tmp_path / "m"), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: TrainConfig(augment="no"), TypeError, "augment must be a bool or None, got 'no' (str)"),
        (lambda: TrainConfig(epochs="1"), TypeError, "epochs must be an integer or None, got '1' (str)"),
        (lambda: TrainConfig(epochs=1.5), TypeError, "epochs must be an integer or None, got 1.5 (float)"),
        (lambda: TrainConfig(bs=True), TypeError, "bs must be an integer or None, got True (bool)"),
        (lambda: TrainConfig(lr="0.1"), TypeError, "lr must be a number or None"),
        (lambda: TrainConfig(seed=2**70), ValueError, "seed must be from 0 to 2**63 - 1"),
        (lambda: TrainConfig(seed=-1), ValueError, "seed must be from 0 to 2**63 - 1, got -1"),
        (lambda: TrainConfig(recipe=None), TypeError, "recipe must be a string, got None"),
        (lambda: Runtime(threads="2"), TypeError, "threads must be an integer or None"),
        (lambda: Runtime(dist_timeout="60"), TypeError, "dist_timeout must be a number"),
        (lambda: Runtime(bf16=1), TypeError, "bf16 must be a bool, got 1 (int)"),
        (lambda: train({"epochs": 1}), TypeError, "config must be a TrainConfig or None, got dict"),
        (lambda: train(runtime="cpu"), TypeError, "runtime must be a Runtime or None, got str"),
    ],
)
def test_configs_refuse_wrong_types_and_ranges_as_they_are_made(make, error, message):
    "Up front, naming the field: not an epoch later (epochs=1.5), nor never (augment='no' augmented)."
    with pytest.raises(error) as caught:
        make()
    assert message in str(caught.value)


def test_configs_take_what_their_annotations_say():
    "An integer is a number; the largest seed torch takes is taken; a torch.device and a Path are fine."
    assert TrainConfig(lr=1).resolved().lr == 1
    assert TrainConfig(seed=2**63 - 1).resolved().seed == 2**63 - 1
    assert Runtime(device=torch.device("cpu"), data_dir=Path("/d"), dist_timeout=60).checked()


def test_resume_refuses_a_checkpoint_whose_history_is_empty(tmp_path, data):
    "Saved after an epoch's steps but before its record: refused with the file's name, not the scheduler's words."
    config = TrainConfig(epochs=1, train_subset=1000, test_subset=200)
    state = new_state(config.resolved(), build_model(), steps_per_epoch=8)
    for _ in range(8):  # the schedule moves on, the history stays empty
        state.optimizer.step()
        state.scheduler.step()
    save_checkpoint(tmp_path, state, config.resolved())
    with pytest.raises(ModelFileError, match="checkpoint.json: its history is empty") as caught:
        train(config, out_dir=tmp_path, resume=True, data=data, progress=False)
    assert "train afresh without resuming" in str(caught.value)


def test_a_restarted_run_continues_only_its_own_checkpoint(tmp_path, data, monkeypatch, capsys):
    "After torchrun's restart: the checkpoint of this run's options is continued; another run's is not."
    config = TrainConfig(epochs=1, train_subset=1000, test_subset=200)
    runtime = Runtime(threads=1)
    first = train(config, out_dir=tmp_path, data=data, runtime=runtime, progress=False)
    capsys.readouterr()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # as torchrun sets it in a restarted worker
    again = train(config, out_dir=tmp_path, data=data, runtime=runtime, progress=False)
    out, err = capsys.readouterr()
    assert "restart 1 by torchrun; continuing after epoch 1" in err
    assert "epoch 1/1" not in out  # nothing left to train
    assert weights_sha256(again.model) == weights_sha256(first.model)
    other = TrainConfig(epochs=1, train_subset=1000, test_subset=200, lr=0.02)  # not this run's checkpoint
    train(other, out_dir=tmp_path, data=data, runtime=runtime, progress=False)
    out, err = capsys.readouterr()
    assert "continuing after epoch 0" in err and "epoch 1/1" in out  # from the start


def test_missing_data_exits_1_with_the_data_message(tmp_path):
    result = mnist_train("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"),
                         timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "MNIST data not found" in result.stderr and "train-images-idx3-ubyte" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path):
    "The default recipe (one-cycle): killed in epoch 2, resumed, bit-identical to a straight run."
    args = ["--recipe", "fast", "--epochs", "3", "--train-subset", "12000", *QUICK[2:]]
    straight = mnist_train(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(["mnist-train", *args, "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for_line(proc, "epoch 1/3", timeout=240)  # printed once its checkpoint is saved
        proc.send_signal(signal.SIGKILL)  # now inside epoch 2
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert json.loads((killed / "checkpoint.json").read_text())["epoch"] == 1
    assert not (killed / "model.json").exists()

    resumed = mnist_train(*args, "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("epoch ") == 2  # epochs 2 and 3 only
    a = json.loads((tmp_path / "straight" / "model.json").read_text())
    b = json.loads((killed / "model.json").read_text())
    assert a["weights_sha256"] == b["weights_sha256"]  # the same weights, bit for bit
    assert [h["test_loss"] for h in a["history"]] == [h["test_loss"] for h in b["history"]]
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"
    load_model(killed)


def test_resume_names_the_option_that_differs(tmp_path):
    out = str(tmp_path / "m")
    assert mnist_train("--epochs", "1", *QUICK, "--out", out).returncode == 0
    result = mnist_train("--epochs", "1", "--lr", "0.02", *QUICK, "--out", out, "--resume",
                         timeout=60)
    assert result.returncode == 2, result.stderr
    assert "lr 0.01 there, 0.02 here" in result.stderr and "Traceback" not in result.stderr
    # how the run is carried out is not compared: other threads resume (nothing left to do)
    again = mnist_train("--epochs", "1", *QUICK[:-1], "2", "--out", out, "--resume")
    assert again.returncode == 0 and again.stdout.count("epoch ") == 0, again.stderr


def test_resume_without_a_checkpoint_says_so(tmp_path):
    result = mnist_train("--epochs", "1", *QUICK, "--out", str(tmp_path / "m"), "--resume")
    assert result.returncode == 0, result.stderr
    assert "no checkpoint to resume from" in result.stderr


def test_tiny_one_cycle_run_trains(tmp_path):
    "Four steps in all used to crash inside OneCycleLR."
    result = mnist_train("--epochs", "1", "--train-subset", "500", "--test-subset", "100",
                         "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr


class _Exploit:
    "Unpickling this creates a file: the proof that a loader executed a stranger's code."

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_model_loading_never_unpickles(tmp_path, data):
    folder = tmp_path / "m"
    train(TrainConfig(epochs=1, train_subset=1000, test_subset=200), out_dir=folder, data=data,
          progress=False)
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": _Exploit(marker)}))
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(folder)
    assert not marker.exists()


def test_broken_model_folders_are_named(tmp_path, data):
    folder = tmp_path / "m"
    train(TrainConfig(epochs=1, train_subset=1000, test_subset=200), out_dir=folder, data=data,
          progress=False)
    with pytest.raises(ModelFileError, match="no such model folder"):
        load_model(tmp_path / "absent")
    (folder / "model.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match="model.json: not valid JSON"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelFileError, match="model.json: missing"):
        load_model(folder)


def test_old_model_folders_still_load(tmp_path):
    "A model.json of the first format (device, threads and data_dir in its config) loads."
    pretrained = Path(__file__).parents[1] / "mnist_nbdev" / "pretrained"
    old = json.loads((pretrained / "model.json").read_text())
    old.pop("runtime", None)
    old.pop(RECORD_DIGEST, None)  # the first format signed the weights only
    old["config"].update(device="auto", threads=2, data_dir=None)
    (tmp_path / "model.json").write_text(json.dumps(old))
    (tmp_path / "model.safetensors").write_bytes((pretrained / "model.safetensors").read_bytes())
    assert load_model(tmp_path).info["arch"] == old["arch"]


def test_accurate_recipe_trains_and_resumes_exactly(tmp_path, data):
    "BatchNormCNN, augmented batches, label smoothing: stopped after epoch 1, resumed, bit-identical."
    config = TrainConfig(recipe="accurate", epochs=2, train_subset=3000, test_subset=500)
    runtime = Runtime(device="cpu", threads=1)
    straight = train(config, out_dir=tmp_path / "straight", data=data, runtime=runtime,
                     progress=False)
    assert straight.info["arch"] == "batchnorm_cnn" and straight.info["config"]["augment"]
    assert straight.test_accuracy > 0.85

    class Crash(Exception):
        pass

    def crash(record):
        if record["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        train(config, out_dir=tmp_path / "down", data=data, runtime=runtime, progress=False,
              on_epoch=crash)
    resumed = train(config, out_dir=tmp_path / "down", resume=True, data=data, runtime=runtime,
                    progress=False)
    assert weights_sha256(resumed.model) == weights_sha256(straight.model)
    loaded = load_model(tmp_path / "down")
    with torch.inference_mode():
        x = to_pixels(data.test.images[:64])
        assert torch.equal(loaded(x), straight.model(x))


def test_augmentation_is_what_the_recipe_says(data):
    "The same run with augmentation off ends with other weights: the switch is live."
    config = TrainConfig(recipe="accurate", epochs=1, train_subset=1000, test_subset=200)
    runtime = Runtime(device="cpu", threads=1)
    on = train(config, data=data, runtime=runtime, progress=False).model.state_dict()
    off_config = TrainConfig(**{**config.__dict__, "augment": False})
    off = train(off_config, data=data, runtime=runtime, progress=False).model.state_dict()
    assert not all(torch.equal(on[k], off[k]) for k in on)

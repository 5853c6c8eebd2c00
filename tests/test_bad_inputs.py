"""A careless or hostile user's inputs, as a table. Each row is a command line or a Python call, the
files it is given, and what must happen: the exit status (or the exception), one clear message that
names what is wrong, no traceback, and every file the user had left exactly as it was."""
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from PIL import ImageDraw

from conftest import idx_bytes
from conftest import write_idx_dataset
from mnist_nbdev.data import FILES
from mnist_nbdev.data import DataError
from mnist_nbdev.data import Split
from mnist_nbdev.data import IDXError
from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import parse_idx
from mnist_nbdev.data import to_pixels
from mnist_nbdev.evaluation import calibration_error
from mnist_nbdev.evaluation import confusion
from mnist_nbdev.evaluation import evaluate
from mnist_nbdev.evaluation import fit_temperature
from mnist_nbdev.evaluation import format_report
from mnist_nbdev.evaluation import person_like
from mnist_nbdev.evaluation import robustness
from mnist_nbdev.files import PRETRAINED_DIR
from mnist_nbdev.files import build_model
from mnist_nbdev.files import sign_model
from mnist_nbdev.model import Classifier
from mnist_nbdev.files import ModelFileError
from mnist_nbdev.model import TutorialCNN
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import NO_INK
from mnist_nbdev.prediction import ImageError
from mnist_nbdev.numbers import read_number
from mnist_nbdev.prediction import predict
from mnist_nbdev.refusal import glyph
from mnist_nbdev.refusal import not_digits
from mnist_nbdev.refusal import refusal_splits
from mnist_nbdev.refusal import scribble
from mnist_nbdev.refusal import train_refusing
from mnist_nbdev.training import LOCK_FILE
from mnist_nbdev.training import Runtime
from mnist_nbdev.training import TrainConfig
from mnist_nbdev.training import train

SEVEN = 4142  # a 7 in the MNIST test set


# ---- what a row is given: files made in its own folder -------------------------------------------
def seven_image(mnist_dir: Path) -> Image.Image:
    return Image.fromarray(load_mnist(mnist_dir).test.images[SEVEN].numpy())


def make_model(folder: Path, edit: Callable[[dict], None] | None = None, weights=None, sign=True) -> Path:
    "A copy of the packaged model, its model.json edited, then signed again (sign=False: left as edited)."
    shutil.copytree(PRETRAINED_DIR, folder)
    if edit is not None:
        info = json.loads((folder / "model.json").read_text())
        edit(info)
        (folder / "model.json").write_text(json.dumps(info))
        if sign:
            sign_model(folder)  # the field checks, not the digest, are what such a row tests
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def nan_weights(folder: Path) -> Path:
    "A model whose weights hold NaN, with a model.json whose SHA-256 matches them."
    from safetensors.torch import load, save

    shutil.copytree(PRETRAINED_DIR, folder)
    tensors = load((folder / "model.safetensors").read_bytes())
    last = [name for name, t in tensors.items() if t.is_floating_point()][-1]
    tensors[last].view(-1)[0] = float("nan")  # one weight of the network
    blob = save(tensors)
    (folder / "model.safetensors").write_bytes(blob)
    info = json.loads((folder / "model.json").read_text())
    info["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "model.json").write_text(json.dumps(info))
    sign_model(folder)
    return folder


def other_weights(folder: Path) -> Path:
    "The packaged model's record, with an untrained network's weights and their SHA-256 written in."
    from safetensors.torch import save

    shutil.copytree(PRETRAINED_DIR, folder)
    blob = save({k: v.contiguous() for k, v in build_model("batchnorm_cnn", width=16).net.state_dict().items()})
    (folder / "model.safetensors").write_bytes(blob)
    info = json.loads((folder / "model.json").read_text())
    info["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "model.json").write_text(json.dumps(info))
    return folder


def dataset(folder: Path, mnist_dir: Path, **replace: np.ndarray) -> Path:
    "MNIST's four files, with some arrays replaced (keys of FILES)."
    folder.mkdir(parents=True)
    for key, name in FILES.items():
        if key in replace:
            (folder / name).write_bytes(idx_bytes(replace[key]))
        else:
            shutil.copy(mnist_dir / "MNIST" / "raw" / name, folder / name)
    return folder


def small_set(folder: Path, **edits) -> Path:
    "A small 12x12 IDX set, with arrays edited by `edits` (key -> function of the array)."
    arrays = write_idx_dataset(folder, n_train=200, n_test=50)
    for key, edit in edits.items():
        (folder / FILES[key]).write_bytes(idx_bytes(edit(arrays[key])))
    return folder


def raw_file(folder: Path, key: str, data: bytes, others_from: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_idx_dataset(folder)
    (folder / FILES[key]).unlink()
    (folder / (FILES[key] + (".gz" if data[:2] == b"\x1f\x8b" else ""))).write_bytes(data)
    return folder


def idx_header(code: int, dims: tuple) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


# ---- the table --------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    argv: Callable  # (tmp, mnist_dir) -> the command line, after making its files in tmp
    status: int  # the exit status it must end with
    says: str  # a phrase its stderr must hold ("" for a success that prints to stdout)


def predict_file(make: Callable) -> Callable:
    def argv(tmp, mnist_dir):
        return ["mnist-predict", str(make(tmp, mnist_dir))]
    return argv


def with_model(make: Callable, command="mnist-predict") -> Callable:
    def argv(tmp, mnist_dir):
        image = tmp / "seven.png"
        seven_image(mnist_dir).save(image)
        model = make(tmp / "model")
        return ([command, str(image)] if command == "mnist-predict" else [command]) + ["--model", str(model)]
    return argv


def with_data(make: Callable, command=("mnist-evaluate",)) -> Callable:
    def argv(tmp, mnist_dir):
        return [*command, "--data", str(make(tmp / "data", mnist_dir))]
    return argv


def train_with(*options, prepare: Callable | None = None) -> Callable:
    def argv(tmp, mnist_dir):
        out = tmp / "out"
        if prepare is not None:
            prepare(tmp, out, mnist_dir)
        return ["mnist-train", *options, "--out", str(out)]
    return argv


def file_with(content: bytes, name: str) -> Callable:
    def make(tmp, mnist_dir):
        (tmp / name).write_bytes(content)
        return tmp / name
    return make


def huge_png(tmp, mnist_dir):
    Image.new("1", (9000, 9000)).save(tmp / "huge.png")  # 81 million pixels in a few kB
    return tmp / "huge.png"


def cut_jpeg(tmp, mnist_dir):
    seven_image(mnist_dir).resize((280, 280)).save(tmp / "whole.jpg")
    (tmp / "cut.jpg").write_bytes((tmp / "whole.jpg").read_bytes()[:600])
    return tmp / "cut.jpg"


def existing_model(tmp, out, mnist_dir):
    shutil.copytree(PRETRAINED_DIR, out)
    (out / ".notes.tmp").write_text("the user's own notes")


def checkpoint_of(options: list) -> Callable:
    def prepare(tmp, out, mnist_dir):
        command = ["mnist-train", *options, "--out", str(out), "--data", str(mnist_dir)]
        subprocess.run(command, capture_output=True, timeout=300, check=True)
    return prepare


def black(a):
    return np.zeros_like(a)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\nshowpage\n"


def fifo(tmp, mnist_dir):
    os.mkfifo(tmp / "pipe.png")  # reading it would wait for a writer for ever
    return tmp / "pipe.png"


def good_and_lab(tmp, mnist_dir):
    seven_image(mnist_dir).save(tmp / "good.png")
    lab_image(255 - np.asarray(seven_image(mnist_dir))).save(tmp / "lab.tif")
    return ["mnist-predict", str(tmp / "good.png"), str(tmp / "lab.tif")]


def lab_image(digit: np.ndarray) -> Image.Image:
    "A CIELAB image: `digit` as its lightness, no colour."
    grey = Image.new("L", digit.shape[::-1], 128)
    return Image.merge("LAB", (Image.fromarray(digit), grey, grey))


def noisy_16_bit_page() -> Image.Image:
    levels = 32768 + np.random.default_rng(0).integers(-1, 2, (200, 300))
    return Image.fromarray(levels.astype(np.uint16))


def little_endian_16_bit(digit: np.ndarray) -> Image.Image:
    return Image.frombytes("I;16L", digit.shape[::-1], (digit.astype("<u2") * 257).tobytes())


def float_image_with_nan(digit: np.ndarray) -> Image.Image:
    pixels = digit.astype(np.float32) / 255
    pixels[0, 0] = np.nan
    return Image.fromarray(pixels, mode="F")


def truncated_image() -> Image.Image:
    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue()[:300]))  # opened; its pixels are cut off


_HELD = []  # listening sockets that rows keep open while their command runs


def serve_on_taken_port(host: str = "127.0.0.1") -> Callable:
    "mnist-serve on a port that a listening socket holds on every interface, as another server would."
    def argv(tmp, mnist_dir):
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        s.listen()
        _HELD.append(s)
        return ["mnist-serve", "--host", host, "--port", str(s.getsockname()[1])]
    return argv


def stdout_closed(*command) -> Callable:
    "The command run with its stdout closed (`>&-`), given the tutorial's 7 where it takes an image."
    def argv(tmp, mnist_dir):
        seven_image(mnist_dir).save(tmp / "seven.png")
        words = [str(tmp / "seven.png") if w == "SEVEN" else w for w in command]
        return ["sh", "-c", '"$@" >&-', "sh", *words]
    return argv


def checkpoint_without_history(tmp, out, mnist_dir):
    "A checkpoint of QUICK's options saved after an epoch's steps, with no epoch in its history."
    from mnist_nbdev.checkpoints import save_checkpoint
    from mnist_nbdev.loop import new_state

    config = TrainConfig(epochs=1, train_subset=1000, test_subset=200).resolved()
    state = new_state(config, build_model(), steps_per_epoch=8)
    for _ in range(8):
        state.optimizer.step()
        state.scheduler.step()
    save_checkpoint(out, state, config)


def resume_from_empty_history(d):
    "train(resume=True) from a checkpoint whose history is empty."
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_without_history(None, Path(tmp), None)
        return train(TrainConfig(epochs=1, train_subset=1000, test_subset=200), out_dir=tmp, resume=True,
                     data=d, progress=False)


QUICK = ["--epochs", "1", "--train-subset", "1000", "--test-subset", "200"]

CLI = [
    # mnist-predict: the image files
    Row("predict: missing file", lambda t, m: ["mnist-predict", str(t / "gone.png")], 1, "gone.png: no such file"),
    Row("predict: empty file", predict_file(file_with(b"", "empty.png")), 1, "empty.png: empty file"),
    Row("predict: text named .png", predict_file(file_with(b"shopping list", "list.png")), 1, "list.png: not an image"),
    Row("predict: a folder", lambda t, m: ["mnist-predict", str(t)], 1, "is a folder"),
    Row("predict: truncated JPEG", predict_file(cut_jpeg), 1, "cut.jpg: unreadable image"),
    Row("predict: 81-megapixel PNG", predict_file(huge_png), 1, "huge.png: 9000x9000 is 81 million pixels"),
    Row("predict: HTML named .jpg", predict_file(file_with(b"<html><body>hi</body></html>", "page.jpg")), 1, "page.jpg: not an image"),
    Row("predict: no files at all", lambda t, m: ["mnist-predict"], 2, "the following arguments are required: IMAGE"),
    Row("predict: unknown option", lambda t, m: ["mnist-predict", "--colour", "x.png"], 2, "unrecognized arguments: --colour"),
    # mnist-predict and mnist-evaluate: model folders
    Row("model: no such folder", lambda t, m: ["mnist-evaluate", "--model", str(t / "none")], 1, "no such model folder"),
    Row("model: folder without model.json", with_model(lambda f: (f.mkdir(), f)[1]), 1, "model.json: missing"),
    Row("model: model.json not JSON", with_model(lambda f: (make_model(f), (f / "model.json").write_text("{ oops"), f)[2]), 1, "model.json: not valid JSON"),
    Row("model: model.json is a folder", with_model(lambda f: (f.mkdir(), (f / "model.json").mkdir(), f)[2]), 1, "model.json: is a folder"),
    Row("model: model.json a list", with_model(lambda f: (make_model(f), (f / "model.json").write_text("[1, 2]"), f)[2]), 1, "expected a JSON object, got list"),
    Row("model: image_size 2000", with_model(lambda f: make_model(f, lambda i: i["model_args"].update(image_size=2000))), 1, "image_size is 2000"),
    Row("model: image_size a string", with_model(lambda f: make_model(f, lambda i: i["model_args"].update(image_size="28"))), 1, "image_size is '28'"),
    Row("model: n_classes 0", with_model(lambda f: make_model(f, lambda i: i["model_args"].update(n_classes=0))), 1, "n_classes is 0"),
    Row("model: unknown arch", with_model(lambda f: make_model(f, lambda i: i.update(arch="resnet"))), 1, "arch 'resnet' is not one of"),
    Row("model: normalization a string", with_model(lambda f: make_model(f, lambda i: i.update(normalization="mnist"))), 1, "normalization should be"),
    Row("model: std 0", with_model(lambda f: make_model(f, lambda i: i["normalization"].update(std=0))), 1, "0 < std <= 1"),
    Row("model: mean NaN", with_model(lambda f: make_model(f, lambda i: i["normalization"].update(mean=float("nan")))), 1, "normalization needs"),
    Row("model: model_args missing", with_model(lambda f: make_model(f, lambda i: i.pop("model_args"))), 1, "lacks model_args"),
    Row("model: temperature a string", with_model(lambda f: make_model(f, lambda i: i.update(temperature="hot"))), 1, "temperature should be a number from 0.01 to 100, not 'hot'"),  # new field (issue 28)
    Row("model: temperature 0", with_model(lambda f: make_model(f, lambda i: i.update(temperature=0))), 1, "temperature should be a number from 0.01 to 100, not 0"),  # new field: would divide by zero
    Row("model: refuse_at 0", with_model(lambda f: make_model(f, lambda i: i.update(refuse_at=0))), 1, "refuse_at should be a probability above 0"),  # new field: would refuse every digit
    Row("model: weights of another model", with_model(lambda f: make_model(f, weights=b"\x00" * 64)), 1, "mnist-train --resume"),
    Row("model: NaN weights", with_model(nan_weights), 1, "not-a-number or infinite weights"),
    Row("model: evaluate, NaN weights", with_model(nan_weights, "mnist-evaluate"), 1, "not-a-number or infinite weights"),
    # mnist-evaluate: data folders
    Row("data: no such folder", lambda t, m: ["mnist-evaluate", "--data", str(t / "none")], 1, "MNIST data not found"),
    Row("data: a file, not a folder", with_data(lambda f, m: (f.write_text("x"), f)[1]), 1, "is a file, not a folder"),
    Row("data: labels file truncated", with_data(lambda f, m: raw_file(f, "test_labels", idx_bytes(np.zeros(40, np.uint8))[:20])), 1, "truncated"),
    Row("data: images 32x32 for a 28x28 model", with_data(lambda f, m: small_set(f, test_images=lambda a: np.zeros((50, 32, 32), np.uint8), train_images=lambda a: np.zeros((200, 32, 32), np.uint8))), 1, "the model takes 28x28 images; these: 32x32"),
    Row("data: label 200 among 0-9", with_data(lambda f, m: dataset(f, m, train_labels=np.where(np.arange(60000) == 7, 200, np.arange(60000) % 10).astype(np.uint8))), 1, "a label out of range?"),
    Row("data: an empty test split", with_data(lambda f, m: small_set(f, test_images=lambda a: a[:0], test_labels=lambda a: a[:0])), 1, "holds no images"),
    Row("data: images not square", with_data(lambda f, m: small_set(f, train_images=lambda a: a[:, :, :10], test_images=lambda a: a[:, :, :10])), 1, "images of 12x10"),
    Row("data: dims that overflow", with_data(lambda f, m: raw_file(f, "test_images", idx_header(0x0C, (2**31, 2**31, 4))  + b"\0" * 64)), 1, "this reader takes at most"),
    Row("data: gzip that expands past its header", with_data(lambda f, m: raw_file(f, "test_labels", gzip.compress(idx_header(0x08, (50,)) + b"\0" * 50_000_000))), 1, "has trailing bytes"),
    Row("data: labels stored as images", with_data(lambda f, m: raw_file(f, "test_labels", idx_bytes(np.zeros((50, 12, 12), np.uint8)))), 1, "expected uint8 labels"),
    Row("data: not IDX at all", with_data(lambda f, m: raw_file(f, "train_images", b"GIF89a" + b"\0" * 100)), 1, "not an IDX file"),
    # mnist-train: options
    Row("train: batch size 0", train_with("--batch-size", "0"), 2, "bs must be at least 1, got 0"),
    Row("train: epochs 'two'", train_with("--epochs", "two"), 2, "invalid int value: 'two'"),
    Row("train: --negatives -5", train_with("--negatives", "-5"), 2, "--negatives must be 0 or more, got -5"),  # new option (issue 28)
    Row("train: --negatives without a validation split", train_with("--negatives", "100", "--valid", "0"), 2, "--valid must be at least 1 with --negatives"),  # new: no temperature could be fitted
    Row("train: --valid half the training set", train_with("--valid", "30000", *QUICK), 2, "valid must be from 0 to 29999"),  # new option
    Row("train: epochs -1", train_with("--epochs", "-1"), 2, "epochs must be at least 1"),
    Row("train: --members 0", train_with("--recipe", "ensemble", "--members", "0"), 2, "--members must be at least 1, got 0"),  # new option (issue 29)
    Row("train: --members without the ensemble", train_with("--members", "3"), 2, "--members is for --recipe ensemble"),  # new: not silently ignored
    Row("train: ensemble with --negatives", train_with("--recipe", "ensemble", "--negatives", "100"), 2, "without --negatives, --writers or --nproc"),  # new
    Row("train: ensemble with --writers", train_with("--recipe", "ensemble", "--writers", "100"), 2, "without --negatives, --writers or --nproc"),  # new option (issue 30)
    Row("train: --writers -1", train_with("--writers", "-1"), 2, "--writers must be 0 or more, got -1"),  # new option (issue 30)
    Row("train: --coarse 2", train_with("--recipe", "accurate", "--coarse", "2"), 2, "coarse must be in [0, 1], got 2.0"),  # new option (issue 30)
    Row("train: --coarse without augmentation", train_with("--coarse", "0.2"), 2, "coarse coarsens augmented digits: it needs augment"),  # the fast recipe does not augment
    Row("train: ensemble under torchrun", train_with("--recipe", "ensemble", "--nproc", "2"), 2, "one after another in one process"),  # new
    Row("train: ensemble without a validation split", train_with("--recipe", "ensemble", "--valid", "0"), 2, "--valid must be at least 1 with --recipe ensemble"),  # new
    Row("train: ensemble of tutorial networks", train_with("--recipe", "ensemble", "--arch", "tutorial_cnn", *QUICK), 2, "members are batchnorm_cnn networks, not tutorial_cnn"),  # new
    Row("train: lr nan", train_with("--lr", "nan"), 2, "lr must be a positive number"),
    Row("train: lr inf", train_with("--lr", "inf"), 2, "lr must be a positive number"),
    Row("train: lr 0", train_with("--lr", "0"), 2, "lr must be a positive number"),
    Row("train: unknown recipe", train_with("--recipe", "slow"), 2, "invalid choice: 'slow'"),
    Row("train: device mps", train_with("--device", "mps"), 2, "device 'mps' is not supported"),
    Row("train: device meta", train_with("--device", "meta"), 2, "device 'meta' is not supported"),
    Row("train: device cuda, none here", train_with("--device", "cuda"), 2, "CUDA is not available"),
    Row("train: device tpu", train_with("--device", "tpu"), 2, "unknown device 'tpu'"),
    Row("train: threads 0", train_with("--threads", "0"), 2, "threads must be at least 1"),
    Row("train: nproc 0", train_with("--nproc", "0"), 2, "--nproc must be at least 1"),
    Row("train: nproc 3, batch 128", train_with("--nproc", "3"), 2, "does not split evenly over 3 processes"),
    Row("train: dist-timeout 0", train_with("--nproc", "2", "--dist-timeout", "0"), 2, "dist_timeout must be a positive number"),
    Row("train: dist-timeout nan", train_with("--nproc", "2", "--dist-timeout", "nan"), 2, "dist_timeout must be a positive number"),
    Row("train: train-subset 0", train_with("--train-subset", "0"), 2, "train_subset must be at least 1"),
    # mnist-train: folders and data
    Row("train: --out is a file", train_with(*QUICK, prepare=lambda t, o, m: o.write_text("keep me")), 1, "is a file; the output needs a folder"),
    Row("train: --out inside a file", lambda t, m: ((t / "f").write_text("keep"), ["mnist-train", *QUICK, "--out", str(t / "f" / "sub")])[1], 1, "Not a directory"),
    Row("train: --data is a file", lambda t, m: ((t / "d").write_text("x"), ["mnist-train", "--data", str(t / "d"), "--out", str(t / "o")])[1], 1, "is a file, not a folder"),
    Row("train: all-black images", lambda t, m: ["mnist-train", *QUICK, "--data", str(small_set(t / "d", train_images=black)), "--out", str(t / "o")], 1, "there is nothing to learn from"),
    Row("train: label 200", lambda t, m: ["mnist-train", *QUICK, "--data", str(small_set(t / "d", train_labels=lambda a: np.where(np.arange(len(a)) == 3, 200, a).astype(np.uint8))), "--out", str(t / "o")], 1, "a label out of range?"),
    Row("train: lr 1e6 diverges, model kept", train_with(*QUICK, "--lr", "1e6", prepare=existing_model), 1, "the loss diverged in epoch 1"),
    Row("train: resume with another lr", train_with(*QUICK, "--lr", "0.02", "--resume", prepare=checkpoint_of(QUICK)), 2, "lr 0.01 there, 0.02 here"),
    Row("train: resume, checkpoint.json broken", train_with(*QUICK, "--resume", prepare=lambda t, o, m: (checkpoint_of(QUICK)(t, o, m), (o / "checkpoint.json").write_text("{"))), 1, "checkpoint.json: not valid JSON"),
    # issue 27, a second round: each row's comment says what happened before it
    Row("train: seed 2**70", train_with("--seed", str(2**70)), 2, "--seed: seed must be from 0 to 2**63 - 1"),  # before: 2, "Overflow when unpacking long long", no option named
    Row("train: seed -1", train_with("--seed", "-1"), 2, "--seed: seed must be from 0 to 2**63 - 1, got -1"),  # before: 0, trained with seed -1
    Row("train: nnodes 2, no endpoint", train_with("--nnodes", "2"), 2, "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),  # before: 2, "unrecognized arguments"
    Row("train: max-restarts -1", train_with("--max-restarts", "-1"), 2, "--max-restarts must be at least 0, got -1"),  # before: 2, "unrecognized arguments"
    Row("train: resume, history empty", train_with(*QUICK, "--resume", prepare=checkpoint_without_history), 1, "checkpoint.json: its history is empty"),  # before: 2, "Tried to step 9 times. The specified number of total steps is 8"
    Row("train: resume, history empty, 2 processes", train_with(*QUICK, "--nproc", "2", "--resume", prepare=checkpoint_without_history), 1, "checkpoint.json: its history is empty"),  # before: 1, each worker "Tried to step 9 times...", then torchrun's ChildFailedError traceback
    Row("train: stdout closed", stdout_closed("mnist-train", *QUICK, "--out", "out"), 1, "standard output is closed"),  # before: 0, epoch lines and "model saved to" lost
    Row("predict: stdout closed", stdout_closed("mnist-predict", "SEVEN"), 1, "standard output is closed"),  # before: 0, the reading lost
    Row("evaluate: stdout closed", stdout_closed("mnist-evaluate", "--json"), 1, "standard output is closed"),  # before: 0, the report lost
    Row("predict: name not UTF-8", lambda t, m: ["mnist-predict", os.fsencode(t) + b"/gone\xfe.png"], 1, "gone\\xfe.png: no such file"),  # before: 1, but stderr held the raw byte 0xfe (not UTF-8; the harness failed to decode it)
    Row("export: --force over a folder", lambda t, m: ((t / "models").mkdir(), ["mnist-export", "--out", str(t / "models"), "--force"])[1], 1, "is a folder; --out names the ONNX file to write, and --force replaces a file, not a folder"),  # before: 1, "already exists; choose another --out, or give --force to replace a file"
    Row("serve: port in use", serve_on_taken_port(), 1, "cannot listen on 127.0.0.1:"),  # before: 3 (uvicorn's), "[Errno 98] error while attempting to bind"
    Row("serve: 0.0.0.0 warns", serve_on_taken_port("0.0.0.0"), 1, "the API is reachable from other machines, and it has no authentication"),  # before: 3, no warning (port taken so the row ends)
    Row("model: normalization edited after saving", with_model(lambda f: make_model(f, lambda i: i["normalization"].update(mean=0.5), sign=False)), 1, "model.json: the record was edited after it was saved"),  # before: loaded silently; 88.5% right on 2,000 test digits
    Row("model: evaluate, test_accuracy edited after saving", with_model(lambda f: make_model(f, lambda i: i.update(test_accuracy=1.0), sign=False), "mnist-evaluate"), 1, "the record was edited after it was saved"),  # before: exit 0; /health reported accuracy 1.0
    Row("model: other weights, their SHA-256 written in", with_model(other_weights), 1, "the record was edited after it was saved"),  # before: untrained weights loaded silently
    Row("model: older record, not signed", with_model(lambda f: make_model(f, lambda i: i.pop("record_sha256"), sign=False)), 0, "sign_model('"),  # before: no warning
    Row("predict: EPS file", predict_file(file_with(EPS, "page.eps")), 1, "page.eps: not an image in a format read here"),  # before: Pillow ran Ghostscript on it (a broken gs: a raw CalledProcessError)
    Row("predict: a FIFO", predict_file(fifo), 1, "pipe.png: not a regular file"),  # before: "empty file"
    Row("predict: /dev/zero", lambda t, m: ["mnist-predict", "/dev/zero"], 1, "/dev/zero: not a regular file"),  # before: "empty file"
    Row("predict: good file beside a LAB TIFF", good_and_lab, 0, ""),  # before: exit 2, "conversion from LAB to RGB not supported", good.png's reading lost
]

API = [  # (name, call given the MNIST data, exception or None, phrase in its message or check of result)
    ("rgb array (H, W, 3)", lambda d: predict(np.repeat(d.test.images[SEVEN].numpy()[..., None], 3, 2)).label, None, 7),
    ("rgb batch (1, 3, H, W)", lambda d: predict(to_pixels(d.test.images[SEVEN:SEVEN + 1]).repeat(1, 3, 1, 1)).label, None, 7),
    ("(3, 28, 28) float tensor", lambda d: predict(d.test.images[:3].float() / 255), ImageError, "ambiguous"),
    ("(3, 28, 28) uint8 tensor", lambda d: predict(d.test.images[:3]), ImageError, "ambiguous"),
    ("(5, 28, 28) is five images", lambda d: [p.label for p in predict(d.test.images[:5])], None, [7, 2, 1, 0, 4]),
    ("(28, 28, 3) uint8 colour", lambda d: predict(np.stack([d.test.images[SEVEN].numpy()] * 3, -1)).label, None, 7),
    ("floats 0-255", lambda d: predict(d.test.images[SEVEN].float()), ImageError, "reach 255"),
    ("normalised tensor", lambda d: predict((to_pixels(d.test.images[:1]) - 0.13) / 0.31), ImageError, "already normalised"),
    ("NaN pixels", lambda d: predict(torch.full((28, 28), float("nan"))), ImageError, "not-a-number"),
    ("empty list", lambda d: predict([]), None, []),
    ("closed PIL image", lambda d: predict(closed_image()), ImageError, "closed"),
    ("0/1 integer mask", lambda d: predict((d.test.images[SEVEN] > 127).long()).label, None, 7),
    ("boolean mask", lambda d: predict((d.test.images[SEVEN] > 127).numpy()).label, None, 7),
    ("int16 up to 1000", lambda d: predict(np.full((28, 28), 1000, np.int16)), ImageError, "0-255, these are 1000 to 1000"),
    ("a dict", lambda d: predict({"pixels": 1}), ImageError, "cannot read a dict"),
    ("zero-size array", lambda d: predict(np.zeros((0, 28))), ImageError, "holds no pixels"),
    ("4-D of 2 channels", lambda d: predict(np.zeros((1, 2, 28, 28))), ImageError, "not an image"),
    ("load_model('~/...') expands ~", lambda d: load_model("~/no-such-model-here"), ModelFileError, str(Path.home())),
    ("std 0 in a Classifier", lambda d: Classifier(TutorialCNN(), 0.1, 0.0), ValueError, "positive std"),
    ("IDX dims overflowing", lambda d: parse_idx(idx_header(0x0C, (2**31, 2**31, 4))), IDXError, "takes at most"),
    # issue 27, a second round: each row's comment says what happened before it
    ("(28, 28, 1): Keras' layout", lambda d: predict(d.test.images[SEVEN].numpy()[..., None]).label, None, 7),  # before: 28 predictions of slivers
    ("(N, 28, 28, 1): a Keras batch", lambda d: [p.label for p in predict(d.test.images[:3].numpy()[..., None])], None, [7, 2, 1]),  # before: 84 slivers
    ("blank 16-bit page, +-1 level of noise", lambda d: predict(noisy_16_bit_page()).label, None, None),  # before: "8" (stretched from darkest to lightest)
    ("16-bit 'I;16L' image of a 7", lambda d: predict(little_endian_16_bit(d.test.images[SEVEN].numpy())).label, None, 7),  # before: "1"
    ("PIL 'F' image with one NaN", lambda d: predict(float_image_with_nan(d.test.images[SEVEN].numpy())), ImageError, "not-a-number"),  # before: "none"
    ("near-black 28x28, brightest 2", lambda d: predict((d.test.images[SEVEN] > 127).numpy().astype(np.uint8) * 2).label, None, None),  # before: "1" at 0.86
    ("bfloat16 tensor", lambda d: predict(to_pixels(d.test.images[SEVEN:SEVEN + 1]).bfloat16()).label, None, 7),  # before: TypeError (numpy has no bfloat16)
    ("(28, 1, 28): one image, axes mixed", lambda d: predict(to_pixels(d.test.images[SEVEN])), ImageError, "too small to show a digit"),  # before: 28 readings of 1x28 slivers
    ("LAB PIL image of a 7", lambda d: predict(lab_image(d.test.images[SEVEN].numpy())).label, None, 7),  # before: "conversion from LAB to RGB not supported"
    ("truncated PIL image", lambda d: predict(truncated_image()), ImageError, "the PIL image: unreadable"),  # before: a raw OSError
    ("model=42", lambda d: predict(d.test.images[SEVEN], model=42), TypeError, "model must be a Classifier"),  # before: AttributeError: 'int' object has no attribute 'parameters'
    ("TrainConfig(augment='no')", lambda d: TrainConfig(augment="no"), TypeError, "augment must be a bool or None, got 'no' (str)"),  # before: accepted; augmented and saved "no"
    ("TrainConfig(epochs='1')", lambda d: TrainConfig(epochs="1"), TypeError, "epochs must be an integer or None, got '1' (str)"),  # before: accepted; resolved() raised "'<' not supported ..."
    ("TrainConfig(epochs=1.5)", lambda d: TrainConfig(epochs=1.5), TypeError, "epochs must be an integer or None, got 1.5 (float)"),  # before: accepted; failed after a whole epoch
    ("TrainConfig(bs=True)", lambda d: TrainConfig(bs=True), TypeError, "bs must be an integer or None, got True (bool)"),  # before: accepted (bs=True)
    ("TrainConfig(seed=2**70)", lambda d: TrainConfig(seed=2**70), ValueError, "seed must be from 0 to 2**63 - 1"),  # before: accepted; train() raised "Overflow when unpacking long long"
    ("TrainConfig(lr='0.1')", lambda d: TrainConfig(lr="0.1"), TypeError, "lr must be a number or None"),  # before: accepted; resolved() raised "'>' not supported ..."
    ("Runtime(threads='2')", lambda d: Runtime(threads="2"), TypeError, "threads must be an integer or None, got '2' (str)"),  # before: accepted; train() raised "'<' not supported ..."
    ("train(config=a dict)", lambda d: train({"epochs": 1}, data=d), TypeError, "config must be a TrainConfig or None, got dict"),  # before: AttributeError "'dict' object has no attribute 'resolved'"
    ("resume, history empty", resume_from_empty_history, ModelFileError, "checkpoint.json: its history is empty"),  # before: ValueError "Tried to step 9 times..."
    ("evaluate(42)", lambda d: evaluate(42, d.test), TypeError, "model must be a Classifier (an nn.Module)"),  # before: AttributeError: 'int' object has no attribute 'eval'
    ("evaluate('folder')", lambda d: evaluate(str(PRETRAINED_DIR), d.test)["accuracy"] == load_model().info["test_accuracy"], None, True),  # before: AttributeError: 'str' object has no attribute 'eval'
    ("evaluate('no-such-folder')", lambda d: evaluate("no-such-folder", d.test), ModelFileError, "no-such-folder: no such model folder"),  # before: AttributeError on 'str'
    ("evaluate(model, data)", lambda d: evaluate(None, d), TypeError, "split must be one split, e.g. data.test"),  # before: AttributeError: 'MNISTData' object has no attribute 'images'
    ("evaluate, float pixels", lambda d: evaluate(None, Split(d.test.images.float() / 255, d.test.labels)), TypeError, "split.images must be uint8"),  # before: no error, accuracy 0.12
    ("evaluate bs='500'", lambda d: evaluate(None, d.test, bs="500"), TypeError, "bs must be an integer, got '500' (str)"),  # before: TypeError: '<' not supported between 'str' and 'int'
    ("evaluate data_dir=42", lambda d: evaluate(None, data_dir=42), TypeError, "data_dir must be a folder's path"),  # before: TypeError: expected str, bytes or os.PathLike object, not int
    ("robustness(model, split)", lambda d: robustness(None, d.test), TypeError, "models must be a dict of name -> model"),  # before: AttributeError: no attribute 'items'
    ("robustness, unknown distortion", lambda d: robustness({"m": None}, d.test, {"blur": [1]}), ValueError, "distortions has 'blur'; known: rotate, shift, scale"),  # before: TypeError: distort() got an unexpected keyword argument 'blur'
    ("confusion, preds past n_classes", lambda d: confusion(torch.tensor([0, 1]), torch.tensor([0, 5]), 3), ValueError, "preds go up to 5"),  # before: no error, counted in the wrong cell
    ("format_report(model)", lambda d: format_report(load_model()), TypeError, "report must be the dict evaluate returns"),  # before: TypeError: 'Classifier' object is not subscriptable
    ("person_like(image, 0)", lambda d: person_like(d.test.images[0].numpy(), 0), TypeError, "rng must be a numpy Generator"),  # before: AttributeError: 'int' object has no attribute 'integers'
    ("red ink on blue paper, one grey", lambda d: predict(on_paper(d.test.images[SEVEN].numpy(), (60, 110, 190), (200, 40, 30))).label, None, 7),  # before: "none", 100 times in 100
    ("40 digits on medium-blue ruled paper", lambda d: right_on(d, lambda x: ruled(on_paper(x, (245, 245, 240), (20, 20, 30), 160, 400), every=16)) >= 38, None, True),  # before: 0 of 40 right
    ("40 digits on blue grid paper", lambda d: right_on(d, lambda x: ruled(on_paper(x, (245, 245, 240), (20, 20, 30)), every=14, grid=True)) >= 38, None, True),  # before: 9 of 40 right
    ("40 digits on grey grid paper", lambda d: right_on(d, lambda x: ruled(on_paper(x, (245, 245, 240), (20, 20, 30)), (150, 150, 150), every=14, grid=True)) >= 38, None, True),  # before: 14 of 40 right
    ("a blank ruled page", lambda d: predict(ruled(np.full((280, 280, 3), 245, np.uint8))).label, None, None),  # before: read as a digit
    ("a 7 drawn with a 1-px pen, 400x400", lambda d: predict(pen_seven(400, 1)).label, None, 7),  # before: "1"
    ("a 7 drawn with a 2-px pen, 1600x1600", lambda d: predict(pen_seven(1600, 2)).label, None, 7),  # before: "1"
    ("workers=0", lambda d: predict(d.test.images[SEVEN], workers=0), ValueError, "workers must be"),  # before: read on one thread, silently
    ("a letter K", lambda d: predict(np.asarray(glyph("K", "DejaVuSans", np.random.default_rng(5)))).reason[:11], None, "not a digit"),  # before: read as a digit, 0.6 sure
    ("a scribble", lambda d: predict(np.asarray(scribble(np.random.default_rng(3)))).label, None, None),  # before: read as a digit
    ("a blank page gives its reason", lambda d: predict(np.full((64, 64), 0.9)).reason, None, NO_INK),  # before: label None, no reason
    ("fit_temperature: 3 logits, 2 labels", lambda d: fit_temperature(torch.zeros(3, 10), torch.zeros(2, dtype=torch.long)), ValueError, "one of each per image"),
    ("fit_temperature: a list", lambda d: fit_temperature([[1.0, 2.0]], torch.zeros(1, dtype=torch.long)), TypeError, "logits must be a 2-D tensor"),
    ("calibration_error: labels 2-D", lambda d: calibration_error(torch.rand(4, 10), torch.zeros(4, 1, dtype=torch.long)), TypeError, "labels must be"),
    ("calibration_error: bins=0", lambda d: calibration_error(torch.rand(4, 10), torch.zeros(4, dtype=torch.long), bins=0), ValueError, "bins must be"),
    ("not_digits: fonts='mine'", lambda d: not_digits(3, fonts="mine"), ValueError, "fonts must be one of train, held out"),
    ("refusal_splits: valid half the set", lambda d: refusal_splits(d, valid=30_000), ValueError, "valid must be from 0 to 29999"),
    ("train_refusing: valid=0", lambda d: train_refusing(valid=0, data=d), ValueError, "valid must be at least 1"),
    ("train_refusing: negatives=-1", lambda d: train_refusing(negatives=-1, data=d), ValueError, "negatives must be a whole number"),
    ("read_number: a list", lambda d: read_number([d.test.images[0], d.test.images[1]]), ImageError, "read_number reads one image, not a list"),  # new function (issue 28)
    ("read_number: a batch of 2", lambda d: read_number(np.zeros((2, 40, 40))), ImageError, "holds 2 images; read_number reads one"),
    ("read_number: model=42", lambda d: read_number(d.test.images[0], model=42), TypeError, "model must be a Classifier"),
    ("read_number: a blank page", lambda d: read_number(np.ones((60, 200))).reason, None, NO_INK),
    ("read_number: a page of 30 specks", lambda d: read_number(specks(30)).reason[:14], None, "no number read"),
    ("read_number: a 7 alone", lambda d: read_number(d.test.images[SEVEN]).number, None, "7"),
]


def specks(n: int) -> np.ndarray:
    "A white page with `n` short strokes in a row: too many pieces to be a number."
    page = np.ones((60, 30 * n + 40))
    for i in range(n):
        page[20:40, 25 + 30 * i : 31 + 30 * i] = 0
    return page


def on_paper(digit: np.ndarray, paper: tuple, ink: tuple, side: int = 280, page: int | None = None) -> np.ndarray:
    "The digit drawn `side` pixels high in `ink` on `paper` (RGB 0-255), in the middle of a `page`-pixel page."
    alpha = np.asarray(Image.fromarray(digit).resize((side, side)), np.float32)[..., None] / 255
    drawn = (np.array(paper, np.float32) * (1 - alpha) + np.array(ink) * alpha).astype(np.uint8)
    out = np.empty((page or side, page or side, 3), np.uint8)
    out[:] = paper
    at = ((page or side) - side) // 2
    out[at : at + side, at : at + side] = drawn
    return out


def right_on(d, make_page, n: int = 40) -> int:
    "How many of the first `n` test digits, each on a page `make_page` makes of it, read right."
    pages = [make_page(d.test.images[i].numpy()) for i in range(n)]
    return sum(p.label == label for p, label in zip(predict(pages), d.test.labels[:n].tolist()))


def ruled(page: np.ndarray, colour=(90, 130, 200), every: int = 24, grid: bool = False) -> np.ndarray:
    "`page` with 2-pixel lines of `colour` across it (and down it, for grid paper)."
    out = page.copy()
    for y in range(every // 2, out.shape[0], every):
        out[y : y + 2] = colour
    for x in range(every // 2, out.shape[1], every) if grid else []:
        out[:, x : x + 2] = colour
    return out


def pen_seven(side: int, width: int) -> Image.Image:
    "A 7 drawn with a `width`-pixel pen on a white `side`-pixel canvas."
    canvas = Image.new("L", (side, side), 255)
    corners = [(0.25 * side, 0.2 * side), (0.75 * side, 0.2 * side), (0.45 * side, 0.85 * side)]
    ImageDraw.Draw(canvas).line(corners, fill=0, width=width)
    return canvas


def closed_image():
    image = Image.new("L", (28, 28))
    image.close()
    return image


def snapshot(folder: Path) -> dict:
    "Every file under `folder` and the SHA-256 of its content."
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("row", CLI, ids=[r.name for r in CLI])
def test_command_refuses_clearly_and_loses_nothing(row, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_NBDEV_DATA", str(mnist_dir))
    argv = row.argv(tmp_path, mnist_dir)
    before = snapshot(tmp_path)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == row.status, (argv, result.stdout[-2000:], result.stderr[-2000:])
    assert row.says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    after = snapshot(tmp_path)
    changed = [str(p) for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"files the user had were changed or deleted: {changed}"


@pytest.fixture(scope="module")
def data(mnist_dir):
    return load_mnist(mnist_dir)


@pytest.mark.parametrize("name, call, error, expected", API, ids=[a[0] for a in API])
def test_api_refuses_clearly_or_reads_right(name, call, error, expected, data):
    if error is None:
        assert call(data) == expected
    else:
        with pytest.raises(error, match=None) as caught:
            call(data)
        assert expected in str(caught.value), str(caught.value)


def test_json_output_is_strict_json(tmp_path, mnist_dir):
    seven_image(mnist_dir).save(tmp_path / "seven.png")
    (tmp_path / "bad.png").write_bytes(b"")
    result = subprocess.run(["mnist-predict", "--json", str(tmp_path / "seven.png"), str(tmp_path / "bad.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    rows = json.loads(result.stdout, parse_constant=refuse)
    assert rows[0]["label"] == 7 and "empty file" in rows[1]["error"]


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "a") as lock:  # as a run in progress holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(["mnist-train", *QUICK, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "another training run is writing to this folder" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_a_sideways_phone_photo_is_read_upright(tmp_path, mnist_dir):
    "Phone photos store pixels sideways with an EXIF tag; read as the owner sees them."
    photo = Image.fromarray(255 - np.asarray(seven_image(mnist_dir).resize((280, 280))))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    photo.transpose(Image.Transpose.ROTATE_90).convert("RGB").save(tmp_path / "phone.jpg", exif=exif)
    result = subprocess.run(["mnist-predict", str(tmp_path / "phone.jpg")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "7", result.stdout


def test_ctrl_c_exits_130_with_one_line_and_files_intact(tmp_path):
    import signal

    from test_training import wait_for_line

    out = tmp_path / "out"
    proc = subprocess.Popen(["mnist-train", "--epochs", "3", "--train-subset", "12000", "--test-subset",
                             "1000", "--threads", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(proc, "epoch 1/3", timeout=240)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "mnist-train: interrupted", stderr
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 1

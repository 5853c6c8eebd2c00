"""A careless or hostile user's inputs, as a table. Each row is a command line or a Python call, the
files it is given, and what must happen: the exit status (or the exception), one clear message that
names what is wrong, no traceback, and every file the user had left exactly as it was."""
import gzip
import hashlib
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import idx_bytes
from conftest import write_idx_dataset
from mnist_nbdev.data import FILES
from mnist_nbdev.data import DataError
from mnist_nbdev.data import IDXError
from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import parse_idx
from mnist_nbdev.data import to_pixels
from mnist_nbdev.files import PRETRAINED_DIR
from mnist_nbdev.model import Classifier
from mnist_nbdev.files import ModelFileError
from mnist_nbdev.model import TutorialCNN
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import ImageError
from mnist_nbdev.prediction import predict
from mnist_nbdev.training import LOCK_FILE

SEVEN = 4142  # a 7 in the MNIST test set


# ---- what a row is given: files made in its own folder -------------------------------------------
def seven_image(mnist_dir: Path) -> Image.Image:
    return Image.fromarray(load_mnist(mnist_dir).test.images[SEVEN].numpy())


def make_model(folder: Path, edit: Callable[[dict], None] | None = None, weights=None) -> Path:
    "A copy of the packaged model, its model.json edited."
    shutil.copytree(PRETRAINED_DIR, folder)
    if edit is not None:
        info = json.loads((folder / "model.json").read_text())
        edit(info)
        (folder / "model.json").write_text(json.dumps(info))
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
    Row("train: epochs -1", train_with("--epochs", "-1"), 2, "epochs must be at least 1"),
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
    Row("train: resume with another lr", train_with(*QUICK, "--lr", "0.01", "--resume", prepare=checkpoint_of(QUICK)), 2, "lr 0.015 there, 0.01 here"),
    Row("train: resume, checkpoint.json broken", train_with(*QUICK, "--resume", prepare=lambda t, o, m: (checkpoint_of(QUICK)(t, o, m), (o / "checkpoint.json").write_text("{"))), 1, "checkpoint.json: not valid JSON"),
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
]


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

"""The ensemble recipe from the command line: one model folder that every command takes like any other.

`mnist-train --recipe ensemble` trains small members here (one epoch on a few thousand digits); the full recipe's
figures are the ensemble page's and benchmarks/ensemble_results.md's."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_nbdev.data import load_mnist
from mnist_nbdev.ensemble import combine
from mnist_nbdev.ensemble import validation_split
from mnist_nbdev.files import build_model
from mnist_nbdev.files import load_model

SMALL = ["--epochs", "1", "--train-subset", "3000", "--test-subset", "1000", "--valid", "1000"]


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory, mnist_dir) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "model"
    result = subprocess.run(["mnist-train", "--recipe", "ensemble", "--members", "2", *SMALL, "--out", str(out)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MNIST_NBDEV_DATA": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    assert "model saved to" in result.stdout
    return out


def test_one_folder_with_its_members(ensemble_dir):
    info = json.loads((ensemble_dir / "model.json").read_text())
    assert (info["arch"], info["recipe"], info["members"], info["valid"]) == ("ensemble", "ensemble", 2, 1000)
    assert len(info["member_valid_accuracy"]) == 2
    assert sorted(p.name for p in (ensemble_dir / "members").iterdir()) == ["0", "1"]
    seeds = [json.loads((ensemble_dir / "members" / k / "model.json").read_text())["seed"] for k in "01"]
    assert seeds == [0, 1]  # different starts, or the average would be one network


def test_evaluate_reads_it(ensemble_dir, mnist_dir):
    result = subprocess.run(["mnist-evaluate", "--model", str(ensemble_dir), "--json"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "MNIST_NBDEV_DATA": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] > 0.9  # two networks of one small epoch each


def test_the_average_of_its_members(ensemble_dir, mnist_dir):
    "The saved ensemble answers what its members, loaded from their own folders, average to."
    model = load_model(ensemble_dir)
    members = [load_model(ensemble_dir / "members" / k) for k in "01"]
    x = load_mnist(mnist_dir).test.images[:200].unsqueeze(1).float() / 255
    with torch.no_grad():
        mean = torch.stack([m(x).softmax(1) for m in members]).mean(0)
        torch.testing.assert_close(model(x).softmax(1), mean, rtol=1e-5, atol=1e-6)


def test_predict_export_and_serve_take_it(ensemble_dir, mnist_dir, tmp_path):
    digit = load_mnist(mnist_dir).test.images[4142].numpy()  # the tutorial's 7
    Image.fromarray(255 - digit).resize((112, 112)).save(tmp_path / "seven.png")
    env = {**os.environ, "MNIST_NBDEV_DATA": str(mnist_dir)}
    predicted = subprocess.run(["mnist-predict", "--model", str(ensemble_dir), "--json", str(tmp_path / "seven.png")],
                               capture_output=True, text=True, timeout=300, env=env)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["label"] == 7
    onnx = tmp_path / "ensemble.onnx"
    exported = subprocess.run(["mnist-export", "--model", str(ensemble_dir), "--out", str(onnx)],
                              capture_output=True, text=True, timeout=600, env=env)
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble.onnx", "seven.png"]  # one file
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mnist_nbdev.serving import make_app

    with TestClient(make_app(load_model(ensemble_dir))) as client:
        upload = ("files", ("seven.png", (tmp_path / "seven.png").read_bytes(), "image/png"))
        reply = client.post("/predict", files=[upload])
    assert reply.status_code == 200, reply.text
    assert reply.json()[0]["label"] == 7


def test_combine_refuses_what_cannot_be_averaged():
    fast = build_model("space_to_depth_cnn")
    fast.info["arch"] = "space_to_depth_cnn"
    with pytest.raises(ValueError, match="batchnorm_cnn networks"):
        combine([build_model("batchnorm_cnn"), fast])
    with pytest.raises(ValueError, match="model_args"):
        combine([build_model("batchnorm_cnn"), build_model("batchnorm_cnn", width=8)])
    with pytest.raises(ValueError, match="normalises with"):
        combine([build_model("batchnorm_cnn"), build_model("batchnorm_cnn", mean=0.2)])


def test_validation_split_holds_out_the_last_digits(mnist_dir):
    data = load_mnist(mnist_dir)
    to_fit, held = validation_split(data, 5000)
    assert torch.equal(held.images, data.train.images[-5000:])
    assert len(to_fit) + len(held) == len(data.train)
    assert np.intersect1d(to_fit.labels.numpy(), held.labels.numpy()).size == 10

"""evaluate and mnist-evaluate agree with what training recorded."""
import json
import subprocess

import pytest

from mnist_nbdev.data import load_mnist
from mnist_nbdev.evaluation import evaluate
from mnist_nbdev.evaluation import format_report
from mnist_nbdev.files import load_model


def test_evaluate_agrees_with_model_json(mnist_dir):
    model = load_model()
    report = evaluate(model, data_dir=mnist_dir)  # the test split, found in that folder
    assert report["accuracy"] == model.info["test_accuracy"]
    assert report["accuracy"] >= 0.995  # the packaged model passes 99.5%
    other = evaluate(model, load_mnist(mnist_dir).test, bs=333)  # batch size changes nothing
    assert other["confusion_matrix"] == report["confusion_matrix"]
    assert other["loss"] == pytest.approx(report["loss"], rel=1e-5)
    assert json.loads(json.dumps(report)) == report
    assert len(report["confusion_matrix"]) == 10 and sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    assert 0 < report["loss"] < 0.15  # label smoothing (0.1) keeps it near 0.1
    text = format_report(report)
    assert text.startswith(f"accuracy {report['accuracy']:.2%}") and "confusion matrix" in text


def test_command_evaluate_json_agrees_with_model_json(mnist_dir):
    result = subprocess.run(["mnist-evaluate", "--json", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == load_model().info["test_accuracy"]
    assert report["accuracy"] >= 0.995  # the packaged model passes 99.5%
    assert len(report["confusion_matrix"]) == 10 and sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    assert 0 < report["loss"] < 0.15  # label smoothing (0.1) keeps it near 0.1


def test_command_evaluate_text_and_errors(tmp_path, mnist_dir):
    text = subprocess.run(["mnist-evaluate", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and text.stdout.startswith("accuracy ") and "confusion matrix" in text.stdout
    bad = subprocess.run(["mnist-evaluate", "--model", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "model.json: missing" in bad.stderr and "Traceback" not in bad.stderr

"""mnist-evaluate agrees with what training recorded."""
import json
import subprocess

from mnist_nbdev.training import load_model


def test_evaluate_json_agrees_with_model_json(mnist_dir):
    result = subprocess.run(["mnist-evaluate", "--json", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == load_model().info["test_accuracy"]
    assert report["accuracy"] >= 0.99
    assert len(report["confusion_matrix"]) == 10 and sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    assert 0 < report["loss"] < 0.1


def test_evaluate_text_and_errors(tmp_path, mnist_dir):
    text = subprocess.run(["mnist-evaluate", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and text.stdout.startswith("accuracy ") and "confusion matrix" in text.stdout
    bad = subprocess.run(["mnist-evaluate", "--model", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "model.json: missing" in bad.stderr and "Traceback" not in bad.stderr

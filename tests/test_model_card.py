"""Every saved model explains itself: a README.md model card with Hugging Face's front matter, its figures
the model record's own; `mnist-evaluate --card` adds the per-class figures; folders without a card still
load, and a README.md the package did not write is never overwritten."""
import json
import subprocess

import pytest

from mnist_nbdev.data import load_mnist
from mnist_nbdev.evaluation import evaluate
from mnist_nbdev.files import PRETRAINED_DIR
from mnist_nbdev.files import load_model

yaml = pytest.importorskip("yaml", reason="PyYAML is a dev requirement: pip install -e .[dev]")


def front_matter(folder) -> dict:
    "The YAML front matter of a folder's README.md."
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n"), text[:200]
    return yaml.safe_load(text.split("---\n")[1])


def accuracy_in(meta: dict) -> float:
    (result,) = meta["model-index"][0]["results"]
    (metric,) = result["metrics"]
    assert metric["type"] == "accuracy" and result["dataset"]["type"] == "mnist"
    return metric["value"]


def test_the_packaged_model_ships_a_card_that_agrees_with_its_record(mnist_dir):
    meta = front_matter(PRETRAINED_DIR)
    record = json.loads((PRETRAINED_DIR / "model.json").read_text())
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["mnist"]
    assert accuracy_in(meta) == record["test_accuracy"]
    text = (PRETRAINED_DIR / "README.md").read_text()
    report = evaluate(load_model(), load_mnist(mnist_dir).test)
    assert f"(accuracy {report['accuracy']:.2%})" in text  # the per-class table is this model's
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 10
    for name in ("## Uses", "## Limitations", "## Training", "## Evaluation", "## How to use"):
        assert name in text


def test_mnist_train_writes_a_card_and_mnist_evaluate_refreshes_it(tmp_path, mnist_dir):
    "(mnist_dir: MNIST_NBDEV_DATA, which the commands read, points at the real data)"
    out = tmp_path / "m"
    train = ["mnist-train", "--epochs", "1", "--train-subset", "2000", "--test-subset", "500",
             "--seed", "3", "--out", str(out)]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    record = json.loads((out / "model.json").read_text())
    meta = front_matter(out)
    assert accuracy_in(meta) == record["test_accuracy"]
    card = (out / "README.md").read_text()
    assert "- seed: 3" in card and "- epochs: 1" in card and "- training images: 2000" in card
    assert "Per class" not in card  # training measures no per-class figures
    result = subprocess.run(["mnist-evaluate", "--model", str(out), "--card"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    card = (out / "README.md").read_text()
    assert "Per class, from `mnist-evaluate` on 10,000 images" in card
    assert accuracy_in(front_matter(out)) == record["test_accuracy"]  # the record's figure stays


def test_a_folder_without_a_card_loads_and_a_persons_readme_is_left_alone(tmp_path):
    model = load_model()
    from mnist_nbdev.files import save_model

    save_model(model, tmp_path)
    (tmp_path / "README.md").unlink()  # as model folders from before cards were written
    assert load_model(tmp_path).info["test_accuracy"] == model.info["test_accuracy"]
    (tmp_path / "README.md").write_text("my notes on this model\n")
    result = subprocess.run(["mnist-evaluate", "--model", str(tmp_path), "--card"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "not a model card written by mnist_nbdev" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "README.md").read_text() == "my notes on this model\n"

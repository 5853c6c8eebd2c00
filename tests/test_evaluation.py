"""evaluate and mnist-evaluate agree with what training recorded; every public function of evaluation
refuses a wrong-typed argument up front, naming the parameter."""
import json
import subprocess
from pathlib import Path

import pytest

from mnist_nbdev.data import load_mnist
from mnist_nbdev.evaluation import check_fits
from mnist_nbdev.evaluation import confident_mistakes
from mnist_nbdev.evaluation import confusion
from mnist_nbdev.evaluation import distort
from mnist_nbdev.evaluation import evaluate
from mnist_nbdev.evaluation import format_report
from mnist_nbdev.evaluation import person_like
from mnist_nbdev.evaluation import person_like_photos
from mnist_nbdev.evaluation import plot_confusion
from mnist_nbdev.evaluation import plot_mistakes
from mnist_nbdev.evaluation import plot_per_class_accuracy
from mnist_nbdev.evaluation import plot_robustness
from mnist_nbdev.evaluation import predict_split
from mnist_nbdev.evaluation import robustness
from mnist_nbdev.files import ModelFileError
from mnist_nbdev.files import load_model
from mnist_nbdev.refusal import logits_of


def test_evaluate_agrees_with_model_json(mnist_dir):
    model = load_model()
    report = evaluate(model, data_dir=mnist_dir)  # the test split, found in that folder
    assert report["accuracy"] == model.info["test_accuracy"]
    # read right, "not a digit" counted wrong: 99.41% since issue 30 traded 0.2 points of MNIST,
    # most of them refusals, for other writers' digits (the writers page); over the ten digits
    # alone it reads 99.62%, above the 99.6% that issue asks for
    assert report["accuracy"] >= 0.994
    test = load_mnist(mnist_dir).test
    ten = (logits_of(model, test.images)[:, :10].argmax(1) == test.labels).double().mean()
    assert ten >= 0.996
    other = evaluate(model, load_mnist(mnist_dir).test, bs=333)  # batch size changes nothing
    assert other["confusion_matrix"] == report["confusion_matrix"]
    assert other["loss"] == pytest.approx(report["loss"], rel=1e-5)
    assert json.loads(json.dumps(report)) == report
    classes = load_model().info["model_args"]["n_classes"]  # 11: it can say "not a digit"
    assert len(report["confusion_matrix"]) == classes and sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    assert 0 < report["loss"] < 0.05  # calibrated: label smoothing's 0.1 floor is gone
    text = format_report(report)
    assert text.startswith(f"accuracy {report['accuracy']:.2%}") and "confusion matrix" in text


def test_command_evaluate_json_agrees_with_model_json(mnist_dir):
    result = subprocess.run(["mnist-evaluate", "--json", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == load_model().info["test_accuracy"]
    assert report["accuracy"] >= 0.994  # as test_evaluate_agrees_with_model_json says why
    classes = load_model().info["model_args"]["n_classes"]  # 11: it can say "not a digit"
    assert len(report["confusion_matrix"]) == classes and sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    assert 0 < report["loss"] < 0.05  # calibrated: label smoothing's 0.1 floor is gone


def test_command_evaluate_text_and_errors(tmp_path, mnist_dir):
    text = subprocess.run(["mnist-evaluate", "--data", str(mnist_dir)], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and text.stdout.startswith("accuracy ") and "confusion matrix" in text.stdout
    bad = subprocess.run(["mnist-evaluate", "--model", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "model.json: missing" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def few(mnist_dir):
    return load_mnist(mnist_dir).test.subset(500)


def test_evaluate_takes_the_model_as_a_folder_or_none(few):
    "As `predict` does: a model folder's path, or None for the packaged model, loads it."
    from mnist_nbdev.files import PRETRAINED_DIR

    loaded = evaluate(load_model(), few)
    assert evaluate(str(PRETRAINED_DIR), few) == loaded
    assert evaluate(PRETRAINED_DIR, few) == loaded
    assert evaluate(None, few) == loaded
    assert evaluate(split=few) == loaded
    assert robustness({"packaged": str(PRETRAINED_DIR)}, few, {"rotate": [0]}) == [
        {"distortion": "rotate", "amount": 0, "packaged": loaded["accuracy"]}]


def wrong_arguments():
    "(call given a model and a split, exception, phrase of its message): each names its parameter."
    import numpy as np
    import torch

    from mnist_nbdev.data import MNISTData
    from mnist_nbdev.data import Split

    def both(s):  # what load_mnist returns: both splits
        return MNISTData(s, s, Path("mnist"))

    probs = torch.full((4, 10), 0.1)
    four = torch.tensor([0, 1, 2, 3])
    return [
        (lambda m, s: evaluate(42, s), TypeError, "model must be a Classifier"),
        (lambda m, s: evaluate("no-such-folder", s), ModelFileError, "no-such-folder: no such model folder"),
        (lambda m, s: evaluate(m, both(s)), TypeError, "split must be one split, e.g. data.test"),
        (lambda m, s: evaluate(m, (s.images, s.labels)), TypeError, "split must be a Split"),
        (lambda m, s: evaluate(m, Split(s.images.float() / 255, s.labels)), TypeError, "split.images must be uint8"),
        (lambda m, s: evaluate(m, Split(s.images, s.labels.float())), TypeError, "split.labels must be"),
        (lambda m, s: evaluate(m, Split(s.images[:3], s.labels)), ValueError, "split has 3 images and 500 labels"),
        (lambda m, s: evaluate(m, s.subset(0)), ValueError, "split holds no images"),
        (lambda m, s: evaluate(m, s, bs="500"), TypeError, "bs must be an integer, got '500' (str)"),
        (lambda m, s: evaluate(m, s, bs=1.5), TypeError, "bs must be an integer, got 1.5 (float)"),
        (lambda m, s: evaluate(m, s, bs=0), ValueError, "bs must be at least 1, got 0"),
        (lambda m, s: evaluate(m, data_dir=42), TypeError, "data_dir must be a folder"),
        (lambda m, s: evaluate(m, s, data_dir="/data"), ValueError, "give split or data_dir, not both"),
        (lambda m, s: predict_split(42, s), TypeError, "model must be a Classifier"),
        (lambda m, s: predict_split(m, both(s)), TypeError, "split must be one split"),
        (lambda m, s: check_fits(m, "test"), TypeError, "split must be a Split"),
        (lambda m, s: confusion([0, 1], [0, 1], 3), TypeError, "labels must be a 1-D tensor of class numbers"),
        (lambda m, s: confusion(four, np.array([0, 1, 2, 3]), 10), TypeError, "preds must be a 1-D tensor"),
        (lambda m, s: confusion(four, four, "10"), TypeError, "n_classes must be an integer"),
        (lambda m, s: confusion(four, four[:3], 10), ValueError, "labels and preds must be as long"),
        (lambda m, s: confusion(four, torch.tensor([0, 1, 2, 9]), 4), ValueError, "preds go up to 9"),
        (lambda m, s: confusion(torch.tensor([-1, 0]), torch.tensor([0, 0]), 4), ValueError, "labels must be class numbers from 0"),
        (lambda m, s: format_report(m), TypeError, "report must be the dict evaluate returns"),
        (lambda m, s: format_report('{"accuracy": 1}'), TypeError, "json.loads"),
        (lambda m, s: format_report({"accuracy": 1}), ValueError, "report lacks loss"),
        (lambda m, s: plot_confusion([1]), TypeError, "report must be the dict"),
        (lambda m, s: plot_per_class_accuracy(None), TypeError, "report must be the dict"),
        (lambda m, s: confident_mistakes(probs, four, "5"), TypeError, "k must be an integer"),
        (lambda m, s: confident_mistakes(probs, four, -1), ValueError, "k must be at least 0"),
        (lambda m, s: confident_mistakes(probs.numpy(), four), TypeError, "probs must be a 2-D tensor"),
        (lambda m, s: confident_mistakes(probs, four.tolist()), TypeError, "labels must be a 1-D tensor"),
        (lambda m, s: confident_mistakes(probs, four[:3]), ValueError, "probs has 4 rows and labels 3"),
        (lambda m, s: plot_mistakes(both(s), probs), TypeError, "split must be one split"),
        (lambda m, s: plot_mistakes(s, probs), ValueError, "probs has 4 rows and the split 500 images"),
        (lambda m, s: distort(s, rotate="10"), TypeError, "rotate must be a number, got '10' (str)"),
        (lambda m, s: distort(s, scale=0), ValueError, "scale must be above 0"),
        (lambda m, s: distort(s, shift=float("nan")), ValueError, "shift must be a finite number"),
        (lambda m, s: distort(both(s)), TypeError, "split must be one split"),
        (lambda m, s: robustness(m, s), TypeError, "models must be a dict of name -> model"),
        (lambda m, s: robustness({"a": 42}, s), TypeError, "models['a'] must be a Classifier"),
        (lambda m, s: robustness({}, s), ValueError, "models is empty"),
        (lambda m, s: robustness({"a": m}, s, {"blur": [1]}), ValueError, "distortions has 'blur'; known: rotate, shift, scale"),
        (lambda m, s: robustness({"a": m}, s, {"rotate": 10}), TypeError, "distortions['rotate'] must be a list of amounts"),
        (lambda m, s: robustness({"a": m}, s, [("rotate", [10])]), TypeError, "distortions must be a dict"),
        (lambda m, s: plot_robustness([]), ValueError, "rows is empty"),
        (lambda m, s: plot_robustness(evaluate(m, s)), TypeError, "rows must be the list robustness returns"),
        (lambda m, s: person_like(s.images[0], np.random.default_rng(0)), TypeError, "image must be a (H, W) uint8 numpy array"),
        (lambda m, s: person_like(s.images[0].numpy() / 255, np.random.default_rng(0)), TypeError, "image must be"),
        (lambda m, s: person_like(s.images[0].numpy(), 0), TypeError, "rng must be a numpy Generator"),
        (lambda m, s: person_like_photos(s, "5"), TypeError, "n must be an integer"),
        (lambda m, s: person_like_photos(s, 5, seed=-1), ValueError, "seed must be at least 0"),
        (lambda m, s: person_like_photos(both(s), 5), TypeError, "split must be one split"),
    ]


WRONG = wrong_arguments()


@pytest.mark.parametrize("call, error, says", WRONG, ids=[w[2] for w in WRONG])
def test_wrong_arguments_are_refused_up_front_naming_the_parameter(call, error, says, few):
    with pytest.raises(error) as caught:
        call(load_model(), few)
    assert says in str(caught.value), str(caught.value)

"""How well a model answers "not a digit", and how well its confidence means a probability (issue 28).

Run from the project root (`python benchmarks/refusal.py [--model FOLDER]`, also run by `make bench`); it
writes benchmarks/refusal_results.md and prints it. The model defaults to the packaged one. Every set is
one the model never trained on and nothing was tuned on:

- held-out shapes: `held_out_shapes` (the refusal page): letters and symbols in fonts the training shapes
  never use (STIX and Computer Modern, shipped with matplotlib), pen strokes and transforms of MNIST's
  *test* digits, drawn with their own seed; 2,000 of them, by kind;
- MNIST's test set, 10,000 digits, as `predict` reads them (refused ones counted);
- 1,000 person-like photos of test digits (the evaluation page's `person_like_photos`, seed 0), read by
  `predict` from the photo as a person's file would be.

The targets are the issue's: at least 90% of the held-out shapes refused, at most 0.5% of the test digits
and 2% of the photos; the test set's expected calibration error at most 1%.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mnist_nbdev.data import load_mnist
from mnist_nbdev.evaluation import calibration_error
from mnist_nbdev.evaluation import person_like_photos
from mnist_nbdev.evaluation import predict_split
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import predict
from mnist_nbdev.refusal import KINDS
from mnist_nbdev.refusal import held_out_shapes

HERE = Path(__file__).parent


def refused_share(answers: list) -> float:
    return float(np.mean([a.label is None for a in answers]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder; default: the packaged model")
    parser.add_argument("--out", default=str(HERE / "refusal_results.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    model, data = load_model(args.model), load_mnist()
    shapes, kinds = held_out_shapes(data, 2_000)
    shape_answers = predict(list(shapes.numpy()), model)
    digit_answers = predict(list(data.test.images.numpy()), model)
    photos, photo_labels = person_like_photos(data.test, 1_000, seed=0)
    photo_answers = predict(photos, model)
    probs = predict_split(model, data.test)
    t = model.temperature
    raw = (probs.clamp_min(1e-30).log() * t).softmax(1)
    kept = [(a.label, y) for a, y in zip(digit_answers, data.test.labels.tolist()) if a.label is not None]
    photo_right = np.mean([a.label == y for a, y in zip(photo_answers, photo_labels.tolist())])
    figures = {
        "held-out shapes refused": (refused_share(shape_answers), ">= 90%"),
        "MNIST test digits refused": (refused_share(digit_answers), "<= 0.5%"),
        "person-like photos refused": (refused_share(photo_answers), "<= 2%"),
        "test digits read right, of those accepted": (np.mean([a == b for a, b in kept]), ""),
        "person-like photos read right (refused count as wrong)": (photo_right, ""),
        "test calibration error, as trained (T = 1)": (calibration_error(raw, data.test.labels), ""),
        f"test calibration error, calibrated (T = {t:.3f})": (calibration_error(probs, data.test.labels), "<= 1%"),
    }
    seconds = time.perf_counter() - started
    lines = ["| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {name} | {value:.2%} | {target} |" for name, (value, target) in figures.items()]
    lines += ["", "Held-out shapes by kind:", "", "| kind | shapes | refused |", "|---|---|---|"]
    refused = np.array([a.label is None for a in shape_answers])
    for kind in KINDS:
        inside = np.array(kinds) == kind
        if inside.any():
            lines.append(f"| {kind} | {inside.sum()} | {refused[inside].mean():.1%} |")
    name = args.model or "the packaged model"
    info = model.info
    lines += ["", f"Model: {name} ({info.get('arch')}, {info.get('recipe')} recipe, "
              f"{info['model_args'].get('n_classes')} classes, refuse_at {info.get('refuse_at', 0.5):.3f}).",
              "", f"Measured {time.strftime('%Y-%m-%d')} with `python benchmarks/refusal.py` in {seconds:.0f} s "
              f"(load average {load:.2f} at the start) on torch {torch.__version__}, {platform.machine()}, "
              f"Python {platform.python_version()}, CPU only."]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    misses = [name for name, (value, target) in figures.items() if target and not (
        value >= float(target[3:-1]) / 100 if target.startswith(">=") else value <= float(target[3:-1]) / 100)]
    if misses:
        print("missed:", ", ".join(misses))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())

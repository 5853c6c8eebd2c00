"""Whole numbers read exactly: MNIST test digits photographed in a row, and UCI digits.

    python benchmarks/number_reading.py [--n 300] [--seed 0]

Writes benchmarks/number_reading_results.md. Uses the packaged model, through `read_number`.
"""
import argparse
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnist_nbdev.data import load_mnist
from mnist_nbdev.files import load_model
from mnist_nbdev.numbers import number_photo
from mnist_nbdev.numbers import read_number

RESULTS = Path(__file__).with_name("number_reading_results.md")


INKED = 0.45  # a scaled-up UCI digit is ink where it is darker than this


def uci_number(
    digits: list,  # 8x8 UCI images, values 0-16
    rng: np.random.Generator,  # draws size and spacing
) -> np.ndarray:
    """Grey [0, 1] image of `digits` scaled up smoothly and inked (dark on white, sharp
    edges, as a pen leaves them), set side by side with varied gaps."""
    side = int(rng.integers(48, 112))
    gaps = (rng.uniform(0.05, 0.3, len(digits)) * side).astype(int)
    margin = side // 2
    page = np.zeros((side + 2 * margin, 2 * margin + len(digits) * side
                     + int(gaps[:-1].sum())), np.float32)
    x = margin
    for d, gap in zip(digits, gaps):
        small = Image.fromarray((np.asarray(d) / 16 * 255).astype(np.uint8))
        big = np.asarray(small.resize((side, side), Image.Resampling.BICUBIC)) / 255
        page[margin : margin + side, x : x + side] = big > INKED
        x += side + gap
    return 1 - page


def run(kind: str, n: int, seed: int, model) -> dict:
    "Exact-match accuracy on `n` numbers of 2-5 digits of `kind`, by length, and time."
    rng = np.random.default_rng(seed)
    if kind == "mnist":
        test = load_mnist().test
        images, labels = test.images.numpy(), test.labels.numpy()
    else:
        from sklearn.datasets import load_digits

        uci = load_digits()
        images, labels = uci.images, uci.target
    right, by_length, touched = 0, defaultdict(lambda: [0, 0]), [0, 0]
    seconds = 0.0
    for _ in range(n):
        picks = rng.integers(0, len(labels), int(rng.integers(2, 6)))
        truth = "".join(str(labels[i]) for i in picks)
        digits = [images[i] for i in picks]
        image = number_photo(digits, rng) if kind == "mnist" else uci_number(digits, rng)
        t0 = time.perf_counter()
        got = read_number(image, model).number
        seconds += time.perf_counter() - t0
        right += got == truth
        by_length[len(truth)][0] += got == truth
        by_length[len(truth)][1] += 1
    return {"kind": kind, "n": n, "accuracy": right / n, "seconds": seconds,
            "by_length": {k: v[0] / v[1] for k, v in sorted(by_length.items())},
            "counts": {k: v[1] for k, v in sorted(by_length.items())}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="numbers of each kind")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    model = load_model()
    torch.manual_seed(0)
    names = {"mnist": "MNIST test digits, photographed in a row (target >= 95%)",
             "uci": "scikit-learn's UCI digits, scaled up, inked, side by side (target >= 85%)"}
    lines = ["# Reading whole numbers", "",
             f"`python benchmarks/number_reading.py --n {args.n} --seed {args.seed}`: "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, packaged model "
             f"({model.info.get('arch')}, {model.info.get('recipe')} recipe); "
             f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.2f} "
             "at the start.", "",
             "| numbers | exact | 2 digits | 3 | 4 | 5 | ms per number |",
             "|---|---|---|---|---|---|---|"]
    for kind in ("mnist", "uci"):
        r = run(kind, args.n, args.seed, model)
        per = " | ".join(f"{r['by_length'].get(k, 0):.1%} ({r['counts'].get(k, 0)})"
                         for k in (2, 3, 4, 5))
        lines.append(f"| {names[kind]} | {r['accuracy']:.1%} | {per} | "
                     f"{1000 * r['seconds'] / r['n']:.0f} |")
        print(lines[-1], flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()

"""Other writers' digits (the writers page): the packaged recipe trained with one lever at a time.

Each run trains the packaged model's recipe (`accurate`, 10 epochs, seed 0, 10,000 shapes taught
as "not a digit", the last 5,000 training digits held out to calibrate) with one change, then
measures MNIST's test set and the three sets from outside MNIST (`outside_sets`: 2,000 digits in
held-out handwriting typefaces, 2,000 by the program's pen, UCI's 1,797 low-resolution scans) and
1,000 person-like photos of MNIST test digits; each also read with test-time augmentation. A run
takes 2-5 minutes on 2 cores; accuracies, not times, are the point (a busy machine changes only
the seconds). Runs are added to writers_results.json by name; `--show` prints the table.

    python benchmarks/writers.py base deskew elastic strokes lowres writers wider
    python benchmarks/writers.py writers=10000,epochs=15   # levers combine: name=value,...
    python benchmarks/writers.py --show
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import mnist_nbdev.batches as batches
from mnist_nbdev import files
from mnist_nbdev.data import MNISTData, Split, load_mnist
from mnist_nbdev.evaluation import person_like_photos
from mnist_nbdev.loop import TrainConfig
from mnist_nbdev.model import BatchNormCNN
from mnist_nbdev.prediction import NOT_A_DIGIT, mnist_image
from mnist_nbdev.refusal import calibrate, logits_of, refusal_splits
from mnist_nbdev.training import Runtime, train
from mnist_nbdev.writers import outside_sets, writer_digits

RESULTS = Path(__file__).with_name("writers_results.json")
TABLE = Path(__file__).with_name("writers_results.md")
LEVERS = {  # name -> what it changes, for the table
    "base": "the packaged recipe as it was (issue 28)",
    "deskew": "each image sheared upright by its moments, inside the network",
    "elastic": "elastic distortion of every training digit (a smooth random warp)",
    "strokes": "stroke widths: each training digit thinned or thickened at random",
    "lowres": "a quarter of training digits shrunk to 8-14 px and scaled back",
    "writers": "synthetic writers' digits added to training (half typefaces, half pen)",
    "wider": "the network twice as wide (32, 64, 128 filters)",
    "epochs": "more epochs",
    "tta": "test-time augmentation: mean of the image and four 1-pixel shifts",
}


def deskew(x: torch.Tensor) -> torch.Tensor:
    "(B, 1, H, W) images, each sheared so that its ink's main axis stands upright."
    low = x.amin(dim=(2, 3), keepdim=True)
    w = x - low  # the paper weighs nothing, whatever the normalisation
    b, _, h, wd = x.shape
    ys = torch.arange(h, dtype=x.dtype).view(1, 1, h, 1)
    xs = torch.arange(wd, dtype=x.dtype).view(1, 1, 1, wd)
    mass = w.sum((2, 3)).clamp_min(1e-6)
    cy = ((w * ys).sum((2, 3)) / mass)[..., None, None]
    cx = ((w * xs).sum((2, 3)) / mass)[..., None, None]
    mu11 = (w * (ys - cy) * (xs - cx)).sum((2, 3)) / mass
    mu02 = (w * (ys - cy) ** 2).sum((2, 3)) / mass
    skew = (mu11 / mu02.clamp_min(1e-6)).clamp(-1, 1).view(b)
    centre = (2 * cy.view(b) + 1) / h - 1  # the centre row, in affine_grid's units
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 1] = skew * h / wd
    theta[:, 0, 2] = -skew * h / wd * centre
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(w, grid, align_corners=False) + low


class DeskewedCNN(BatchNormCNN):
    "`BatchNormCNN` that deskews each image first."

    def forward(self, x):
        return super().forward(deskew(x))


def elastic(x, g, alpha=1.5):
    "A smooth random warp: a 4x4 grid of N(0, 1) shifts, bicubic, `alpha` pixels."
    b, _, h, w = x.shape
    field = F.interpolate(torch.randn(b, 2, 4, 4, generator=g), size=(h, w),
                          mode="bicubic", align_corners=False)
    theta = torch.eye(2, 3).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    grid = grid + field.permute(0, 2, 3, 1) * alpha * 2 / w
    return F.grid_sample(x, grid, align_corners=False)


def strokes(x, g):
    "Each digit thinned (a 3x3 min) or thickened (a 3x3 max), by a random share."
    t = torch.rand(len(x), 1, 1, 1, generator=g) * 1.5 - 0.5
    thick, thin = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    return x + t.clamp(min=0) * (thick - x) + (-t).clamp(min=0) * (thin - x)


def lowres(x, g, share=0.25):
    "A `share` of the digits averaged down to 8-14 px a side, scaled back, re-inked."
    pick = torch.rand(len(x), generator=g) < share
    if pick.any():
        side = int(torch.randint(8, 15, (1,), generator=g))
        small = F.adaptive_avg_pool2d(x[pick], side)
        big = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = x.clone()
        x[pick] = big / big.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return x


def tta(model, images: torch.Tensor) -> torch.Tensor:
    "Mean probability over the image and its four one-pixel shifts."
    x = images.float().div(255)[:, None]
    views = [x] + [torch.roll(x, s, d) for s in (1, -1) for d in (2, 3)]
    with torch.inference_mode():
        return torch.stack([model(v).softmax(1) for v in views]).mean(0)


AFFINE = batches.random_affine


def augmenting(extra: list):
    "`random_affine`, then each of `extra`: what `Batches` calls for augmentation."
    def augment(x, g, **ranges):
        x = AFFINE(x, g, **ranges)
        for f in extra:
            x = f(x, g)
        return x
    return augment


def options(spec: str) -> dict:
    "'writers=10000,epochs=15' -> {'writers': '10000', 'epochs': '15'}; 'base' -> {}."
    if spec == "base":
        return {}
    return dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in spec.split(","))


def run(spec: str, sets: dict, data: MNISTData) -> dict:
    "Train the packaged recipe with the levers `spec` names; its figures."
    opts = options(spec)
    extra = []
    if "elastic" in opts:
        alpha = float(opts["elastic"] or 1.5)
        extra.append(lambda x, g: elastic(x, g, alpha))
    if "strokes" in opts:
        extra.append(strokes)
    if "lowres" in opts:
        share = float(opts["lowres"] or 0.25)
        extra.append(lambda x, g: lowres(x, g, share))
    batches.random_affine = augmenting(extra)  # Batches looks it up at each epoch
    files.ARCHITECTURES["deskewed_cnn"] = DeskewedCNN
    width = int(opts.get("width") or (32 if "wider" in opts else 16))
    BatchNormCNN.__init__.__defaults__ = (28, 10, width)
    to_fit, valid = refusal_splits(data, 10_000, 5_000)
    if "writers" in opts:
        n = int(opts["writers"] or 20_000)
        w = writer_digits(n, 7, float(opts.get("wface") or 0.5))
        to_fit = MNISTData(Split(torch.cat([w.images, to_fit.train.images]),
                                 torch.cat([w.labels, to_fit.train.labels])),
                           to_fit.test, to_fit.source)
    config = TrainConfig(recipe="accurate", seed=int(opts.get("seed") or 0),
                         arch="deskewed_cnn" if "deskew" in opts else "batchnorm_cnn",
                         epochs=int(opts.get("epochs") or 10))
    t0 = time.perf_counter()
    model = train(config, None, False, to_fit, Runtime(threads=2), False).model
    seconds = time.perf_counter() - t0
    calibrate(model, valid, None)
    model.eval()
    out = {"run": spec, "seconds": round(seconds), "load_average": os.getloadavg()[0]}
    for name, split in {"MNIST": data.test, **sets}.items():
        logits = logits_of(model, split.images)
        said = logits.argmax(1)
        out[name] = (said == split.labels).double().mean().item()
        out[name + " refused"] = (said == NOT_A_DIGIT).double().mean().item()
        out[name + " digits"] = (logits[:, :10].argmax(1) == split.labels).double().mean().item()
        out[name + " tta"] = (tta(model, split.images).argmax(1) == split.labels).double().mean().item()
    return out


def table(results: list) -> str:
    "The runs as a Markdown table: share read right (refusals wrong)."
    names = ["MNIST", "typefaces", "strokes", "low resolution", "person-like"]
    lines = ["| run | " + " | ".join(names) + " | MNIST refused | s |",
             "|---" * (len(names) + 3) + "|"]
    for r in sorted(results, key=lambda r: (r["run"] != "base", "," in r["run"])):
        cells = [f"{r[n]:.2%}" for n in names]
        lines.append(f"| {r['run']} | " + " | ".join(cells)
                     + f" | {r['MNIST refused']:.2%} | {r['seconds']} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="levers, e.g. base, writers=10000,epochs=15")
    p.add_argument("--show", action="store_true",
                   help="print the table of saved runs (and rewrite writers_results.md)")
    args = p.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if args.runs:
        data = load_mnist()
        sets = outside_sets()
        photos, labels = person_like_photos(data.test, 1000, 0)
        sets["person-like"] = Split(torch.from_numpy(np.stack(
            [mnist_image(np.asarray(p, np.float32) / 255) for p in photos])), labels)
        for spec in args.runs:
            found = run(spec, sets, data)
            print(json.dumps(found), flush=True)
            results = [r for r in results if r["run"] != spec] + [found]
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    TABLE.write_text("# Other writers: one lever at a time (benchmarks/writers.py)\n\n"
                     "Share read right, a \"not a digit\" answer counted wrong; one seed (0). "
                     "`python benchmarks/writers.py --show` rewrites this file from "
                     "writers_results.json, which also holds each set read over the ten "
                     "digits alone and with test-time augmentation.\n\n" + text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

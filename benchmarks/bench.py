"""Speed and accuracy against the tutorial's own loop, measured as ratios within one run.

Run `make bench` (or `python benchmarks/bench.py`) from the project root; it writes benchmarks/results.md
and benchmarks/results.json. Absolute seconds drift on a shared machine, so every claim is a ratio of two
timings taken in the same run, interleaved round by round, and each side is the median of its rounds.
"""
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnist_nbdev.data import Batches
from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import tutorial_loaders
from mnist_nbdev.model import TutorialCNN
from mnist_nbdev.training import TrainConfig
from mnist_nbdev.training import loss_and_accuracy
from mnist_nbdev.training import train

HERE = Path(__file__).parent
TUTORIAL_STEPS = 1500  # of the tutorial's 6,000 training steps per epoch, timed and scaled
SEEDS = (0, 1, 2)
ROUNDS = 3  # interleaved rounds of the per-epoch and evaluation timings


class TutorialModel(TutorialCNN):
    "The tutorial's forward, log_softmax included."

    def forward(self, x):
        return F.log_softmax(super().forward(x), dim=1)


def tutorial_epoch_seconds(data) -> float:
    "One epoch of the tutorial's loop, verbatim: training batches of 10 from its DataLoader, then its test pass."
    torch.manual_seed(41)
    train_loader, test_loader = tutorial_loaders(data)
    model = TutorialModel()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    trn_corr = 0
    t0 = time.perf_counter()
    for b, (X_train, y_train) in enumerate(train_loader):
        y_pred = model(X_train)
        loss = criterion(y_pred, y_train)
        predicted = torch.max(y_pred.data, 1)[1]
        batch_corr = (predicted == y_train).sum()
        trn_corr += batch_corr
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if b + 1 == TUTORIAL_STEPS:
            break
    train_seconds = (time.perf_counter() - t0) * len(train_loader) / TUTORIAL_STEPS
    t0 = time.perf_counter()
    with torch.no_grad():
        for X_test, y_test in test_loader:
            y_val = model(X_test)
            predicted = torch.max(y_val.data, 1)[1]
    return train_seconds + time.perf_counter() - t0


def tutorial_eval_seconds(model, data) -> float:
    "The tutorial's way of evaluating the 10,000 test images: its DataLoader, batches of 10."
    _, test_loader = tutorial_loaders(data)
    t0 = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for X_test, y_test in test_loader:
            y_val = model(X_test)
            predicted = torch.max(y_val.data, 1)[1]
            correct += (predicted == y_test).sum()
    return time.perf_counter() - t0


def our_eval_seconds(model, data) -> float:
    "`evaluate`'s way: batches of 1,000 from memory under inference_mode."
    t0 = time.perf_counter()
    loss_and_accuracy(model, Batches(data.test, 1000))
    return time.perf_counter() - t0


def main():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_mnist()
    rows = {}

    # Per-epoch speed, same maths: tutorial loop vs the tutorial recipe, interleaved.
    tut, ours = [], []
    for _ in range(ROUNDS):
        tut.append(tutorial_epoch_seconds(data))
        r = train(TrainConfig(recipe="tutorial", epochs=1), data=data, progress=False)
        ours.append(r.history[0]["seconds"])
    tutorial_epoch = statistics.median(tut)
    tutorial_recipe_epoch = statistics.median(ours)
    rows["tutorial_loop_epoch_s"] = tutorial_epoch
    rows["tutorial_recipe_epoch_s"] = tutorial_recipe_epoch
    rows["tutorial_recipe_speedup"] = tutorial_epoch / tutorial_recipe_epoch

    # The fast recipe: time to first reach 99.0% test accuracy, per seed.
    fast_runs = []
    for seed in SEEDS:
        r = train(TrainConfig(recipe="fast", seed=seed), data=data, progress=False)
        elapsed, reached = 0.0, None
        for h in r.history:
            elapsed += h["seconds"]
            if reached is None and h["test_accuracy"] >= 0.99:
                reached = elapsed
        fast_runs.append({"seed": seed, "accuracy": r.test_accuracy, "seconds": elapsed, "seconds_to_99": reached, "model": r.model})
        tut.append(tutorial_epoch_seconds(data))  # keep the reference current as the machine drifts
    tutorial_ten_epochs = 10 * statistics.median(tut)
    median_acc = statistics.median(r["accuracy"] for r in fast_runs)
    to_99 = [r["seconds_to_99"] for r in fast_runs if r["seconds_to_99"] is not None]
    median_to_99 = statistics.median(to_99) if len(to_99) == len(fast_runs) else None

    # Evaluation of the 10,000 test images: batched inference vs the tutorial's batch-10 loop, interleaved.
    model = fast_runs[0]["model"]
    tut_evals, our_evals = [], []
    for _ in range(ROUNDS):
        tut_evals.append(tutorial_eval_seconds(model, data))
        our_evals.append(our_eval_seconds(model, data))
    tut_eval, ours_eval = statistics.median(tut_evals), statistics.median(our_evals)

    env = f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    lines = [
        "| what | time | accuracy | ratio | target |",
        "|---|---|---|---|---|",
        f"| tutorial's own loop, one epoch (train {TUTORIAL_STEPS:,} of 6,000 steps timed and scaled, + test pass) | {tutorial_epoch:.1f} s | | 1.0 | |",
        f"| `tutorial` recipe, one epoch (same maths, batches of 10 from memory) | {tutorial_recipe_epoch:.1f} s | | {tutorial_epoch / tutorial_recipe_epoch:.1f}x faster | >= 2.5x |",
        f"| tutorial's loop, 10 epochs (median epoch x 10) | {tutorial_ten_epochs:.0f} s | 96.62% (tutorial's report) | 1.0 | |",
        f"| `fast` recipe to 99.0%, median of seeds {', '.join(map(str, SEEDS))} | "
        + (f"{median_to_99:.1f} s | {median_acc:.2%} final | {median_to_99 / tutorial_ten_epochs:.3f} of the tutorial's time | <= 0.1 |" if median_to_99 else f"not reached | {median_acc:.2%} | | <= 0.1 |"),
        f"| evaluate 10,000 test images: tutorial's batch-10 loop | {tut_eval:.2f} s | | 1.0 | |",
        f"| evaluate 10,000 test images: batches of 1,000 under inference_mode | {ours_eval:.2f} s | | {tut_eval / ours_eval:.0f}x faster | >= 10x |",
    ]
    per_seed = ", ".join(f"seed {r['seed']}: {r['accuracy']:.2%} after {r['seconds']:.1f} s (99.0% at {r['seconds_to_99'] or float('nan'):.1f} s)" for r in fast_runs)
    text = "\n".join(lines) + f"\n\nFast recipe per seed: {per_seed}.\n\nMeasured {time.strftime('%Y-%m-%d')} on {env}, CPU only.\n"
    print(text)
    (HERE / "results.md").write_text(text)
    results = {
        "tutorial_loop_epoch_s": tutorial_epoch, "tutorial_recipe_epoch_s": tutorial_recipe_epoch,
        "rounds": {"tutorial_loop_epoch_s": tut, "tutorial_recipe_epoch_s": ours, "eval_tutorial_s": tut_evals, "eval_ours_s": our_evals},
        "tutorial_recipe_speedup": tutorial_epoch / tutorial_recipe_epoch,
        "fast_median_accuracy": median_acc, "fast_median_seconds_to_99": median_to_99,
        "fast_fraction_of_tutorial_time": (median_to_99 / tutorial_ten_epochs) if median_to_99 else None,
        "fast_runs": [{k: v for k, v in r.items() if k != "model"} for r in fast_runs],
        "eval_tutorial_s": tut_eval, "eval_ours_s": ours_eval, "eval_speedup": tut_eval / ours_eval,
        "environment": env,
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    ok = results["tutorial_recipe_speedup"] >= 2.5 and median_to_99 and results["fast_fraction_of_tutorial_time"] <= 0.1 and results["eval_speedup"] >= 10
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

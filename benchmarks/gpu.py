"""Time to 99% test accuracy on a GPU, in one short run: `bash benchmarks/gpu.sh` (or `python benchmarks/gpu.py`).

What it measures, each from a fresh model, after one warm-up run that pays CUDA's and cuDNN's start-up:
the `fast` recipe as it is (float32), the same under bf16 autocast, and a large-batch variant under bf16
(batches of 512, peak lr 3e-2, 3 epochs) that suits a GPU better. Each row is the wall time from the
first step to the end of the epoch whose test accuracy first reaches 99.0%, test evaluations included,
as `train` records them (the data is on the GPU from the start: `Batches` moves it once, and shuffling
and augmentation happen there). `--device cpu --quick` runs the same code on a small subset on the CPU,
to check the script where no GPU is lent; its figures mean nothing.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from mnist_nbdev.data import load_mnist
from mnist_nbdev.training import Runtime
from mnist_nbdev.training import TrainConfig
from mnist_nbdev.training import train

HERE = Path(__file__).parent
VARIANTS = {  # name: (config fields, bf16 autocast)
    "fast, float32": ({}, False),
    "fast, bf16 autocast": ({}, True),
    "batches of 512, lr 3e-2, 3 epochs, bf16": (dict(bs=512, lr=3e-2, epochs=3), True),
}


def time_to_99(history: list) -> float | None:
    "Seconds until the first epoch whose test accuracy reaches 99.0%, or None."
    elapsed = 0.0
    for h in history:
        elapsed += h["seconds"]
        if h["test_accuracy"] >= 0.99:
            return elapsed
    return None


def run(fields: dict, bf16: bool, device: str, data, quick: bool) -> dict:
    quick_fields = dict(train_subset=2000, test_subset=500, epochs=1) if quick else {}
    config = TrainConfig(recipe="fast", **{**fields, **quick_fields})
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    # bf16 through `Runtime`, which enters autocast step by step: one autocast around the whole of
    # `train` would keep its cache of bf16 weights from the first step, and the model would not learn
    r = train(config, data=data, runtime=Runtime(device=device, bf16=bf16), progress=False)
    return {"accuracy": r.test_accuracy, "seconds": r.info["train_seconds"], "seconds_to_99": time_to_99(r.history)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="a small subset: checks the script, measures nothing")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run it where there is one (or --device cpu --quick to check it)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    data = load_mnist()
    run({}, False, args.device, data, quick=True)  # warm-up: CUDA context, cuDNN's choices
    rows = {name: run(fields, bf16, args.device, data, args.quick) for name, (fields, bf16) in VARIANTS.items()}
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or "CPU"
    lines = ["| variant | to 99.0% | whole run | final accuracy |", "|---|---|---|---|"]
    for variant, r in rows.items():
        to99 = f"{r['seconds_to_99']:.2f} s" if r["seconds_to_99"] is not None else "not reached"
        lines.append(f"| {variant} | {to99} | {r['seconds']:.2f} s | {r['accuracy']:.2%} |")
    text = "\n".join(lines) + (f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {name}, torch {torch.__version__}"
                               f"{' (--quick: a check of the script, not a measurement)' if args.quick else ''}.\n")
    print(text)
    if not args.quick:
        (HERE / "gpu_results.md").write_text(text)
        (HERE / "gpu_results.json").write_text(json.dumps({"device": name, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

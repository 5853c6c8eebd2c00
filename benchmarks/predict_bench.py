"""How long `mnist-predict` takes, as a person runs it: one photo, and 600 photos in one call.

Run from the project root (`python benchmarks/predict_bench.py`, also run by `make bench`); it writes
benchmarks/predict_results.md and prints it. Every figure is a wall time of a fresh process, so it
includes Python's start and every import. The three commands run interleaved, round by round, and
each ratio is the median over the rounds of (command / `python -c "import torch"`) in the same round,
since absolute seconds drift on a shared machine.

The photos are the evaluation page's `person_like` photos of MNIST test digits (up to 640 pixels a
side, RGB, dark ink on paper, blurred, JPEG-damaged), saved as PNG files.
"""

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from mnist_nbdev.data import load_mnist
from mnist_nbdev.evaluation import person_like_photos

HERE = Path(__file__).parent
ROUNDS = 5
N_MANY = 600


def wall_seconds(command: list) -> float:
    "Wall time of one run of `command`, which must succeed."
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - t0


def main() -> int:
    data = load_mnist()
    photos, labels = person_like_photos(data.test, n=N_MANY, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, photo in enumerate(photos):
            paths.append(str(Path(tmp) / f"digit{i:03d}.png"))
            Image.fromarray(photo).save(paths[-1])
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "one": ["mnist-predict", paths[0]],
            "many": ["mnist-predict", *paths],
        }
        times = {name: [] for name in commands}
        for _ in range(ROUNDS):
            for name, command in commands.items():
                times[name].append(wall_seconds(command))
        output = subprocess.run(["mnist-predict", *paths], capture_output=True, text=True).stdout
    read = [int(line.split()[1]) if line.split()[1].isdigit() else None
            for line in output.splitlines()]
    right = sum(r == int(t) for r, t in zip(read, labels))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    med = {name: statistics.median(t) for name, t in times.items()}
    env = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
           f"{platform.machine()}, Python {platform.python_version()}")
    text = "\n".join([
        "| what | wall time | ratio | target |",
        "|---|---|---|---|",
        f"| `python -c \"import torch\"` | {med['import torch']:.2f} s | 1.0 | |",
        f"| `mnist-predict one.png` | {med['one']:.2f} s | {ratio('one', 'import torch'):.2f} x `import torch` | <= 1.3 |",
        f"| `mnist-predict` {N_MANY} photos in one call | {med['many']:.2f} s | {ratio('many', 'one'):.2f} x one photo | <= 1.5 |",
        "",
        f"Medians over {ROUNDS} interleaved rounds; each ratio is the median of the rounds' ratios. "
        f"The {N_MANY} photos were read right: {right} of {N_MANY} ({right / N_MANY:.1%}).",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `python benchmarks/predict_bench.py` on {env}, CPU only.",
        "",
    ])
    print(text)
    (HERE / "predict_results.md").write_text(text)
    ok = ratio("one", "import torch") <= 1.3 and ratio("many", "one") <= 1.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

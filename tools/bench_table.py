"""Write the recipes' side-by-side table into nbs/index.ipynb (and so README.md) from the committed bench results.

The table lays the tutorial's loop, the fastest public peer, this package's recipes and the ensemble side by side:
what each trains, its time and accuracy, and the machine, all read from benchmarks/results.json (`bench.py`) and
benchmarks/ensemble_results.json (`ensemble.py`). It sits between two HTML comments in the index's "Measured"
section; `make bench` rewrites it after measuring, and tests/test_readme.py checks that it matches the files.
Run from the project root: `python tools/bench_table.py` (`--check`: exit 1 if the index is out of date).
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- the recipes side by side: written by tools/bench_table.py from benchmarks/*results.json -->"
END = "<!-- end of the table -->"
PEER = "https://github.com/tuomaso/train_mnist_fast"


def _fraction(seconds: float, tutorial: float) -> str:
    share = seconds / tutorial
    return f"1/{1 / share:.0f}" if share < 0.1 else f"{share:.2f}"


def table(results: dict, ensemble: dict) -> str:
    "The markdown table, with the lines that say how and where it was measured."
    ten = 10 * results["tutorial_loop_epoch_s"]
    accurate_s = statistics.median(r["seconds"] for r in results["accurate_runs"])
    fast_s = results["fast_median_seconds_to_99"]
    rows = [
        ("the tutorial's loop", "`TutorialCNN`, 10 epochs of batches of 10", f"{ten:.0f} s", "1",
         "96.62% (its report)"),
        (f"peer: [tuomaso/train_mnist_fast]({PEER})", "2 convolutions (24, 32 filters), 1 epoch of batches of 256",
         f"{results['peer_median_s']:.1f} s", _fraction(results["peer_median_s"], ten),
         f"{results['peer_median_accuracy']:.2%}"),
        ("`fast`", "`SpaceToDepthCNN`, 1 epoch of batches of 128",
         f"{fast_s:.1f} s" if fast_s else "99.0% not reached", _fraction(fast_s, ten) if fast_s else "",
         f"{results['fast_median_accuracy']:.2%}"),
        ("`accurate`", "`BatchNormCNN`, 10 epochs of augmented batches of 128", f"{accurate_s:.0f} s",
         f"{results['accurate_median_ratio_to_tutorial_10_epochs']:.2f}", f"{results['accurate_median_accuracy']:.2%}"),
        ("`ensemble`", f"{ensemble['members']} networks as `accurate`, on 55,000 digits, averaged",
         f"{ensemble['seconds']:.0f} s", f"{ensemble['ratio_to_tutorial_10_epochs']:.2f}",
         f"{ensemble['test_accuracy']:.2%}"),
    ]
    lines = ["| recipe | what it trains | time | of the tutorial loop's | test accuracy |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    quiet = results.get("quiet") and ensemble.get("quiet")
    speedup = results["fast_speedup_over_peer"]["median"]
    lines += [
        "",
        f"Training and one pass over the test set, on one machine: {results['environment']}, CPU only, "
        + ("a quiet run" if quiet else "**not a quiet run** (see the results files)") + ". "
        f"Medians of seeds 0-4 (the peer; `fast`, timed to its first 99.0%, {speedup:.1f}x faster than the peer's "
        "run in the same rounds) and of seeds 0-2 (`accurate`); the ensemble is one run, each ratio against "
        "the tutorial's epochs timed in the same run. Published for comparison: the peer's 99.04% (mean of 30 "
        "runs); a single CNN with augmentation 99.64% and 15 of them averaged 99.75% (Chris Deotte's Kaggle "
        "study of MNIST CNNs).",
    ]
    return "\n".join(lines)


def _index_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown" and START in "".join(c["source"])]
    if len(cells) != 1:
        raise SystemExit(f"nbs/index.ipynb: expected one markdown cell holding {START!r}, found {len(cells)}")
    return cells[0]


def updated_source(source: str, new_table: str) -> str:
    before, rest = source.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{new_table}\n{END}{after}"


def main(check: bool = False) -> int:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    ensemble = json.loads((ROOT / "benchmarks" / "ensemble_results.json").read_text())
    path = ROOT / "nbs" / "index.ipynb"
    nb = json.loads(path.read_text())
    cell = _index_cell(nb)
    source = "".join(cell["source"])
    new = updated_source(source, table(results, ensemble))
    if check:
        if new != source:
            print("nbs/index.ipynb: the recipes' table differs from benchmarks/*results.json; run "
                  "python tools/bench_table.py", file=sys.stderr)
            return 1
        return 0
    lines = new.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))

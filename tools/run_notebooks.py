"""Execute notebooks in place, as a person would, so their saved outputs come from a real run.

    python tools/run_notebooks.py nbs/01_model.ipynb nbs/02_training.ipynb

Cells marked `#| eval: false` are skipped, as nbdev and Quarto skip them (nbconvert alone would run
them: the multi-machine torchrun example would then wait for peers that never come). Run from the
project root with the data reachable (MNIST_NBDEV_DATA), then `make sync` to export and clean.
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SKIP = re.compile(r"^#\|\s*eval:\s*false\s*$", re.MULTILINE)


def drop_widgets(nb) -> int:
    "Remove widget outputs (tqdm's progress bars): saved, they show a frozen '0%' forever."
    dropped = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            kept = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
            dropped += len(cell.outputs) - len(kept)
            cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return dropped


def run(path: Path, timeout: int) -> None:
    # The kernel inherits this environment; MPLBACKEND=Agg (as .ci/run sets it) would replace
    # Jupyter's inline backend, and the saved pages would have no plots.
    os.environ.pop("MPLBACKEND", None)
    nb = nbformat.read(path, as_version=4)
    skipped = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and SKIP.search(cell.source):
            skipped[i] = cell.source
            cell.source = ""  # runs as an empty cell, keeps the numbering
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for i, source in skipped.items():
        nb.cells[i].source, nb.cells[i].outputs, nb.cells[i].execution_count = source, [], None
    drop_widgets(nb)
    nbformat.write(nb, path)
    print(f"{path}: ran in {time.perf_counter() - t0:.0f} s, skipped {len(skipped)} eval: false cell(s)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run (default 1800)")
    args = p.parse_args()
    for path in args.notebooks:
        run(path, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

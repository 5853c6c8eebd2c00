"""The README (and the docs' home page) shows figures of the committed benchmark run, not older ones."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_table():
    "tools/bench_table.py, loaded from its file (tools/ is not a package)."
    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "tools" / "bench_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_committed_benchmark():
    "The Measured section's table is what tools/bench_table.py makes of the committed results files."
    tool = bench_table()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    ensemble = json.loads((ROOT / "benchmarks" / "ensemble_results.json").read_text())
    expected = tool.table(results, ensemble)
    readme = (ROOT / "README.md").read_text()
    measured = readme.split("## Measured", 1)[1]
    assert f"{tool.START}\n{expected}\n{tool.END}" in measured, "run python tools/bench_table.py, then make readme"
    assert tool.main(check=True) == 0  # and the notebook it is written from
    assert "benchmarks/results.md" in measured  # and link to the whole run


def test_table_lays_the_recipes_side_by_side():
    tool = bench_table()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    ensemble = json.loads((ROOT / "benchmarks" / "ensemble_results.json").read_text())
    rows = [line for line in tool.table(results, ensemble).splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0] for row in rows[1:]]
    assert names == ["| the tutorial's loop", f"| peer: [tuomaso/train_mnist_fast]({tool.PEER})", "| `fast`",
                     "| `accurate`", "| `ensemble`"]
    assert results["environment"] in tool.table(results, ensemble)  # the machine

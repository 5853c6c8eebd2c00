"""The README shows the benchmark's committed figures, not older ones."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> list[str]:
    "The lines of the benchmark table (those starting with '|')."
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_readme_shows_the_committed_benchmark():
    results = (ROOT / "benchmarks" / "results.md").read_text()
    readme = (ROOT / "README.md").read_text()
    rows = table_rows(results)
    assert len(rows) >= 6, "benchmarks/results.md has no table"
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README.md (from nbs/index.ipynb) lacks these rows of benchmarks/results.md: {missing}"
    per_seed = next(line for line in results.splitlines() if line.startswith("Fast recipe per seed"))
    assert per_seed in readme

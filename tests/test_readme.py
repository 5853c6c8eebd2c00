"""The README (and the docs' home page) shows figures of the committed benchmark run, not older ones."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> list[str]:
    "The lines of the tables in a Markdown text (those starting with '|')."
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_readme_shows_the_committed_benchmark():
    results = (ROOT / "benchmarks" / "results.md").read_text()
    readme = (ROOT / "README.md").read_text()
    measured = readme.split("## Measured", 1)[1]
    shown = table_rows(measured)
    assert len(shown) >= 4, "README.md's Measured section has no table"
    stale = [row for row in shown if row not in table_rows(results)]
    assert not stale, f"README.md shows rows that are not in benchmarks/results.md: {stale}"
    for key in ("| `fast` recipe to 99.0%", "| `accurate` recipe, default seed 0", "| tutorial's loop, 10"):
        assert any(row.startswith(key) for row in shown), f"README.md's highlights lack {key!r}"
    assert "benchmarks/results.md" in measured  # and link to the whole run

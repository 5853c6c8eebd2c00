"""Write README.md from nbs/index.ipynb, as nbdev_readme would without Quarto.

Markdown cells are copied; code cells become fenced Python with their text output, minus nbdev's
directive lines; cells marked `#| hide` are left out. Run from the project root: `make readme`.
"""
import json
import sys
from pathlib import Path


def _directives(source: str) -> set[str]:
    return {line[3:].strip().split()[0] for line in source.splitlines() if line.startswith("#| ") and line[3:].strip()}


def _text_outputs(cell) -> str:
    texts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            texts.append("".join(out["text"]))
        elif "data" in out and "text/plain" in out["data"] and "image/png" not in out["data"]:
            texts.append("".join(out["data"]["text/plain"]))
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)


def readme(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            parts.append(source.strip() + "\n")
            continue
        if {"hide", "default_exp", "exporti"} & _directives(source):
            continue
        code = "\n".join(line for line in source.splitlines() if not line.startswith("#| ")).strip()
        if not code:
            continue
        parts.append(f"```python\n{code}\n```\n")
        output = _text_outputs(cell)
        if output:
            parts.append(f"```\n{output}```\n")
    header = "<!-- Written from nbs/index.ipynb by `make readme`; edit the notebook, not this file. -->\n\n"
    return header + "\n".join(parts)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    (root / "README.md").write_text(readme(root / "nbs" / "index.ipynb"))

"""Build the docs site into _docs/, offline: nbdev's own processing, then Quarto if it is on PATH, else smalldocs.

This is what `nbdev_docs` does before it calls Quarto (refresh the Quarto config, build the module index
and the sidebar, process the notebooks into _proc/ with the API reference rendered), without its attempt to
install Quarto. The same _quarto.yml drives either renderer. Run from the project root: `make docs`.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbdev.doclinks
from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar
from nbdev.quarto import proc_nbs
from nbdev.quarto import refresh_quarto_yml


def name_pages_like_quarto(proc: Path) -> None:
    """Rename each processed notebook to its `output-file` (00_data.ipynb -> data.ipynb), as Quarto names pages.

    nbdev's links from names to their reference entries point to those page names (data.html#load_mnist);
    smalldocs names a page after its file, so the files take the names Quarto would give the pages."""
    sidebar = proc / "sidebar.yml"
    text = sidebar.read_text()
    for nb in sorted(proc.glob("*.ipynb")):
        front = "".join(json.loads(nb.read_text())["cells"][0]["source"])
        match = re.search(r"^output-file:\s*(\S+)\.html\s*$", front, re.M)
        if match:
            data = json.loads(nb.read_text())
            data["cells"][0]["source"] = front.replace(match.group(0) + "\n", "")  # the file's name now says it
            nb.unlink()
            (proc / f"{match.group(1)}.ipynb").write_text(json.dumps(data))
            text = re.sub(rf"\b{re.escape(nb.name)}\b", f"{match.group(1)}.ipynb", text)
    sidebar.write_text(text)


ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def build_draw_page(out: Path) -> None:
    """The draw-a-digit page of the docs site, in out/draw/: mnist-serve's page (mnist_nbdev/static/) with
    a second back end, web/onnx-backend.js, that reads the digit in the browser with onnxruntime-web (npm,
    pinned in web/package.json) and the packaged model exported to ONNX. Nothing is committed or fetched at
    view time: the runtime and the model are made here."""
    from mnist_nbdev.export import export_onnx
    from mnist_nbdev.files import load_model

    root, draw = Path(__file__).resolve().parents[1], out / "draw"
    web, static = root / "web", root / "mnist_nbdev" / "static"
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed for the docs' draw page (Debian: apt-get install npm)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=web, check=True)
    draw.mkdir(parents=True, exist_ok=True)
    for name in ORT_FILES:
        shutil.copy(web / "node_modules" / "onnxruntime-web" / "dist" / name, draw / name)
    model = load_model()
    backend = (web / "onnx-backend.js").read_text()  # with the model's own refusal threshold
    refuse_at = f"const REFUSE_AT = {model.info.get('refuse_at', 0.5)!r};"
    (draw / "onnx-backend.js").write_text(re.sub(r"^const REFUSE_AT = [^;]*;", refuse_at, backend, flags=re.M))
    for name in ("draw.css", "draw.js"):
        shutil.copy(static / name, draw / name)
    page = (static / "draw.html").read_text()
    scripts = '<script src="ort.wasm.min.js"></script>\n<script src="onnx-backend.js"></script>\n'
    (draw / "index.html").write_text(page.replace('<script src="draw.js">', scripts + '<script src="draw.js">'))
    export_onnx(model, draw / "model.onnx")


def main() -> int:
    cfg = get_config()
    refresh_quarto_yml()  # writes nbs/nbdev.yml; keeps our _quarto.yml
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    proc = proc_nbs(cfg.nbs_path, n_workers=2, force=True)
    built = proc / cfg.doc_path.name
    out = cfg.config_path / cfg.doc_path.name
    if shutil.which("quarto"):
        subprocess.run(["quarto", "render", "--no-cache"], cwd=proc, check=True)
    else:
        name_pages_like_quarto(proc)
        subprocess.run(["smalldocs", "render", "--quiet", str(proc)], check=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(built), str(out))
    build_draw_page(out)
    # nbdev writes its links from names to reference entries as absolute URLs of the published site;
    # make them relative, so that the site works wherever it is served, this machine included.
    published = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip("/") + "/"
    for page in out.rglob("*.html"):
        page.write_text(page.read_text().replace(published, ""))
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    print(f"{len(pages)} pages in {out}: {', '.join(pages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

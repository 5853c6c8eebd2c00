"""The built wheel, installed as a user would: a fresh venv, the repository not on the path."""
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from PIL import ImageOps

from mnist_nbdev.data import load_mnist

REPO = Path(__file__).resolve().parents[1]
SEVEN = 4142  # index of a 7 in the MNIST test set


def run(cmd: list, timeout: float, cwd: Path | None = None, **env: str) -> str:
    "Run `cmd` as a user would, plus `env`; its stdout, or a failure showing its output."
    cmd = [str(c) for c in cmd]
    # no PYTHONPATH: it could point back into the repository
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}", pytrace=False)
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    "The wheel, built from a copy of the working tree so the repo gets no build/ or egg-info."
    tmp = tmp_path_factory.mktemp("wheel")
    listed = run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard", "-z"], 60)
    for name in listed.split("\0"):
        if name and (REPO / name).is_file():  # skips tracked files deleted in the tree
            (tmp / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp / "src" / name)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist", tmp / "src"], 600)
    (path,) = (tmp / "dist").glob("*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    "A fresh venv holding the wheel; torch and the rest come from the system's packages."
    env = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", env], 120)
    python = env / "bin" / "python"
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], 120)
    # Not `venv --system-site-packages`: that runs the system's .pth files, and the one an
    # editable install of this repo leaves (`__editable__.mnist_nbdev-*.pth`) appends a
    # finder that serves any mnist_nbdev module missing from the wheel out of the repo,
    # so a module left out of the package would still import. A folder named in a .pth
    # goes on sys.path after the venv's own, and the .pth files inside it are not run.
    # Written after pip runs, so pip never sees (nor offers to uninstall) the system's copy.
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = Path(run([python, "-c", purelib], 60).strip())
    (own / "system_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


def test_wheel_installs_with_its_pretrained_model(wheel, venv, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packaged = [f"mnist_nbdev/pretrained/{name}" for name in ("model.safetensors", "model.json")]
    packaged += [f"mnist_nbdev/static/{name}" for name in ("draw.html", "draw.css", "draw.js")]
    packaged.append("mnist_nbdev/typefaces.npz")  # the writers page's glyphs, which training uses
    for name in packaged:  # the packaged model, the draw page that mnist-serve serves, glyphs
        assert name in names, f"{name} is not in {wheel.name}: {names}"
    licence = [n for n in names if ".dist-info/" in n and n.endswith("LICENSE")]
    assert licence, f"no LICENSE in {wheel.name}'s metadata: {names}"
    code = "import mnist_nbdev; print(mnist_nbdev.__file__)"
    where = Path(run([venv / "bin" / "python", "-c", code], 60, cwd=tmp_path).strip())
    assert where.is_relative_to(venv), f"mnist_nbdev imported from {where}, not {venv}"


def test_installed_commands_read_a_digit_and_the_test_set(venv, tmp_path, mnist_dir):
    digit = Image.fromarray(load_mnist(mnist_dir).test.images[SEVEN].numpy())
    digit.save(tmp_path / "seven.png")
    photo = ImageOps.invert(digit).resize((200, 200), Image.Resampling.BICUBIC)
    photo.save(tmp_path / "seven_photo.png")  # dark ink on white, as people write
    for name in ("seven.png", "seven_photo.png"):
        cmd = [venv / "bin" / "mnist-predict", tmp_path / name, "--json"]
        (result,) = json.loads(run(cmd, 120, cwd=tmp_path))
        assert result.get("label") == 7, f"{name} read as {result}"

    cmd = [venv / "bin" / "mnist-evaluate", "--json"]
    report = json.loads(run(cmd, 300, cwd=tmp_path, MNIST_NBDEV_DATA=str(mnist_dir)))
    assert report["accuracy"] > 0.98, f"test accuracy {report['accuracy']:.2%}"

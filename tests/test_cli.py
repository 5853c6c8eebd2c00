"""The commands' output as a shell sees it: a closed stdout, a reader that leaves early, a full disk,
file names that are not UTF-8; and mnist-export and mnist-serve refusing what they cannot do."""
import json
import os
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from mnist_nbdev.data import load_mnist

SEVEN = 4142  # a 7 in the MNIST test set
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as in a shell


@pytest.fixture(scope="module")
def seven(tmp_path_factory, mnist_dir) -> Path:
    path = tmp_path_factory.mktemp("images") / "seven.png"
    Image.fromarray(load_mnist(mnist_dir).test.images[SEVEN].numpy()).save(path)
    return path


def assert_one_line(stderr: str, says: str) -> None:
    assert says in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


@pytest.mark.parametrize("command", ["mnist-predict", "mnist-evaluate", "mnist-export", "mnist-train"])
def test_closed_stdout_is_an_error_before_any_work(command, seven, tmp_path):
    "`>&-`: Python starts with no sys.stdout, and print() writes nothing; the results would be lost with 0."
    argv = {"mnist-predict": [str(seven)], "mnist-evaluate": ["--json"],
            "mnist-export": ["--out", str(tmp_path / "m.onnx")],
            "mnist-train": ["--epochs", "1", "--train-subset", "500", "--out", str(tmp_path / "m")]}[command]
    result = subprocess.run(["sh", "-c", '"$@" >&-', "sh", command, *argv], capture_output=True, text=True,
                            timeout=120, env=ENV)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"{command}: error: standard output is closed")
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_reader_that_leaves_early_is_an_error(seven):
    "`mnist-predict x.png | head -0`: the write fails at exit, where Python said 'Exception ignored', status 120."
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes
    try:
        result = subprocess.run(["mnist-predict", str(seven)], stdout=write, stderr=subprocess.PIPE, text=True,
                                timeout=120, env=ENV)
    finally:
        os.close(write)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, "mnist-predict: error: standard output: Broken pipe: the results were not all written")


def test_full_disk_is_an_error(seven):
    with open("/dev/full", "w") as full:
        result = subprocess.run(["mnist-predict", str(seven)], stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=120, env=ENV)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, "standard output: No space left on device")


@pytest.fixture
def odd_names(seven, tmp_path) -> list:
    "A readable image and a missing one, each named with a byte (0xff) that is not UTF-8."
    odd = os.fsencode(tmp_path) + b"/sev\xffen.png"
    Path(os.fsdecode(odd)).write_bytes(seven.read_bytes())
    return [odd, os.fsencode(tmp_path) + b"/gone\xfe.png"]


def test_json_output_is_utf8_for_names_that_are_not(odd_names):
    result = subprocess.run(["mnist-predict", "--json", *odd_names], capture_output=True, timeout=120)
    assert result.returncode == 1  # one file is missing
    rows = json.loads(result.stdout.decode("utf-8"))  # strict UTF-8
    for row in rows:
        row["path"].encode("utf-8")  # no lone surrogate (json.loads gives one for "\udcff")
    assert rows[0]["path"].endswith("/sev\\xffen.png") and rows[0]["label"] == 7
    assert rows[1]["path"].endswith("/gone\\xfe.png") and "no such file" in rows[1]["error"]


def test_plain_output_is_utf8_for_names_that_are_not(odd_names):
    result = subprocess.run(["mnist-predict", *odd_names], capture_output=True, timeout=120)
    lines = result.stdout.decode("utf-8").splitlines()  # strict UTF-8: no raw 0xff byte
    assert "/sev\\xffen.png  7  " in lines[0], lines
    assert "/gone\\xfe.png  error: no such file" in lines[1], lines


def test_export_force_over_a_folder_says_what_force_does(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    result = subprocess.run(["mnist-export", "--out", str(folder), "--force"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert_one_line(result.stderr, f"{folder}: is a folder; --out names the ONNX file to write, "
                                   "and --force replaces a file, not a folder")
    assert "give --force" not in result.stderr
    assert not list(folder.iterdir())


@pytest.fixture
def taken_port():
    "A port in use on every interface, as by another server."
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def test_serve_on_a_port_in_use_exits_1_naming_it(taken_port):
    pytest.importorskip("uvicorn")
    result = subprocess.run(["mnist-serve", "--port", str(taken_port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # uvicorn's own exit status was 3
    assert_one_line(result.stderr, f"mnist-serve: error: cannot listen on 127.0.0.1:{taken_port}: "
                                   "Address already in use")  # and no warning: loopback


def test_serve_on_every_interface_warns_that_anyone_can_use_it(tmp_path):
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["mnist-serve", "--host", "0.0.0.0", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stderr, selectors.EVENT_READ)
            while not any("Uvicorn running on" in line for line in lines):  # the server is up
                left = deadline - time.monotonic()
                assert left > 0 and selector.select(left), f"the server did not start: {lines}"
                line = proc.stderr.readline()
                assert line, f"the server ended: {lines}"
                lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    warning = [line for line in lines if line.startswith("mnist-serve: warning:")]
    assert warning and "reachable from other machines" in warning[0] and "no authentication" in warning[0], lines

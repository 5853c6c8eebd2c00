"""The prediction API and the ONNX export: every answer of the API in-process (FastAPI's
TestClient), the draw page's files as the package ships them, the ONNX file against
torch on all 10,000 test images, and a real server driven by headless Chromium: draw a 7
on the page's canvas and read it back. Needs the [serve] and [export] extras, selenium,
and Debian's chromium and chromium-driver (`make browser`)."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from PIL import ImageDraw

from mnist_nbdev.data import load_mnist
from mnist_nbdev.data import to_pixels
from mnist_nbdev.export import export_onnx
from mnist_nbdev.export import onnx_parity
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import NO_INK
from mnist_nbdev.prediction import as_photo
from mnist_nbdev.prediction import mnist_image
from mnist_nbdev.prediction import open_image
from mnist_nbdev.prediction import predict
from mnist_nbdev.prediction import read_pixels
from mnist_nbdev.serving import MAX_BODY
from mnist_nbdev.serving import MAX_FILES
from mnist_nbdev.serving import NO_FILES
from mnist_nbdev.serving import NOT_A_FILE
from mnist_nbdev.serving import PAGE_FILES
from mnist_nbdev.serving import PAGE_HEADERS
from mnist_nbdev.serving import make_app
from mnist_nbdev.serving import static_file

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "nbs" / "images" / "serving.png"


def run_python(script: str, cwd: Path) -> subprocess.CompletedProcess:
    "Run `script` in a fresh Python process in `cwd`; its output."
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def server_command(port: int) -> list[str]:
    "The command that runs the server on 127.0.0.1:`port`."
    return ["mnist-serve", "--port", str(port)]


def png(img: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=format, **options)
    return buffer.getvalue()


def drawing(strokes: list, side: int = 280) -> bytes:
    "PNG of black strokes on white, as the page's canvas sends it."
    img = Image.new("RGB", (side, side), "white")
    pen = ImageDraw.Draw(img)
    for points in strokes:
        pen.line(points, fill="black", width=side // 14, joint="curve")
    return png(img)


SEVEN = drawing([[(60, 50), (220, 50), (130, 240)]])
ONE = drawing([[(140, 30), (140, 250)]])


def upload(name: str, data: bytes, kind: str = "image/png") -> tuple:
    return ("files", (name, data, kind))


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def client(model):
    from fastapi.testclient import TestClient

    return TestClient(make_app(model), raise_server_exceptions=False)


# --- the API, in-process --------------------------------------------------------------


def test_one_drawing(client):
    reply = client.post("/predict", files=[upload("seven.png", SEVEN)])
    assert reply.status_code == 200
    (answer,) = reply.json()
    assert list(answer) == ["name", "label", "confidence", "probabilities", "image"]
    assert len(answer["image"]) == 28 and {len(row) for row in answer["image"]} == {28}
    assert (answer["name"], answer["label"]) == ("seven.png", 7)
    assert len(answer["probabilities"]) == 10  # the digits'; the rest is "not a digit"
    assert 0.99 < sum(answer["probabilities"]) <= 1 + 1e-5
    assert answer["confidence"] == max(answer["probabilities"])


def test_many_files_in_order_with_broken_ones_answered_alone(client):
    blank = drawing([])
    files = [
        upload("one.png", ONE),
        upload("notes.txt", b"not an image", "text/plain"),
        upload("seven.png", SEVEN),
        upload("empty.png", b""),
        upload("blank.png", blank),
        upload("cut.png", SEVEN[: len(SEVEN) // 2]),
    ]
    reply = client.post("/predict", files=files)
    assert reply.status_code == 200
    answers = reply.json()
    assert [a["name"] for a in answers] == [f[1][0] for f in files]
    assert [a.get("label") for a in answers] == [1, None, 7, None, None, None]
    assert answers[1] == {
        "name": "notes.txt",
        "error": "notes.txt: not an image in a format read here (PNG, JPEG, GIF, BMP, TIFF, WEBP, PPM)",
    }
    assert answers[3] == {"name": "empty.png", "error": "empty.png: empty file"}
    assert answers[4] == {
        "name": "blank.png",
        "label": None,
        "confidence": None,
        "probabilities": None,
        "image": None,
        "reason": NO_INK,  # the page shows it
    }  # read, but no digit in it
    assert answers[5]["error"].startswith("cut.png: ")


def test_answers_agree_with_predict_on_the_same_bytes(client, model):
    test = load_mnist().test
    files = [upload("seven.png", SEVEN), upload("one.png", ONE)]
    for i in range(8):  # photos of test digits, as a phone would store them
        files.append(
            upload(
                f"photo{i}.jpg",
                png(as_photo(test.images[i].numpy(), seed=i), "JPEG", quality=85),
                "image/jpeg",
            )
        )
    answers = client.post("/predict", files=files).json()
    for (_, (name, data, _)), answer in zip(files, answers):
        expected = predict(open_image(data, name=name), model).to_dict()
        read = mnist_image(read_pixels(data, name))  # what the model read
        assert answer == {"name": name, **expected, "image": read.tolist()}
    labels = [a["label"] for a in answers[2:]]
    assert labels == test.labels[:8].tolist()


@pytest.mark.parametrize(
    "request_kw, detail",
    [
        ({}, NO_FILES),  # nothing at all
        ({"files": [("images", ("seven.png", SEVEN, "image/png"))]}, NO_FILES),  # the wrong field name
        ({"data": {"files": "seven.png"}}, NOT_A_FILE),  # a text field, not a file
        ({"json": {"files": ["seven.png"]}}, NO_FILES),
        ({"content": b"seven", "headers": {"content-type": "text/plain"}}, NO_FILES),
    ],
    ids=["empty", "wrong-field", "text-field", "json", "plain-text"],
)
def test_no_files_is_422_with_a_message(client, request_kw, detail):
    reply = client.post("/predict", **request_kw)
    assert reply.status_code == 422
    assert reply.json() == {"detail": detail}


def test_too_many_files_is_422(client):
    reply = client.post(
        "/predict", files=[upload(f"{i}.png", ONE) for i in range(MAX_FILES + 1)]
    )
    assert reply.status_code == 422
    assert f"at most {MAX_FILES} images" in reply.json()["detail"]


def test_a_body_over_10_mb_is_413_declared_or_not(client):
    big = upload("big.png", b"\0" * MAX_BODY)  # with the form's framing: over the limit
    reply = client.post("/predict", files=[big])
    assert (reply.status_code, reply.json()) == (
        413,
        {"detail": "request body over 10 MB"},
    )

    def chunked():  # no Content-Length: the size shows only while reading
        for _ in range(11):
            yield b"x" * 2**20

    reply = client.post(
        "/predict",
        content=chunked(),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert reply.status_code == 413
    reply = client.post(
        "/predict", content=b"x", headers={"content-length": str(MAX_BODY + 1)}
    )
    assert reply.status_code == 413
    almost = upload("fine.png", SEVEN + b"\0" * (MAX_BODY - len(SEVEN) - 1000))
    assert client.post("/predict", files=[almost]).status_code == 200  # under it: read


def garbage() -> dict:
    "Requests that are wrong in every way we could think of, by name."
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    form = "multipart/form-data; boundary=b"
    frames = [Image.new("L", (40, 40), v) for v in (0, 255)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    huge = png(Image.new("1", (9000, 9000), 1))  # small file, 81 million pixels
    return {
        "random-bytes-as-form": {"content": noise, "headers": {"content-type": form}},
        "form-without-boundary": {
            "content": b"--b\r\n",
            "headers": {"content-type": "multipart/form-data"},
        },
        "truncated-form": {
            "content": b'--b\r\nContent-Disposition: form-data; name="files"; '
            b'filename="a.png"\r\n\r\n\x89PNG',
            "headers": {"content-type": form},
        },
        "bad-header-in-form": {
            "content": b"--b\r\n\xff\xfe\r\n\r\nx\r\n--b--\r\n",
            "headers": {"content-type": form},
        },
        "random-bytes-as-file": {"files": [upload("noise.png", noise)]},
        "huge-image": {"files": [upload("huge.png", huge)]},
        "one-pixel": {"files": [upload("dot.png", png(Image.new("L", (1, 1), 255)))]},
        "thin-line": {"files": [upload("line.png", png(Image.new("L", (1000, 1), 0)))]},
        "animated-gif": {"files": [upload("anim.gif", gif.getvalue(), "image/gif")]},
        "16-bit": {
            "files": [
                upload(
                    "deep.png",
                    png(
                        Image.fromarray(
                            rng.integers(0, 65535, (50, 50), dtype=np.uint16)
                        )
                    ),
                )
            ]
        },
        "cmyk-jpeg": {
            "files": [upload("cmyk.jpg", png(Image.new("CMYK", (60, 60)), "JPEG"))]
        },
        "no-filename": {"files": [("files", ("", SEVEN, "image/png"))]},
        "odd-filename": {"files": [upload("../../etc/passwd\u202e.png", SEVEN)]},
        "empty-file": {"files": [upload("empty.png", b"")]},
        "utf8-junk": {
            "content": "é".encode() * 100,
            "headers": {"content-type": "text/html"},
        },
        "json-junk": {"content": b"{", "headers": {"content-type": "application/json"}},
        "wrong-method": {"method": "PUT"},
    }


@pytest.mark.parametrize("name", list(garbage()))
def test_bad_input_never_gives_500(client, name):
    kw = dict(garbage()[name])
    method = kw.pop("method", "POST")
    reply = client.request(method, "/predict", **kw)
    assert reply.status_code in (200, 400, 405, 413, 422), (
        reply.status_code,
        reply.text,
    )
    assert isinstance(reply.json(), (list, dict))
    if reply.status_code == 200:
        for answer in reply.json():
            assert "error" in answer or "label" in answer, answer


def test_huge_image_error_names_the_pixel_cap(client):
    reply = client.post("/predict", files=garbage()["huge-image"]["files"])
    assert "81 million pixels" in reply.json()[0]["error"]


def test_health_page_and_no_cdn_docs(client, model):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "model": f"{model.info['arch']}, {model.info['recipe']} recipe",
        "test_accuracy": model.info["test_accuracy"],
    }
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith(
        "text/html"
    )
    assert 'id="prediction"' in page.text and "<canvas" in page.text
    assert "://" not in page.text  # nothing loaded from elsewhere
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_page_files_are_packaged_and_served_as_they_are(client):
    static = ROOT / "mnist_nbdev" / "static"
    names = sorted(name for name, _ in PAGE_FILES.values())
    assert sorted(p.name for p in static.iterdir()) == names
    for address, (name, media_type) in PAGE_FILES.items():
        reply = client.get(address)
        assert reply.status_code == 200, address
        assert reply.text == static_file(name) == (static / name).read_text()
        assert reply.headers["content-type"].startswith(media_type)
        for header, value in PAGE_HEADERS.items():
            assert reply.headers[header] == value
        assert "://" not in reply.text  # nothing loaded from elsewhere
    html = static_file("draw.html")
    assert 'href="draw.css"' in html and 'src="draw.js"' in html
    assert html.count("<script") == 1 and "<style" not in html  # no inline code: CSP
    assert "default-src 'self'" in PAGE_HEADERS["Content-Security-Policy"]
    # shipped in the wheel and the sdist
    assert '"static/*"' in (ROOT / "setup.py").read_text()
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "recursive-include mnist_nbdev/static *" in manifest


def test_concurrent_requests_in_process(client):
    "Many threads at once on the one shared model: every answer right."
    answers = [None] * 16

    def ask(i):
        data, label = (SEVEN, 7) if i % 2 else (ONE, 1)
        reply = client.post("/predict", files=[upload(f"{i}.png", data)])
        answers[i] = (reply.status_code, reply.json()[0]["label"], label)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(a is not None and a[0] == 200 and a[1] == a[2] for a in answers), answers


# --- without the extras ---------------------------------------------------------------


def test_import_works_without_the_extras_and_says_which_to_install(tmp_path):
    script = textwrap.dedent("""
        import sys
        BLOCKED = ("fastapi", "uvicorn", "python_multipart",
                   "onnx", "onnxscript", "onnxruntime")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import mnist_nbdev.export as export
        import mnist_nbdev.serving as serving
        from mnist_nbdev.files import load_model
        for f in (lambda: serving.make_app(), lambda: serving.serve(port=1),
                  lambda: export.export_onnx(load_model(), "m.onnx")):
            try:
                f()
            except export.MissingExtra as e:
                print(e)
    """)
    out = run_python(script, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        'fastapi is not installed; pip install "mnist_nbdev[serve]" adds it',
        'uvicorn is not installed; pip install "mnist_nbdev[serve]" adds it',
        'onnxscript is not installed; pip install "mnist_nbdev[export]" adds it',
    ]
    assert not (tmp_path / "m.onnx").exists()


# --- ONNX -----------------------------------------------------------------------------


def test_onnx_agrees_with_torch_on_all_10000_test_images(model, tmp_path):
    path = export_onnx(model, tmp_path / "model.onnx")
    assert sorted(os.listdir(tmp_path)) == [
        "model.onnx"
    ]  # one file, no temporaries left
    pixels = to_pixels(load_mnist().test.images)
    parity = onnx_parity(path, model, pixels)
    assert parity["images"] == 10_000
    assert parity["label_agreement"] == 1.0
    assert parity["max_abs_diff"] < 1e-4, parity


def test_onnx_file_runs_without_torch(model, tmp_path):
    "onnxruntime and numpy alone, in a process where torch cannot be imported."
    path = export_onnx(model, tmp_path / "model.onnx", opset=20)
    test = load_mnist().test
    np.save(tmp_path / "x.npy", to_pixels(test.images[:2000]).numpy())
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "mnist_nbdev"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        import onnxruntime as ort
        session = ort.InferenceSession("model.onnx")
        x = np.load("x.npy")
        for n in (1, 7, len(x)):  # any batch size
            np.save(f"y{n}.npy", session.run(["logits"], {"pixels": x[:n]})[0])
    """)
    out = run_python(script, tmp_path)
    assert out.returncode == 0, out.stderr
    with torch.inference_mode():
        expected = model(to_pixels(test.images[:2000])).numpy()
    for n in (1, 7, 2000):
        got = np.load(tmp_path / f"y{n}.npy")
        assert got.shape == (n, load_model().info["model_args"]["n_classes"])
        assert np.abs(got - expected[:n]).max() < 1e-4
    assert (expected.argmax(1) == test.labels[:2000].numpy()).mean() > 0.98


def test_export_refuses_an_old_opset(model, tmp_path):
    with pytest.raises(ValueError, match="opset must be 18 or later"):
        export_onnx(model, tmp_path / "m.onnx", opset=17)
    assert not (tmp_path / "m.onnx").exists()


# --- a real server, and the page in a browser -----------------------------------------


def test_no_format_that_runs_another_program_is_opened(client, tmp_path, monkeypatch):
    "EPS and PDF are read by Ghostscript wherever it is installed; an upload never reaches it."
    marker = tmp_path / "gs-ran"
    gs = tmp_path / "bin" / "gs"
    gs.parent.mkdir()
    gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gs.parent}:{os.environ['PATH']}")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\nshowpage\n"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    reply = client.post("/predict", files=[upload("up.eps", eps, "application/postscript"),
                                           upload("up.pdf", pdf, "application/pdf"),
                                           upload("seven.png", SEVEN)])
    answers = reply.json()
    assert [a.get("error", "")[:37] for a in answers[:2]] == [
        "up.eps: not an image in a format read", "up.pdf: not an image in a format read"]
    assert answers[2]["label"] == 7
    (tmp_path / "up.eps").write_bytes(eps)
    (tmp_path / "seven.png").write_bytes(SEVEN)
    result = subprocess.run(["mnist-predict", "up.eps", "seven.png"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "up.eps: not an image in a format read here" in result.stderr
    assert "seven.png  7" in result.stdout
    assert not marker.exists()  # Ghostscript never ran


def test_a_request_decodes_at_most_its_pixel_budget(client):
    "Two of the largest images fit one request's budget; the third is refused by name."
    from mnist_nbdev.prediction import MAX_PIXELS
    from mnist_nbdev.serving import REQUEST_PIXELS

    side = int(MAX_PIXELS ** 0.5) - 1
    page = Image.new("L", (side, side), 255)
    ImageDraw.Draw(page).line([(side // 4, side // 4), (3 * side // 4, side // 4), (side // 2, 7 * side // 8)],
                              fill=0, width=side // 30)
    large = png(page)
    assert 2 * side * side <= REQUEST_PIXELS < 3 * side * side
    reply = client.post("/predict", files=[upload(f"{i}.png", large) for i in range(3)])
    answers = reply.json()
    assert [a.get("label") for a in answers[:2]] == [7, 7]
    assert answers[2]["error"].startswith(f"2.png: {side}x{side} is more than this request may still decode")


def test_server_under_hostile_load_stays_small_and_answers(mnist_dir, monkeypatch):
    """A short round of benchmarks/serve_hostile.py: the largest images from 2 clients while 150
    connections hang and /health is probed, the server's request timeout 2 s (10 by default) and
    its limit on open files 200, which leaves room for 104 connections."""
    monkeypatch.setenv("MNIST_NBDEV_DATA", str(mnist_dir))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import serve_hostile
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    r = serve_hostile.run(clients=2, hanging=150, seconds=8, request_timeout=2, fd_limit=200)
    assert r["still_up"] and r["health_failures"] == [], r
    assert r["sent"] >= 2 and r["served"] == r["right"] == r["sent"], r  # every one read, as 7
    assert r["closed_by_timeout"] >= 150, r  # each hanging connection closed, at least once
    assert r["peak_rss_mb"] < 1500, r
    assert r["end_rss_mb"] < r["idle_rss_mb"] + 300, r  # what the images took is given back
    assert r["log_bytes"] < 10_000, r  # no error flood


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "A server process on a free port of 127.0.0.1; its URL once /health answers."
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("server") / "log.txt"
    with open(log, "w") as out:  # a file, not a pipe nobody reads that could fill
        process = subprocess.Popen(
            server_command(port), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer on port {port} within 60 s")
            try:
                process.wait(
                    timeout=0.1
                )  # the pause between polls, or its exit at once
                pytest.fail(
                    f"the server exited ({process.returncode}): {log.read_text()}"
                )
            except subprocess.TimeoutExpired:
                pass
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_real_server_answers_concurrent_clients(server):
    def ask(i, results):
        data, label = (SEVEN, 7) if i % 2 else (ONE, 1)
        reply = httpx.post(
            server + "/predict", files=[upload(f"{i}.png", data)], timeout=30
        )
        results[i] = (reply.status_code, reply.json()[0]["label"] == label)

    results = [None] * 8
    threads = [threading.Thread(target=ask, args=(i, results)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [(200, True)] * 8
    assert httpx.get(server + "/health").json()["status"] == "ok"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip(
        "selenium.webdriver",
        reason="selenium is a dev requirement: pip install -e .[dev]",
    )
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("Debian's chromium and chromium-driver are needed: `make browser`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=900,640",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=driver)
    )
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def test_draw_a_seven_in_the_browser(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    pad = browser.find_element(By.ID, "pad")
    shown = browser.find_element(By.ID, "prediction")
    assert (pad.size["width"], pad.size["height"]) == (284, 284)  # 280 and its border
    # a 7 with the mouse: the top bar left to right, then down to the lower left;
    # offsets are from the canvas's centre
    strokes = (
        ActionChains(browser)
        .move_to_element_with_offset(pad, -80, -90)
        .click_and_hold()
    )
    for dx, dy in [(40, 0)] * 4 + [(-22, 47)] * 4:
        strokes = strokes.move_by_offset(dx, dy)
    strokes.release().perform()
    WebDriverWait(browser, 30).until(lambda _: shown.text.strip() != "")
    assert shown.text.strip() == "7", browser.find_element(By.TAG_NAME, "main").text
    assert "% sure" in browser.find_element(By.ID, "confidence").text
    widths = browser.execute_script(
        "return [...document.querySelectorAll('.fill')]"
        ".map(f => f.getBoundingClientRect().width)"
    )
    assert len(widths) == 10 and max(widths) == widths[7] > 0
    ink = browser.execute_script(  # the 28x28 image the model read, shown beside the drawing
        "const d = document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data;"
        "return d.filter((v, i) => i % 4 === 0 && v > 127).length;"
    )
    assert 20 < ink < 28 * 28 / 2, ink  # a white stroke on black, as MNIST's
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    if os.environ.get("SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(browser.get_screenshot_as_png())
    browser.find_element(By.ID, "clear").click()
    WebDriverWait(browser, 10).until(lambda _: shown.text.strip() == "")
    blank = browser.execute_script(
        "const d = pad.getContext('2d').getImageData(0, 0, 280, 280).data;"
        "return d.every(v => v === 255);"
    )
    assert blank


def test_upload_a_photo_in_the_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    test = load_mnist().test
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(png(as_photo(test.images[0].numpy(), seed=1), "JPEG", quality=85))
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    shown = browser.find_element(By.ID, "prediction")
    WebDriverWait(browser, 30).until(lambda _: shown.text.strip() != "")
    assert shown.text.strip() == str(int(test.labels[0]))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_the_draw_page_fits_a_phone(server, browser):
    "At a phone's size the whole page, drawing box and ten bars, is on one screen: no scrolling."
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        browser.get(server + "/")
        over = browser.execute_script(
            "const e = document.documentElement;"
            "return [e.scrollWidth - innerWidth, e.scrollHeight - innerHeight];"
        )
        assert over[0] <= 1 and over[1] <= 1, f"{over} px wider and taller than the screen"
        for name in ("how", "pad", "seen", "meaning"):
            assert browser.find_element(By.ID, name).is_displayed(), name
    finally:
        browser.set_window_size(900, 640)

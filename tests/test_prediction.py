"""Reading people's images from files: photos and drawings, blank pages, broken files, the command."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFilter

from mnist_nbdev.cli import _processes_pay
from mnist_nbdev.cli import predict_files
from mnist_nbdev.data import load_mnist
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import ImageError
from mnist_nbdev.prediction import as_photo
from mnist_nbdev.prediction import predict

N = 200  # test images turned into person-like files


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    split = load_mnist(mnist_dir).test
    idx = np.random.default_rng(7).choice(len(split), N, replace=False)
    return split.images[idx].numpy(), split.labels[idx].numpy()


def drawing(digit: np.ndarray, seed: int) -> Image.Image:
    "An MNIST digit as a drawing app would save it: RGBA, transparent background, black strokes, large."
    rng = np.random.default_rng(seed)
    side = int(rng.integers(200, 400))
    alpha = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    canvas = Image.new("RGBA", (side + int(rng.integers(50, 300)), side + int(rng.integers(50, 300))), (0, 0, 0, 0))
    stroke = Image.new("RGBA", (side, side), (20, 20, 30, 255))
    stroke.putalpha(alpha)
    canvas.paste(stroke, (int(rng.integers(0, canvas.width - side)), int(rng.integers(0, canvas.height - side))))
    return canvas


@pytest.fixture(scope="module")
def person_files(tmp_path_factory, test_split):
    "Half JPEG photos (RGB, dark on light paper, off-centre, noisy), half PNG drawings (RGBA)."
    folder = tmp_path_factory.mktemp("person")
    images, labels = test_split
    paths = []
    for i, digit in enumerate(images):
        if i % 2:
            path = folder / f"photo_{i}.jpg"
            as_photo(digit, seed=1000 + i).save(path, quality=75)
        else:
            path = folder / f"drawing_{i}.png"
            drawing(digit, seed=i).save(path)
        paths.append(path)
    return paths, labels


def test_person_like_files_read_about_as_well_as_the_test_set(model, test_split, person_files):
    images, labels = test_split
    direct = np.mean([p.label == y for p, y in zip(predict(list(images), model), labels)])
    paths, _ = person_files
    results = predict(paths, model)
    assert all(r.error is None for r in results)
    from_files = np.mean([r.label == y for r, y in zip(results, labels)])
    print(f"direct {direct:.1%}, person-like files {from_files:.1%}")
    assert direct >= 0.97
    assert from_files >= direct - 0.02


def test_naive_resizing_would_fail(model, person_files):
    "The point of the preprocessing: without it the same files read at near chance."
    paths, labels = person_files
    naive = np.stack([np.asarray(Image.open(p).convert("L").resize((28, 28)), dtype=np.float32) / 255 for p in paths])
    with torch.inference_mode():  # the model normalises its [0, 1] pixels itself
        preds = model(torch.from_numpy(naive).unsqueeze(1)).argmax(1).numpy()
    assert np.mean(preds == labels) < 0.3


def test_drawn_digit_with_pil(model, tmp_path):
    "A digit drawn with plain line strokes, as in a paint program."
    img = Image.new("RGB", (300, 400), "white")
    draw = ImageDraw.Draw(img)
    draw.line([(80, 80), (220, 80), (130, 330)], fill="black", width=22)  # a 7
    img.save(tmp_path / "seven.png")
    img = Image.new("L", (300, 400), 255)
    ImageDraw.Draw(img).line([(150, 60), (150, 340)], fill=0, width=24)  # a 1
    img.save(tmp_path / "one.jpg")
    assert [r.label for r in predict([tmp_path / "seven.png", tmp_path / "one.jpg"], model)] == [7, 1]


def test_damaged_and_oversized_files_raise_image_error_naming_them(model, tmp_path, monkeypatch):
    "Python callers get ImageError naming the file; in a list the error is reported and reading goes on."
    image = tmp_path / "page.png"
    Image.new("L", (100, 100), 255).save(image)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(image.read_bytes()[:60])
    with pytest.raises(ImageError, match="cut.png: unreadable image"):
        predict(truncated, model)
    assert predict(image, model).label is None  # a blank page, read fine
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)  # 10,000 pixels: Pillow warns of a bomb
    with pytest.raises(ImageError, match="page.png: unreadable image"):
        predict(image, model)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)  # over twice the limit: Pillow refuses
    with pytest.raises(ImageError, match="page.png: unreadable image"):
        predict(image, model)
    results = predict([truncated, image, str(image)], model)
    assert [r.path for r in results] == [str(truncated), str(image), str(image)]
    assert all("unreadable image" in r.error for r in results)


def run(*args):
    return subprocess.run(["mnist-predict", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_command_lines_and_exit_codes(tmp_path, person_files):
    paths, labels = person_files
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (250, 250, 245)).save(blank)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")

    ok = run(paths[0], paths[1], blank)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split() [:2] == [str(paths[0]), str(labels[0])]
    assert lines[2].split()[:2] == [str(blank), "none"]

    bad = run("--json", paths[0], empty, text, blank)
    assert bad.returncode == 1
    records = json.loads(bad.stdout)
    assert records[0]["path"] == str(paths[0]) and records[0]["label"] == int(labels[0])
    assert len(records[0]["probabilities"]) == 10 and 0 < records[0]["confidence"] <= 1
    assert set(records[1]) == {"path", "error"} and "empty file" in records[1]["error"]
    assert set(records[2]) == {"path", "error"} and "not an image" in records[2]["error"]
    assert records[3]["label"] is None
    assert "notes.png" in bad.stderr

    usage = run()
    assert usage.returncode == 2 and "IMAGE" in usage.stderr
    missing_model = run("--model", tmp_path / "nope", paths[0])
    assert missing_model.returncode == 1 and "no such model folder" in missing_model.stderr


def test_many_files_on_threads_read_as_one_at_a_time(model, person_files, tmp_path):
    "A list is prepared on threads and read in batches; each answer is still its own file's."
    paths, _ = person_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    mixed = [*paths[:20], broken, *paths[20:40]]
    threaded = predict(mixed, model, workers=2)
    single = [predict(p, model) if p != broken else None for p in mixed]
    assert [r.path for r in threaded] == [str(p) for p in mixed]
    assert threaded[20].error is not None and "broken.png" in threaded[20].error
    for r, s in zip(threaded, single):
        if s is not None:
            assert (r.label, r.error) == (s.label, None)
            assert r.confidence == pytest.approx(s.confidence, abs=1e-5)
    assert [r.label for r in predict(mixed, model, workers=1)] == [r.label for r in threaded]


FRESH = """
import json, os, sys
import mnist_nbdev.cli as C
import mnist_nbdev.prediction as P
files, parent, real = sys.argv[2:], os.getpid(), P.prepare

def dies_in_a_worker(item, many):
    if os.getpid() != parent and item == files[5]:
        os._exit(1)  # as if the kernel killed it
    return real(item, many)

if sys.argv[1] == "crash":
    P.prepare = dies_in_a_worker
print(C._processes_pay(files, 2))
print(json.dumps([r.to_dict() for r in C.predict_files(files, workers=2)]))
"""


def fresh_predict(files: list, mode: str = "plain") -> tuple:
    "`predict_files` (mnist-predict's reader) in a fresh Python, without torch: processes pay?, results."
    out = subprocess.run([sys.executable, "-c", FRESH, mode, *map(str, files)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pays, results = out.stdout.splitlines()
    return pays == "True", json.loads(results)


def test_many_files_in_a_fresh_process_are_prepared_by_worker_processes(person_files, tmp_path):
    "Before torch loads, files go to worker processes; the answers are the threads' answers."
    paths, _ = person_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    mixed = [*paths[:20], broken, *paths[20:40]]
    pays, on_processes = fresh_predict(mixed)
    on_threads = [r.to_dict() for r in predict_files(mixed, workers=2)]  # torch is loaded here: threads
    assert pays and not _processes_pay(mixed, 2)
    assert [r["path"] for r in on_processes] == [str(p) for p in mixed]
    assert [r.get("label") for r in on_processes] == [r.get("label") for r in on_threads]
    assert [r.get("error") for r in on_processes] == [r.get("error") for r in on_threads]
    assert "broken.png" in on_processes[20]["error"]
    assert not fresh_predict(mixed[:10])[0]  # too few files to pay for the processes


def test_a_worker_that_dies_is_not_waited_for(person_files):
    "A worker killed mid-run: the files are prepared again on threads, every answer still given."
    paths, _ = person_files
    files = list(paths[:30])
    _, after_crash = fresh_predict(files, "crash")
    _, plain = fresh_predict(files)
    assert after_crash == plain
    assert all(r.get("error") is None for r in after_crash)

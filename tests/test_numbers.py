"Reading whole numbers: from Python, `mnist-predict --number` and `/predict?number=true`."
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_nbdev.data import load_mnist
from mnist_nbdev.files import load_model
from mnist_nbdev.numbers import MAX_PIECES
from mnist_nbdev.numbers import NumberReading
from mnist_nbdev.numbers import number_photo
from mnist_nbdev.numbers import read_number
from mnist_nbdev.prediction import ImageError
from mnist_nbdev.prediction import predict


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def digits():
    "The first test image of each digit, by digit."
    test = load_mnist().test
    labels = test.labels.numpy()
    return {d: test.images[int(np.flatnonzero(labels == d)[0])].numpy() for d in range(10)}


def photo_of(text, digits, seed=4, touch=0.1):
    return number_photo([digits[int(c)] for c in text], np.random.default_rng(seed), touch)


def png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_number_of_real_test_digits_is_read_left_to_right(model, digits):
    result = read_number(photo_of("427", digits), model)
    assert result.number == "427" and result.reason is None
    lefts = [d["box"][0] for d in result.digits]
    assert lefts == sorted(lefts)
    for d in result.digits:
        left, top, right, bottom = d["box"]
        assert left < right and top < bottom and 0 < d["confidence"] <= 1


def test_boxes_are_in_the_images_own_pixels(model, digits, tmp_path):
    row = photo_of("38", digits)
    big = Image.fromarray(row).resize((row.shape[1] * 3, row.shape[0] * 3))
    small_boxes = [d["box"] for d in read_number(row, model).digits]
    path = tmp_path / "big.png"
    big.save(path)
    result = read_number(path, model)
    assert result.number == "38" and result.path == str(path)
    for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(small_boxes, [d["box"] for d in
                                                               result.digits]):
        near = 0.05 * big.width  # the large one is shrunk to be read, then scaled back
        assert abs(l1 - 3 * l0) < near and abs(r1 - 3 * r0) < near


def test_a_lone_digit_is_a_number_of_one_digit(model, digits):
    assert read_number(digits[7], model).number == "7"
    assert read_number(photo_of("5", digits), model).number == "5"


def test_a_blank_page_has_no_number_and_says_why(model):
    result = read_number(np.full((240, 320, 3), 230, np.uint8), model)
    assert (result.number, result.digits) == (None, [])
    assert result.reason.startswith("no digit found")
    assert result.to_dict() == {"number": None, "digits": [], "reason": result.reason}


def test_touching_digits_are_cut(model, digits):
    photo = photo_of("85", digits, seed=5, touch=1)
    result = read_number(photo, model)
    assert result.number == "85"


def test_a_digit_the_photo_breaks_in_two_is_read_as_one(model):
    test = load_mnist().test  # a 5 whose bar is apart from its body, then a 7
    five_seven = [test.images[i].numpy() for i in (694, 8825)]
    result = read_number(number_photo(five_seven, np.random.default_rng(0)), model)
    assert result.number == "57" and len(result.digits) == 2


class NotADigitAfterTheFirst(torch.nn.Module):
    "Eleven classes: the first image of a batch is a 3, every other one not a digit."

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(len(x), 11)
        logits[:, 10] = 5
        logits[0, 10], logits[0, 3] = 0, 5
        return logits


def test_a_piece_that_is_not_a_digit_names_it(digits):
    result = read_number(photo_of("427", digits), NotADigitAfterTheFirst())
    assert result.number is None and len(result.digits) == 3
    assert result.reason.startswith("the 2nd piece from the left is not a digit")
    assert result.digits[0]["label"] == 3 and result.digits[1]["label"] is None
    assert "reason" in result.digits[1]


def test_too_many_pieces_are_refused_at_once(model):
    page = np.ones((100, 1200), np.float32)
    for i in range(MAX_PIECES + 5):
        page[30:70, 10 + 40 * i : 20 + 40 * i] = 0
    result = read_number(page, model)
    assert result.number is None and result.digits == []
    assert f"{MAX_PIECES + 5} separate pieces" in result.reason


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.full((20, 20), np.nan),
                                 "no/such/file.png", b"bytes", np.zeros((2, 40, 40))])
def test_what_predict_refuses_read_number_refuses_alike(model, bad):
    with pytest.raises(ImageError) as number_error:
        read_number(bad, model)
    if not (isinstance(bad, np.ndarray) and bad.ndim == 3):  # predict reads a batch
        with pytest.raises(ImageError) as digit_error:
            predict(bad, model)
        assert str(number_error.value) == str(digit_error.value)


def test_a_failed_file_reading_gives_path_and_error_only():
    failed = NumberReading(None, [], path="x.png", error="x.png: empty file")
    assert failed.to_dict() == {"path": "x.png", "error": "x.png: empty file"}


def test_the_command_reads_numbers(digits, tmp_path):
    number, notes = tmp_path / "number.png", tmp_path / "notes.txt"
    number.write_bytes(png(photo_of("427", digits)))
    notes.write_text("not an image")
    run = subprocess.run([sys.executable, "-m", "mnist_nbdev.cli", "mnist-predict",
                          "--number", str(number), str(notes)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{number}: 427 (digits ") and lines[0].endswith("sure)")
    assert "notes.txt" in lines[1] and "error" in lines[1] and "notes.txt" in run.stderr
    run = subprocess.run([sys.executable, "-m", "mnist_nbdev.cli", "mnist-predict",
                          "--number", "--json", str(number)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    (answer,) = json.loads(run.stdout)
    assert answer["number"] == "427" and answer["path"] == str(number)
    assert [list(d) for d in answer["digits"]] == [["label", "confidence", "box"]] * 3


def test_the_server_reads_numbers_when_asked(model, digits):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mnist_nbdev.serving import make_app

    client = TestClient(make_app(model))
    number = ("files", ("427.png", png(photo_of("427", digits)), "image/png"))
    blank = ("files", ("blank.png", png(np.full((50, 80), 255, np.uint8)), "image/png"))
    reply = client.post("/predict?number=true", files=[number, blank])
    assert reply.status_code == 200
    first, second = reply.json()
    assert (first["name"], first["number"]) == ("427.png", "427")
    assert second["number"] is None and second["reason"].startswith("no digit found")
    one_digit = client.post("/predict", files=[number]).json()[0]
    assert "label" in one_digit and "number" not in one_digit  # as before, unasked
    assert client.post("/predict?number=maybe", files=[number]).status_code == 422


class DoubtfulThree(torch.nn.Module):
    "Eleven classes: every image a 3 at 0.67 and not a digit at 0.33, under a threshold of 0.2."

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.info = {"refuse_at": 0.2}

    def forward(self, x):
        logits = torch.full((len(x), 11), -30.0)
        logits[:, 3], logits[:, 10] = np.log(0.67), np.log(0.33)
        return logits


def test_a_lone_digit_is_refused_as_predict_refuses_it(digits):
    "Inside a number a doubtful part keeps its likeliest digit; alone, `predict`'s threshold rules."
    from mnist_nbdev.prediction import predict

    one = digits[7]
    assert predict(one, DoubtfulThree()).label is None  # 0.33 >= refuse_at 0.2
    assert read_number(one, DoubtfulThree()).number is None
    assert read_number(photo_of("77", digits), DoubtfulThree()).number == "33"  # in a row: likeliest

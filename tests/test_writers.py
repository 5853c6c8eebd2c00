"""Other writers (the writers page): the sets from outside MNIST stay apart from training and mean
what they say; `--writers` trains on synthetic writers and records it; `mnist-evaluate --outside`
reads the sets and, with `--card`, records them as the card's known limits, never in a folder whose
README.md a person wrote; the packaged model reads other writers as its card says."""
import json
import subprocess

import numpy as np
import pytest
import torch

from mnist_nbdev.data import load_mnist
from mnist_nbdev.files import OUTSIDE_NAMES
from mnist_nbdev.files import PRETRAINED_DIR
from mnist_nbdev.files import load_model
from mnist_nbdev.writers import HELD_OUT
from mnist_nbdev.writers import outside_sets
from mnist_nbdev.writers import prepared
from mnist_nbdev.writers import read_right
from mnist_nbdev.writers import stroke_digits
from mnist_nbdev.writers import typeface_digits
from mnist_nbdev.writers import typefaces
from mnist_nbdev.writers import with_writers
from mnist_nbdev.writers import writer_digits


def test_typefaces_split_by_the_alphabet_rule_and_never_overlap():
    held, held_names = typefaces("held out")
    train, train_names = typefaces("train")
    assert len(held_names) + len(train_names) == 65
    everything = sorted(held_names + train_names)
    assert held_names == everything[::HELD_OUT]  # every third, alphabetically: no choosing
    assert not set(held_names) & set(train_names)
    assert held.dtype == np.uint8 and held.shape[1:] == (10, 48, 48)
    assert (held.reshape(len(held), 10, -1).max(-1) > 200).all()  # every digit has ink


def test_training_writers_never_draw_the_measured_digits():
    "Same functions, other seeds and typefaces: no image of a measured set is trained on."
    measured = torch.cat([typeface_digits(200, 10).images, stroke_digits(200, 11).images])
    trained = writer_digits(400, seed=7).images
    seen = {bytes(img.numpy()) for img in trained}
    assert not any(bytes(img.numpy()) in seen for img in measured)
    again = typeface_digits(200, 10).images  # a set is the same each time it is made
    assert torch.equal(again, measured[:200])


def test_a_page_without_a_digit_fails_the_whole_set():
    blank = np.full((64, 64, 3), 230, np.uint8)
    assert len(prepared([_a_page()], [1])) == 1
    with pytest.raises(ValueError, match="1 of 2 pages held no digit"):
        prepared([_a_page(), blank], [1, 2])


def _a_page() -> np.ndarray:
    page = np.full((80, 60, 3), 240, np.uint8)
    page[10:70, 28:34] = 20  # a 1
    return page


@pytest.mark.parametrize("n", [-1, 2.5, True, "5"])
def test_with_writers_refuses_a_bad_count(n, mnist_dir):
    with pytest.raises(ValueError, match="writers must be a whole number"):
        with_writers(load_mnist(mnist_dir), n)


def test_the_packaged_model_was_trained_on_writers_and_reads_them_as_its_card_says(mnist_dir):
    record = json.loads((PRETRAINED_DIR / "model.json").read_text())
    assert record["writers"] > 0 and set(record["outside"]) == {"typefaces", "strokes",
                                                                 "low resolution"}
    card = " ".join((PRETRAINED_DIR / "README.md").read_text().split())  # unwrapped
    assert "Digits from outside MNIST (the writers page), read right" in card
    model = load_model()
    sets = outside_sets(500)
    for name, split in sets.items():
        right = read_right(model, split)["right"]
        # 500 digits, not the 2,000 the record measured: within sampling error of it
        assert right >= record["outside"][name]["right"] - 0.02, (name, right)
        found = record["outside"][name]
        assert f"{OUTSIDE_NAMES[name]} {found['right']:.1%} of {found['images']:,}" in card


def _train(out, mnist_dir, *extra):
    cmd = ["mnist-train", "--recipe", "fast", "--train-subset", "2000", "--test-subset", "500",
           "--out", str(out), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "model.json").read_text())


def test_mnist_train_writers_records_them(tmp_path, mnist_dir):
    record = _train(tmp_path / "m", mnist_dir, "--writers", "200", "--negatives", "200",
                    "--valid", "200")
    assert (record["writers"], record["negatives"], record["valid"]) == (200, 200, 200)
    plain = _train(tmp_path / "p", mnist_dir, "--writers", "300")  # ten classes, no --valid
    assert plain["writers"] == 300 and "negatives" not in plain
    assert plain["model_args"]["n_classes"] == 10


def test_mnist_evaluate_outside_records_the_figures_on_the_card(tmp_path, mnist_dir):
    out = tmp_path / "m"
    _train(out, mnist_dir)
    shown = subprocess.run(["mnist-evaluate", "--model", str(out), "--outside", "--json"],
                           capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(shown.stdout)["outside"]
    assert [f["images"] for f in figures.values()] == [2000, 2000, 1797]
    assert "outside" not in json.loads((out / "model.json").read_text())  # no --card: no write
    done = subprocess.run(["mnist-evaluate", "--model", str(out), "--outside", "--card"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "digits from outside MNIST" in done.stdout
    record = json.loads((out / "model.json").read_text())
    assert record["outside"] == figures
    card = " ".join((out / "README.md").read_text().split())
    assert f"held out of training {figures['typefaces']['right']:.1%} of 2,000" in card
    assert load_model(out).info["outside"] == figures  # the record still loads, signed


def test_mnist_evaluate_outside_card_leaves_a_persons_folder_alone(tmp_path, mnist_dir):
    out = tmp_path / "m"
    _train(out, mnist_dir)
    (out / "README.md").write_text("my notes\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = subprocess.run(["mnist-evaluate", "--model", str(out), "--outside", "--card"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "not a model card written by mnist_nbdev" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

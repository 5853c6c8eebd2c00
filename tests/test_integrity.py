"""The whole of a model's record is under the integrity check: model.json edited after it was saved is
refused, naming the file; an older record (its SHA-256 over the weights only) loads with a warning that
says how to sign it; signing never covers weights the record does not describe. Checkpoints, the same
kind of pair, are checked the same way."""
import json
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from mnist_nbdev.files import PRETRAINED_DIR
from mnist_nbdev.files import ModelFileError
from mnist_nbdev.files import build_model
from mnist_nbdev.files import load_model
from mnist_nbdev.files import read_model_info
from mnist_nbdev.files import read_pair
from mnist_nbdev.files import save_model
from mnist_nbdev.files import write_pair

EDITED = "the record was edited after it was saved"


def packaged_copy(folder):
    "A copy of the packaged model, to edit."
    shutil.copytree(PRETRAINED_DIR, folder)
    return folder


def edit_record(folder, edit, stem="model"):
    "Change a pair's JSON file as a person with a text editor would."
    path = folder / f"{stem}.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record, indent=2) + "\n")


EDITS = {
    "normalization": lambda r: r["normalization"].update(mean=0.5),  # a 7 reads as 2
    "test_accuracy": lambda r: r.update(test_accuracy=1.0),  # what /health reports
    "history": lambda r: r["history"].pop(),
    "a new field": lambda r: r.update(note="looks harmless"),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_an_edited_model_record_is_refused_naming_the_file(tmp_path, field):
    folder = packaged_copy(tmp_path / "m")
    edit_record(folder, EDITS[field])
    for read in (load_model, read_model_info):
        with pytest.raises(ModelFileError) as caught:
            read(folder)
        assert str(caught.value).startswith(f"{folder / 'model.json'}: {EDITED}")


def test_other_weights_with_their_own_sha256_are_refused(tmp_path):
    "Swapping the weights and writing their SHA-256 into model.json is an edit too."
    from safetensors.torch import save

    folder = packaged_copy(tmp_path / "m")
    stranger = build_model("batchnorm_cnn", width=16)  # the same shapes, untrained
    blob = save({k: v.contiguous() for k, v in stranger.net.state_dict().items()})
    (folder / "model.safetensors").write_bytes(blob)
    import hashlib

    edit_record(folder, lambda r: r.update(weights_sha256=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(ModelFileError, match=EDITED):
        load_model(folder)


def test_the_packaged_model_is_signed_and_loads_without_a_warning():
    from mnist_nbdev.files import record_digest

    record = json.loads((PRETRAINED_DIR / "model.json").read_text())
    assert record["record_sha256"] == record_digest(record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model().info["test_accuracy"] == record["test_accuracy"]


def test_the_digest_ignores_layout_and_key_order(tmp_path):
    "Re-indenting model.json or reordering its keys is not an edit."
    folder = packaged_copy(tmp_path / "m")
    record = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(dict(reversed(record.items()))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(folder)


def old_folder(folder):
    "A model folder as saved before records were signed: no record_sha256."
    packaged_copy(folder)
    edit_record(folder, lambda r: r.pop("record_sha256", None))
    return folder


def test_an_old_record_loads_with_a_warning_that_says_how_to_sign_it(tmp_path):
    folder = old_folder(tmp_path / "old model")  # a space, as a user's folder may have
    with pytest.warns(UserWarning, match=r"sign_model") as caught:
        model = load_model(folder)
    assert model.info["test_accuracy"] == load_model().info["test_accuracy"]
    from mnist_nbdev.files import UnsignedRecordWarning

    message = str(next(w.message for w in caught if w.category is UnsignedRecordWarning))
    assert message.startswith(f"{folder / 'model.json'}: ")
    code = message.split("in Python: ")[1]  # the line it gives, run as a user would
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(folder)  # signed now: no warning


def test_sign_model_signs_a_record_edited_on_purpose(tmp_path):
    from mnist_nbdev.files import sign_model

    folder = packaged_copy(tmp_path / "m")
    edit_record(folder, lambda r: r.update(note="trained on my laptop"))
    digest = sign_model(folder)
    assert json.loads((folder / "model.json").read_text())["record_sha256"] == digest
    assert load_model(folder).info["note"] == "trained on my laptop"


def test_sign_model_never_signs_weights_the_record_does_not_describe(tmp_path):
    from mnist_nbdev.files import sign_model

    folder = old_folder(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ModelFileError, match="SHA-256 differs"):
        sign_model(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written


def test_a_saved_loaded_model_is_signed_afresh(tmp_path):
    model = load_model()
    model.info["note"] = "kept"
    save_model(model, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(tmp_path).info["note"] == "kept"


def test_an_edited_checkpoint_record_is_refused(tmp_path):
    "Checkpoints are pairs too: a learning rate edited in checkpoint.json is refused."
    record = {"epoch": 1, "param_groups": [{"lr": 0.01}]}
    write_pair(tmp_path, "checkpoint", {"w": torch.arange(3.0)}, record)
    assert read_pair(tmp_path, "checkpoint")[1]["param_groups"] == [{"lr": 0.01}]
    edit_record(tmp_path, lambda r: r["param_groups"][0].update(lr=10.0), "checkpoint")
    with pytest.raises(ModelFileError, match=f"checkpoint.json: {EDITED}"):
        read_pair(tmp_path, "checkpoint")

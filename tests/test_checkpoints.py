"""checkpoints: best models saved without optimizer state unless asked; model identity."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile

import h5py
import numpy as np
from conftest import TINY_IMAGE

from agegender import labels
from agegender.checkpoints import (
    describe_model,
    load_model,
    model_features,
    model_identity,
    save_model_files,
)


def _trained_model():
    """A compiled gender model after one optimizer step: Adam holds its moments."""
    from agegender.config import ModelParams
    from agegender.model import build_model, compile_model

    model = build_model(ModelParams(image_size=TINY_IMAGE, num_classes=2, task="gender",
                                    class_names=labels.class_names("gender")))
    compile_model(model, 1e-3)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, TINY_IMAGE, TINY_IMAGE, 3)).astype(np.float32)
    model.train_on_batch(images, np.array([0, 1, 0, 1]))
    return model, images


def _keras_groups(path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        return set(weights.keys())


def test_best_model_files_leave_the_optimizer_out_unless_asked(tmp_path):
    model, images = _trained_model()
    save_model_files(model, tmp_path / "lean.keras", tmp_path / "lean.h5")
    save_model_files(model, tmp_path / "full.keras", tmp_path / "full.h5",
                     include_optimizer=True)
    sizes = {name: (tmp_path / name).stat().st_size
             for name in ("lean.keras", "lean.h5", "full.keras", "full.h5")}
    # Adam keeps two moments per weight: the full files are about 3x the lean ones.
    assert sizes["full.keras"] > 2.5 * sizes["lean.keras"], sizes
    assert sizes["full.h5"] > 2.5 * sizes["lean.h5"], sizes
    assert "optimizer" not in _keras_groups(tmp_path / "lean.keras")
    assert "optimizer" in _keras_groups(tmp_path / "full.keras")
    with h5py.File(tmp_path / "lean.h5", "r") as lean:
        assert "optimizer_weights" not in lean
    expected = model.predict({"spectrogram": images}, verbose=0)
    for name in ("lean.keras", "lean.h5"):
        np.testing.assert_allclose(load_model(tmp_path / name).predict(
                                       {"spectrogram": images}, verbose=0),
                                   expected, rtol=1e-5, atol=1e-6)
    assert model.optimizer is not None  # the training model itself is untouched


def test_model_identity_names_file_hash_size_and_best_epoch(trained_gender, tmp_path):
    path = tmp_path / "best_model_gender.keras"
    shutil.copy(trained_gender["keras"], path)
    identity = model_identity(path)
    assert identity["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity["size"] == path.stat().st_size
    assert identity["path"] == str(path.resolve())
    assert identity["epoch"] is None  # no best_model_gender.json beside it yet
    shutil.copy(trained_gender["state"], tmp_path / "best_model_gender.json")
    identity = model_identity(path)
    assert identity["epoch"] == trained_gender["best_epoch"] == json.loads(
        (tmp_path / "best_model_gender.json").read_text())["epoch"]
    short = describe_model(identity, short=True)
    assert short == (f"best_model_gender.keras (sha256 {identity['sha256'][:12]}, "
                     f"epoch {identity['epoch']})")
    assert identity["sha256"] in describe_model(identity)


def test_model_features_are_the_ones_it_was_trained_with(trained_gender):
    model = load_model(trained_gender["keras"])
    features = model_features(model)
    assert features.image_size == TINY_IMAGE == model.input_shape[1]
    assert features.feature_type == "spectrogram"


# -- issue 21, item 4: the checksum travels inside the model file ---------------------------


def _lone_copies(tmp_path):
    """A saved model's .keras and .h5 copied away from their sidecars and JSON."""
    import keras

    from agegender.config import ModelParams
    from agegender.model import build_model

    model = build_model(ModelParams(image_size=TINY_IMAGE, num_classes=2, task="gender",
                                    class_names=labels.class_names("gender")))
    keras.utils.set_random_seed(3)
    save_model_files(model, tmp_path / "saved" / "m.keras", tmp_path / "saved" / "m.h5")
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("m.keras", "m.h5"):
        shutil.copy(tmp_path / "saved" / name, lone / name)
    return lone / "m.keras", lone / "m.h5"


def _change_one_weight(weights: h5py.File) -> None:
    """Adds 1 to the first element of the first weight dataset found."""
    found = []
    weights.visititems(lambda name, item: found.append(item) if isinstance(
        item, h5py.Dataset) and item.size else None)
    data = found[0][...]
    data.flat[0] += 1.0
    found[0][...] = data


def test_lone_model_copies_verify_and_a_changed_weight_is_refused(tmp_path, caplog):
    """Was: a bit-flipped .h5 copied away from its JSON loaded and predicted differently."""
    import pytest

    from agegender.checkpoints import WEIGHTS_DIGEST_MEMBER, open_model
    from agegender.errors import ModelError

    keras_path, h5_path = _lone_copies(tmp_path)
    with caplog.at_level("WARNING"):
        for path in (keras_path, h5_path):
            assert open_model(path).task == "gender"  # untouched lone copies verify
    assert "unverified" not in caplog.text

    with h5py.File(h5_path, "a") as handle:  # one weight changed in place
        _change_one_weight(handle)
    with pytest.raises(ModelError, match=f"{h5_path}: its weights do not match the checksum "
                                         "stored inside the file"):
        open_model(h5_path)
    assert open_model(h5_path, verify=False).task == "gender"

    # A .keras rebuilt with one weight changed and valid CRCs (the zip check passes).
    changed = tmp_path / "changed.keras"
    with zipfile.ZipFile(keras_path) as source, zipfile.ZipFile(changed, "w") as target:
        for member in source.namelist():
            data = source.read(member)
            if member == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "a") as handle:
                    _change_one_weight(handle)
                data = buffer.getvalue()
            target.writestr(member, data)
        assert WEIGHTS_DIGEST_MEMBER in source.namelist()
    with pytest.raises(ModelError, match=f"{changed}: its weights do not match"):
        open_model(changed)


def test_a_model_file_with_no_checksum_anywhere_says_unverified(tmp_path, caplog):
    import keras

    from agegender.checkpoints import open_model
    from agegender.config import ModelParams
    from agegender.model import build_model

    model = build_model(ModelParams(image_size=TINY_IMAGE, num_classes=2, task="gender",
                                    class_names=labels.class_names("gender")))
    model.save(tmp_path / "plain.keras")  # Keras' own save: no digest inside, no sidecar
    keras.backend.clear_session()
    with caplog.at_level("WARNING"):
        open_model(tmp_path / "plain.keras")
    assert f"{tmp_path / 'plain.keras'}: unverified" in caplog.text

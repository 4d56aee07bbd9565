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
    expected = model.predict(images, verbose=0)
    for name in ("lean.keras", "lean.h5"):
        np.testing.assert_allclose(load_model(tmp_path / name).predict(images, verbose=0),
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

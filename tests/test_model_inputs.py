"""The one model-input path (agegender.model_inputs) and the parameters a model file stores."""

from __future__ import annotations

import numpy as np
import pytest

from agegender.config import FeatureParams, ModelParams
from agegender.errors import ModelError, ParameterError

FEATURES = FeatureParams(image_size=32)
GENDER = {"num_classes": 2, "task": "gender", "class_names": ("male", "female")}


def _saved(tmp_path, params: ModelParams, name: str = "m.keras"):
    """``params`` built with seeded weights and saved as ``.keras``; returns the path."""
    import keras

    from agegender.checkpoints import save_keras
    from agegender.model import build_model

    keras.utils.set_random_seed(3)
    model = build_model(params, features=FEATURES.__dict__ | {"image_size": params.image_size})
    path = tmp_path / name
    save_keras(model, path)
    return path


def test_model_params_round_trip_through_the_record():
    params = ModelParams(image_size=32, dense_units=16, l2=0.001, bn_momentum=0.9,
                         pitch_input=True, image_dropout=0.25, **GENDER)
    assert ModelParams.from_record(params.to_record()) == params
    with pytest.raises(ParameterError, match=r"\['wings'\] are not known"):
        ModelParams.from_record({**params.to_record(), "wings": 2})


@pytest.mark.parametrize(("params", "kinds"), [
    (ModelParams(**GENDER), ("spectrogram",)),
    (ModelParams(pitch_input=True, **GENDER), ("spectrogram", "pitch")),
    (ModelParams(architecture="voice_stats", pitch_input=True, **GENDER), ("pitch",)),
    (ModelParams(architecture="embedding", **GENDER), ("embedding",)),
    (ModelParams(architecture="embedding", pitch_input=True, **GENDER), ("embedding", "pitch")),
    (ModelParams(pitch_input=True, embedding_input=True, **GENDER),
     ("spectrogram", "pitch", "embedding")),
])
def test_input_kinds_follow_the_architecture(params, kinds):
    assert params.input_kinds == kinds


@pytest.mark.parametrize("params", [
    ModelParams(image_size=32, dense_units=16, l2=0.001, **GENDER),
    ModelParams(image_size=32, dense_units=24, pitch_input=True, bn_momentum=0.9, **GENDER),
    ModelParams(architecture="voice_stats", pitch_input=True, l2=0.003, **GENDER),
    ModelParams(architecture="embedding", pitch_input=True, head_units=8, **GENDER),
    ModelParams(architecture="embedding", l2=0.001, **GENDER),
    ModelParams(image_size=32, dense_units=16, embedding_input=True, **GENDER),
], ids=["dense16", "pitch-dense24", "voice_stats", "embedding-stats-mlp", "embedding",
        "cnn-embedding"])
def test_a_saved_model_records_its_parameters_and_bfloat16_copies_keep_them(tmp_path, params):
    """Was: --precision bfloat16 raised ValueError on any model with dense_units != 80."""
    import keras

    import agegender  # noqa: F401  (registers the custom layers)
    from agegender.checkpoints import open_model
    from agegender.model import model_params
    from agegender.model_inputs import random_inputs

    path = _saved(tmp_path, params)
    assert model_params(keras.models.load_model(path, safe_mode=True)) == params
    exact = open_model(path)
    fast = open_model(path, precision="bfloat16")
    assert exact.inputs == fast.inputs == params.input_kinds
    inputs = random_inputs(exact.inputs, exact.features, 8, seed=1)
    np.testing.assert_allclose(fast.predict(inputs), exact.predict(inputs), atol=0.05)


def test_a_file_saved_before_the_parameters_were_stored_is_read_from_its_structure(tmp_path):
    import keras

    import agegender  # noqa: F401
    from agegender.layers import LabelledOutput
    from agegender.model import build_model, model_params

    params = ModelParams(image_size=32, dense_units=16, pitch_input=True, **GENDER)
    model = build_model(params)
    (labelled,) = [lay for lay in model.layers if isinstance(lay, LabelledOutput)]
    labelled.model_params = None  # what older files hold
    path = tmp_path / "old.keras"
    model.save(path)
    read = model_params(keras.models.load_model(path, safe_mode=True))
    assert (read.dense_units, read.input_kinds, read.input_shape) == (
        16, ("spectrogram", "pitch"), (32, 32, 3))


def test_waveform_inputs_give_one_row_per_crop_of_every_kind():
    from synth import voice

    from agegender.model_inputs import crop_count, stack, waveform_inputs
    from agegender.voice_stats import STAT_NAMES

    features = FeatureParams.preset("voice")
    wave = voice("male", "thirties", seed=0, seconds=8.0, rate=features.sample_rate)
    inputs = waveform_inputs(wave, features, ("spectrogram", "pitch"), max_crops=3)
    assert list(inputs) == ["spectrogram", "pitch"]
    crops = crop_count(inputs)
    assert crops == 3 and inputs["spectrogram"].shape == (3, *features.image_shape)
    # The clip's statistics go with each of its crops.
    assert inputs["pitch"].shape == (3, len(STAT_NAMES))
    np.testing.assert_array_equal(inputs["pitch"][0], inputs["pitch"][2])
    alone = waveform_inputs(wave, features, ("pitch",), max_crops=3)
    assert list(alone) == ["pitch"] and alone["pitch"].shape == (1, len(STAT_NAMES))
    batch = stack([inputs, inputs])
    assert batch["spectrogram"].shape[0] == batch["pitch"].shape[0] == 6


def test_unknown_or_missing_kinds_are_refused_by_name():
    from agegender.model_inputs import check_kinds

    with pytest.raises(ModelError, match=r"\['smell'\]: expected one or more of spectrogram"):
        check_kinds(["smell"])
    with pytest.raises(ModelError, match=r"\[\]"):
        check_kinds([])


def test_embedding_heads_read_the_embedding():
    """An embedding head's output moves with its embedding input (the input is wired in)."""
    import keras

    from agegender.model import build_model
    from agegender.model_inputs import random_inputs

    keras.utils.set_random_seed(0)
    model = build_model(ModelParams(architecture="embedding", **GENDER))
    assert model.count_params() == 256 * 2 + 2
    model.get_layer("logits").kernel.assign(
        np.random.default_rng(0).normal(0, 0.1, (256, 2)).astype("float32"))
    one, two = (random_inputs(("embedding",), FEATURES, 4, seed=s) for s in (1, 2))
    assert not np.allclose(model.predict(one, verbose=0), model.predict(two, verbose=0))

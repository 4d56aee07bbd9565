"""The MAM-CNN: architecture, parameter count, stored labels, BatchNorm momentum regimes."""

from __future__ import annotations

import expected_outputs
import keras
import numpy as np
import pytest

from agegender.config import ModelParams
from agegender.errors import ModelError, ParameterError
from agegender.labels import AGES, GENDERS
from agegender.model import build_model, model_labels


def test_parameter_count_of_the_paper_configuration():
    model = build_model(ModelParams(image_size=64, num_classes=6, task="age", class_names=AGES))
    assert model.count_params() == 8_841_358
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 6)


def test_parameter_count_of_the_voice_preset_input():
    """The voice preset's 128×64 (height × width) input: FLB-2 ends at 2×1×384, so only the
    dense layer grows (768 inputs instead of 384)."""
    model = build_model(ModelParams(image_size=128, image_width=64, num_classes=2,
                                    task="gender", class_names=GENDERS))
    assert model.count_params() == 8_871_754
    assert model.input_shape == (None, 128, 64, 3)
    assert model.get_layer("flatten").output.shape == (None, 768)
    x = np.random.default_rng(0).uniform(0, 255, (2, 128, 64, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, 2)


def test_topology_and_names():
    model = build_model(ModelParams(image_size=64, num_classes=2, task="gender",
                                    class_names=GENDERS))
    names = [layer.name for layer in model.layers]
    assert names == ["spectrogram", "rescale", "flb_1", "mam", "flb_1_mam", "flb_2", "flatten",
                     "dense", "dense_bn", "probabilities", "labels"]
    assert model.get_layer("flb_1_mam").output.shape[-1] == 384 + 128
    assert model.get_layer("dense").units == 80
    assert model.get_layer("dense").kernel_regularizer is not None


def test_rescaling_is_inside_the_model():
    model = build_model(ModelParams(image_size=32, num_classes=2, task="gender"))
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_outputs_are_probabilities_and_labels_are_stored():
    model = build_model(ModelParams(image_size=32, num_classes=6, task="age", class_names=AGES),
                        features={"image_size": 32, "feature_type": "mel"})
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model_labels(model) == ("age", list(AGES), {"image_size": 32, "feature_type": "mel"})


def test_model_labels_refuses_foreign_models():
    inputs = keras.Input((4,))
    with pytest.raises(ModelError, match="no LabelledOutput"):
        model_labels(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


@pytest.mark.parametrize(("field", "value"), [("bn_momentum", 1.0), ("num_classes", 1),
                                              ("image_size", 8), ("l2", -0.1),
                                              ("dense_units", 0), ("image_dropout", 1.0),
                                              ("image_dropout", -0.1)])
def test_model_params_are_validated(field, value):
    with pytest.raises(ParameterError, match=field):
        ModelParams(**{field: value})


def _accuracy_with_moving_and_batch_statistics(momentum: float) -> tuple[float, float]:
    """Fits 30 steps on a small learnable set; returns training-set accuracy predicted with
    the moving statistics (inference mode) and with the batch statistics."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.uniform(100, 255, (80, 32, 32, 3)).astype("float32")
    y = (rng.uniform(size=80) > 0.5).astype("int32")
    x[y == 1, :16] *= 0.5  # the upper half is darker for class 1
    model = build_model(ModelParams(image_size=32, num_classes=2, task="gender",
                                    bn_momentum=momentum))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)  # 30 steps
    moving = keras.ops.convert_to_numpy(model(x, training=False)).argmax(axis=1)
    batch = keras.ops.convert_to_numpy(model(x, training=True)).argmax(axis=1)
    return float(np.mean(moving == y)), float(np.mean(batch == y))


@pytest.mark.slow
def test_default_bn_momentum_converges_on_small_data_and_keras_default_does_not():
    """The known pitfall: after ~30 steps, momentum 0.99 leaves the moving statistics
    unconverged: the net has learned (right with batch statistics) yet predicts at chance in
    inference mode. Our default predicts right in inference mode too."""
    ours_moving, ours_batch = _accuracy_with_moving_and_batch_statistics(
        ModelParams().bn_momentum)
    keras_moving, keras_batch = _accuracy_with_moving_and_batch_statistics(0.99)
    assert ours_batch >= 0.9 and keras_batch >= 0.9
    assert ours_moving >= 0.9
    assert keras_moving <= 0.65


@pytest.mark.parametrize("case", ["mam_cnn", "mam_cnn_pitch", "voice_stats"])
def test_model_gives_the_stored_outputs_on_seeded_weights(case):
    """Each stage's output (FLB-1, MAM, FLB-2, dense, probabilities; the fused heads' logits)
    on seeded weights and a seeded 40x24 input, against tests/data/expected_outputs.json
    (``python tests/expected_outputs.py --regen`` remakes it)."""
    expected_outputs.check(case)

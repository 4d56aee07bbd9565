"""Each custom layer: build, call, config round trip, .keras save/load identical outputs."""

from __future__ import annotations

import expected_outputs
import keras
import numpy as np
import pytest

import agegender  # noqa: F401  (registers the layers)
from agegender.config import DEFAULT_BN_MOMENTUM
from agegender.errors import ParameterError
from agegender.layers import (ExampleDropout, FeatureLearningBlock, FrequencyAttention,
                              LabelledOutput, MultiAttentionModule, TimeAttention)

CASES = [
    (FeatureLearningBlock, {"l2": 0.01, "bn_momentum": 0.9}, (2, 32, 32, 3), (2, 4, 4, 384)),
    (TimeAttention, {"filters": 8, "l2": 0.0, "bn_momentum": 0.5}, (2, 6, 10, 5), (2, 6, 10, 8)),
    (FrequencyAttention, {"filters": 8}, (2, 10, 6, 5), (2, 10, 6, 8)),
    (MultiAttentionModule, {"filters": 8}, (2, 8, 8, 16), (2, 8, 8, 16)),
    (LabelledOutput, {"task": "gender", "class_names": ["male", "female"],
                      "features": {"image_size": 32}}, (2, 2), (2, 2)),
    (ExampleDropout, {"rate": 0.5, "seed": 3}, (2, 2), (2, 2)),
]


def check_layer(cls, kwargs, input_shape, output_shape, tmp_path):
    """Build, call, compute_output_shape, get_config/from_config and .keras round trip."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, input_shape).astype("float32")
    layer = cls(**kwargs, name="under_test")
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == output_shape
    assert tuple(layer.compute_output_shape(input_shape)) == output_shape
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config

    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, cls(**kwargs)(inputs))
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "layer.keras")
    loaded = keras.models.load_model(tmp_path / "layer.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert type(loaded.layers[-1]) is cls


@pytest.mark.parametrize(("cls", "kwargs", "input_shape", "output_shape"), CASES,
                         ids=[case[0].__name__ for case in CASES])
def test_layer_round_trip(cls, kwargs, input_shape, output_shape, tmp_path):
    check_layer(cls, kwargs, input_shape, output_shape, tmp_path)


def test_time_and_frequency_attention_convolve_along_their_axis():
    time = TimeAttention(filters=4)
    frequency = FrequencyAttention(filters=4)
    time.build((1, 8, 8, 3))
    frequency.build((1, 8, 8, 3))
    assert [conv.kernel_size for conv in time.chain[:3]] == [(1, 9), (1, 3), (1, 3)]
    assert [conv.kernel_size for conv in frequency.chain[:3]] == [(9, 1), (3, 1), (3, 1)]


def test_feature_learning_block_architecture():
    block = FeatureLearningBlock()
    block.build((None, 64, 64, 3))
    convs = [layer for layer in block.chain if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (120, (9, 9), (2, 2)), (256, (5, 5), (1, 1)), (384, (3, 3), (1, 1))]
    assert all(c.kernel_regularizer is not None for c in convs)
    norms = [layer for layer in block.chain if isinstance(layer, keras.layers.BatchNormalization)]
    assert [n.momentum for n in norms] == [DEFAULT_BN_MOMENTUM] * 2


@pytest.mark.parametrize(("cls", "kwargs", "needle"), [
    (FeatureLearningBlock, {"bn_momentum": 1.5}, "bn_momentum=1.5"),
    (TimeAttention, {"filters": 0}, "filters=0"),
    (FrequencyAttention, {"l2": -1.0}, "l2=-1.0"),
    (LabelledOutput, {"task": "age", "class_names": []}, "class_names"),
])
def test_bad_arguments_name_the_argument(cls, kwargs, needle):
    with pytest.raises(ParameterError, match=needle.replace(".", r"\.")):
        cls(**kwargs)


def test_labelled_output_rejects_wrong_class_count():
    with pytest.raises(ParameterError, match="2 class_names for 3 outputs"):
        LabelledOutput("gender", ["male", "female"])(np.zeros((1, 3), "float32"))


def test_example_dropout_zeroes_whole_examples_in_training_only_and_does_not_rescale():
    x = np.arange(1, 2001, dtype="float32").reshape(1000, 2)
    layer = ExampleDropout(0.5, seed=1)
    trained = keras.ops.convert_to_numpy(layer(x, training=True))
    dropped = np.all(trained == 0, axis=1)
    # Every example is either kept exactly (no 1/(1 - rate) scaling) or zero as a whole.
    np.testing.assert_array_equal(trained[~dropped], x[~dropped])
    assert 400 < dropped.sum() < 600
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    off = ExampleDropout(0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(off(x, training=True)), x)
    with pytest.raises(ParameterError, match="rate=1.0"):
        ExampleDropout(1.0)


LAYER_OUTPUT_CASES = [name for name in expected_outputs.CASES
                      if not name.startswith(("mam_cnn", "voice_stats"))]


@pytest.mark.parametrize("case", LAYER_OUTPUT_CASES)
def test_layer_gives_the_stored_output_on_seeded_weights(case):
    """Numbers, not only shapes: the MAM without its frequency branch, with the branches
    swapped, or an attention convolving along the other axis keeps every shape above and
    fails here (fixture: tests/data/expected_outputs.json, made by
    ``python tests/expected_outputs.py --regen``)."""
    expected_outputs.check(case)

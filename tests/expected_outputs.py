"""Stored expected outputs of the MAM-CNN's layers and of whole models, on seeded weights
and seeded inputs (keras-hub's ``run_layer_test(expected_output=...)``, made small).

Shape and parameter-count tests pass for a network that computes something else: the MAM
without its frequency branch (time concatenated with itself), or with the two branches
swapped, keeps every shape. These cases pin the numbers instead. Each case builds a layer or
a model, sets every weight from ``numpy.random.default_rng(seed)`` (not from Keras'
initialisers, whose draws may change between Keras versions), feeds a seeded input, and
keeps a summary of the output in ``tests/data/expected_outputs.json``: its shape, mean and
standard deviation, the mean of each channel (last axis), and 64 values at evenly spaced
flat positions.

Regenerate the file on purpose, after a deliberate change of arithmetic, with

    python tests/expected_outputs.py --regen

and say in the commit why the numbers moved.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "data" / "expected_outputs.json"
SAMPLES = 64  # flat positions kept of each output
# float32 convolutions differ by summation order between CPU kernels (oneDNN or not, thread
# count); 1e-4 of the output's scale is far above that and far below any change of wiring.
RELATIVE_TOLERANCE = 1e-4


def seed_weights(target, seed: int) -> None:
    """Sets every weight of a layer or model from a seeded generator, in ``weights`` order.

    Kernels are He-normal (std sqrt(2 / fan-in)), so activations keep their scale through
    ReLU stacks; biases and BatchNorm betas and moving means N(0, 0.1); BatchNorm gammas and
    moving variances U(0.5, 1.5), so inference-mode normalisation is not the identity. A
    Normalization layer's fixed statistics (``mean``, ``variance``, ``count``) are left as
    built.
    """
    rng = np.random.default_rng(seed)
    for weight in target.weights:
        name = weight.path.rsplit("/", 1)[-1]
        shape = tuple(weight.shape)
        if name in ("mean", "variance", "count"):
            continue
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("bias", "beta", "moving_mean") or len(shape) < 2:
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        weight.assign(value.astype(weight.dtype))


def _uniform(shape, seed: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _layer_case(make: Callable, input_shape: tuple, *, training: bool = False,
                low: float = 0.0, high: float = 1.0) -> Callable[[], dict]:
    """A case: build ``make()`` on ``input_shape``, seed its weights, call it once."""

    def run() -> dict:
        import keras

        layer = make()
        layer.build(input_shape)
        seed_weights(layer, 1)
        x = _uniform(input_shape, 2, low, high)
        output = layer(x, training=training) if training else layer(x)
        return {"output": keras.ops.convert_to_numpy(output)}

    return run


def _model_case(params: dict, outputs: tuple[str, ...], inputs: Callable[[], object]
                ) -> Callable[[], dict]:
    """A case: ``build_model(ModelParams(**params))`` with seeded weights; the outputs of
    the named layers on ``inputs()``, in inference mode."""

    def run() -> dict:
        import keras

        from agegender.config import ModelParams
        from agegender.model import build_model

        model = build_model(ModelParams(**params))
        seed_weights(model, 3)
        probe = keras.Model(model.input, [model.get_layer(n).output for n in outputs])
        values = probe(inputs(), training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        return {name: keras.ops.convert_to_numpy(v) for name, v in
                zip(outputs, values, strict=True)}

    return run


def _layers():
    from agegender import layers

    return layers


def _images() -> np.ndarray:
    return _uniform((2, 40, 24, 3), 4, 0.0, 255.0)  # [batch, H, W, 3] in 0-255


def _statistics() -> np.ndarray:
    from agegender.voice_stats import STAT_CENTRE, STAT_SPREAD

    z = np.random.default_rng(5).normal(0.0, 1.0, (3, len(STAT_CENTRE)))
    return (np.asarray(STAT_CENTRE) + z * np.asarray(STAT_SPREAD)).astype(np.float32)


# Inputs are neither square nor channel-symmetric, so a conv along the wrong axis, or the
# branches in the other order, gives other numbers.
ATTENTION_INPUT = (2, 7, 11, 5)
GENDER = {"num_classes": 2, "task": "gender", "class_names": ("male", "female")}
CASES: dict[str, Callable[[], dict]] = {
    "FeatureLearningBlock": _layer_case(
        lambda: _layers().FeatureLearningBlock(l2=0.01, bn_momentum=0.9), (2, 20, 28, 3)),
    "FeatureLearningBlock-training": _layer_case(
        lambda: _layers().FeatureLearningBlock(), (2, 20, 28, 3), training=True),
    "TimeAttention": _layer_case(lambda: _layers().TimeAttention(filters=6), ATTENTION_INPUT),
    "FrequencyAttention": _layer_case(lambda: _layers().FrequencyAttention(filters=6),
                                      ATTENTION_INPUT),
    "MultiAttentionModule": _layer_case(lambda: _layers().MultiAttentionModule(filters=4),
                                        ATTENTION_INPUT),
    "MultiAttentionModule-training": _layer_case(
        lambda: _layers().MultiAttentionModule(filters=4), ATTENTION_INPUT, training=True),
    "BoostedLinear": _layer_case(lambda: _layers().BoostedLinear(3, 30.0, l2=0.1), (4, 5),
                                 low=-1.0),
    "mam_cnn": _model_case({"image_size": 40, "image_width": 24, "dense_units": 16, **GENDER},
                           ("flb_1", "mam", "flb_2", "dense_bn", "labels"), _images),
    "mam_cnn_pitch": _model_case(
        {"image_size": 40, "image_width": 24, "dense_units": 16, "pitch_input": True,
         **GENDER}, ("image_logits", "pitch_logits", "labels"),
        lambda: {"spectrogram": _images()[:1].repeat(3, 0), "pitch": _statistics()}),
    "voice_stats": _model_case({"architecture": "voice_stats", "pitch_input": True, **GENDER},
                               ("pitch_scale", "logits", "labels"),
                               lambda: {"pitch": _statistics()}),
}


def _rounded(values) -> list[float]:
    return [float(f"{v:.8g}") for v in np.ravel(values)]  # float32 holds ~7 digits


def summary(value: np.ndarray) -> dict:
    """What the fixture keeps of one output [..., channels]."""
    value = np.asarray(value, np.float64)
    flat = value.reshape(-1)
    where = np.linspace(0, flat.size - 1, min(SAMPLES, flat.size)).round().astype(int)
    return {"shape": list(value.shape), "mean": _rounded(flat.mean())[0],
            "std": _rounded(flat.std())[0],
            "channel_mean": _rounded(value.reshape(-1, value.shape[-1]).mean(axis=0)),
            "positions": where.tolist(), "values": _rounded(flat[where])}


def compute(name: str) -> dict[str, dict]:
    """The summaries of case ``name``'s outputs, ``{output name: summary}``."""
    return {key: summary(value) for key, value in CASES[name]().items()}


def check(name: str) -> None:
    """Asserts that case ``name`` gives the stored outputs (AssertionError says which)."""
    stored = json.loads(FIXTURE.read_text())[name]
    actual = compute(name)
    assert sorted(actual) == sorted(stored), f"{name}: outputs {sorted(actual)}"
    for key, want in stored.items():
        got = actual[key]
        where = f"{name}/{key}"
        assert got["shape"] == want["shape"], f"{where}: shape {got['shape']}, stored " \
                                              f"{want['shape']}"
        assert got["positions"] == want["positions"], where
        scale = max(want["std"], abs(want["mean"]), 1e-6)
        atol = RELATIVE_TOLERANCE * scale
        for field in ("mean", "std", "channel_mean", "values"):
            np.testing.assert_allclose(got[field], want[field], rtol=RELATIVE_TOLERANCE,
                                       atol=atol, err_msg=f"{where}: {field}")


def regenerate() -> None:
    """Recomputes every case and rewrites the fixture (atomically)."""
    from agegender import atomic

    content = {name: compute(name) for name in CASES}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    # One line per output: a regenerated fixture's diff names the outputs that moved.
    lines = [f"  {json.dumps(name)}: {{\n" + ",\n".join(
        f"    {json.dumps(key)}: {json.dumps(value)}" for key, value in case.items()) + "}"
        for name, case in content.items()]
    atomic.write_text(FIXTURE, "{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(content)} cases to {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        sys.exit(f"usage: python {Path(__file__).name} --regen  (rewrites {FIXTURE})")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    regenerate()

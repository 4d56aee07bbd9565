"""``--architecture=voice_stats``: a logistic regression on a clip's 45 voice statistics,
trained, saved, loaded, evaluated and served like the MAM-CNN, without ever computing an
image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agegender.voice_stats import STAT_NAMES


@pytest.fixture(scope="module")
def stats_model(tiny_dataset, tmp_path_factory):
    from agegender.config import ModelParams, TrainParams
    from agegender.training import train

    out = tmp_path_factory.mktemp("voice_stats_model")
    result = train(tiny_dataset, "gender", train_params=TrainParams(
        batch_size=8, num_epochs=15, learning_rate=1e-3, seed=1, class_weight="balanced"),
        models_dir=out / "models", results_dir=out / "results", verbose=0,
        model_params=ModelParams(architecture="voice_stats", pitch_input=True))
    return {**result, "out": out}


@pytest.fixture
def no_images(monkeypatch):
    """Makes any spectrogram computation fail the test."""
    from agegender import features

    def refuse(*args, **kwargs):
        raise AssertionError("a voice_stats model computed a spectrogram image")

    monkeypatch.setattr(features, "spectrogram_images", refuse)


def _test_audio(dataset) -> list[str]:
    from agegender.preprocess import read_clean_manifest

    manifest = read_clean_manifest(dataset, "test")
    return [str(dataset / path) for path in manifest["audio_path"]]


def test_model_params_refuse_what_a_voice_stats_model_cannot_be():
    from agegender.config import ModelParams
    from agegender.errors import ParameterError

    with pytest.raises(ParameterError, match="architecture='resnet' is not one of"):
        ModelParams(architecture="resnet")
    with pytest.raises(ParameterError, match="voice_stats' needs pitch_input"):
        ModelParams(architecture="voice_stats")
    with pytest.raises(ParameterError, match="image_dropout=0.5 needs the MAM-CNN"):
        ModelParams(architecture="voice_stats", pitch_input=True, image_dropout=0.5)


def test_the_model_is_a_linear_layer_on_the_statistics_with_l2_on_their_own_scale():
    import keras

    from agegender.config import ModelParams
    from agegender.model import PITCH_BOOST, build_model, input_kinds

    model = build_model(ModelParams(architecture="voice_stats", pitch_input=True,
                                    num_classes=2, task="gender",
                                    class_names=("male", "female"), l2=0.01))
    assert [i.name for i in model.inputs] == ["pitch"] and model.name == "voice_stats_gender"
    assert input_kinds(model) == ("pitch",)
    assert model.count_params() - sum(
        int(np.prod(w.shape)) for w in model.non_trainable_weights) == len(STAT_NAMES) * 2 + 2
    # Untrained (zero kernel), every clip gets 0.5/0.5.
    statistics = np.random.default_rng(0).normal(size=(3, len(STAT_NAMES))).astype("float32")
    np.testing.assert_allclose(model.predict({"pitch": statistics}, verbose=0), 0.5)
    # Logits are PITCH_BOOST * (z @ kernel + bias) for the standardised statistics z; the
    # penalty is l2 * |PITCH_BOOST * kernel|^2, the bias unpenalised.
    linear = model.get_layer("logits")
    kernel = np.full(linear.kernel.shape, 0.01, "float32")
    linear.kernel.assign(kernel)
    linear.bias.assign(np.array([0.02, -0.02], "float32"))
    (penalty,) = model.losses
    assert float(keras.ops.convert_to_numpy(penalty)) == pytest.approx(
        0.01 * np.sum((kernel * PITCH_BOOST) ** 2), rel=1e-5)
    from agegender.voice_stats import STAT_CENTRE, STAT_SPREAD

    z = (statistics - np.array(STAT_CENTRE)) / np.array(STAT_SPREAD)
    logits = PITCH_BOOST * (z @ kernel + np.array([0.02, -0.02]))
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict({"pitch": statistics}, verbose=0), expected,
                               rtol=1e-4)


def test_boosted_linear_checks_its_arguments_and_round_trips():
    import keras

    from agegender.errors import ParameterError
    from agegender.layers import BoostedLinear

    with pytest.raises(ParameterError, match="boost=0.0 must be a finite number > 0"):
        BoostedLinear(2, 0.0)
    with pytest.raises(ParameterError, match="l2=-1.0 must be a finite number >= 0"):
        BoostedLinear(2, 30.0, -1.0)
    layer = BoostedLinear(3, 30.0, 0.01)
    copy = BoostedLinear.from_config(layer.get_config())
    assert (copy.units, copy.boost, copy.l2) == (3, 30.0, 0.01)
    assert keras.ops.shape(layer(np.zeros((4, 5), "float32"))) == (4, 3)


def test_it_trains_on_the_statistics_and_learns_gender(stats_model, tiny_dataset):
    import keras

    from agegender.model import input_kinds

    plain = keras.models.load_model(stats_model["keras"], safe_mode=True)
    assert input_kinds(plain) == ("pitch",)
    # The synthetic voices differ in F0: the statistics alone separate them.
    assert stats_model["best_score"] >= 0.9


def test_predictions_agree_across_formats_and_no_image_is_computed(
        stats_model, tiny_dataset, no_images):
    import keras

    from agegender import AgeGenderDetector
    from agegender.checkpoints import export_saved_model, open_model
    from agegender.model_inputs import file_inputs, stack

    audio = _test_audio(tiny_dataset)[:4]
    keras_model = open_model(stats_model["keras"])
    assert keras_model.inputs == ("pitch",)
    inputs = stack([file_inputs(path, keras_model.features, keras_model.inputs)
                    for path in audio])
    assert list(inputs) == ["pitch"] and inputs["pitch"].shape == (4, len(STAT_NAMES))
    expected = keras_model.predict(inputs)
    plain = keras.models.load_model(stats_model["keras"], safe_mode=True)
    np.testing.assert_allclose(plain.predict(inputs, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(open_model(stats_model["h5"]).predict(inputs), expected,
                               atol=1e-6)
    exported = export_saved_model(stats_model["keras"], stats_model["out"] / "saved")
    meta = json.loads((exported / "agegender.json").read_text())
    assert meta["inputs"] == ["pitch"] and meta["input_shape"] == []
    saved = open_model(exported)
    assert saved.inputs == ("pitch",)
    np.testing.assert_allclose(saved.predict(inputs), expected, atol=1e-5)
    detector = AgeGenderDetector(stats_model["keras"], max_crops=3, min_voiced=0)
    assert "voice statistics" in detector.scoring() and "crop" not in detector.scoring()
    results = detector.predict(audio)
    for result, row in zip(results, expected, strict=True):
        assert result["probabilities"]["male"] == pytest.approx(float(row[0]), abs=1e-6)


def test_it_evaluates_on_the_test_split_and_draws_a_timeline(stats_model, tiny_dataset,
                                                              tmp_path, no_images):
    import synth

    from agegender import AgeGenderDetector
    from agegender.evaluation import evaluate

    result = evaluate(tiny_dataset, stats_model["keras"], "gender", results_dir=tmp_path,
                      n_resamples=50)
    assert result["n"] == 12 and result["balanced_accuracy"] >= 0.75
    wave = np.concatenate([synth.voice("male", "twenties", seed=1, seconds=4.0),
                           synth.voice("female", "twenties", seed=2, seconds=4.0)])
    path = synth.write_audio(tmp_path / "two.wav", wave)
    segments = AgeGenderDetector(stats_model["keras"]).timeline(path)["segments"]
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(8.0, abs=1e-3)
    assert segments[0].label == "male" and segments[-1].label == "female"


def test_train_cli_refuses_image_flags_for_voice_stats(tiny_dataset, tmp_path, capsys):
    import train

    status = train.main([f"--dataset_dir={tiny_dataset}", "--cls_task=gender",
                         "--architecture=voice_stats", "--augment",
                         f"--models_dir={tmp_path}"])
    assert status != 0
    err = capsys.readouterr().err
    assert "--augment: not for --architecture=voice_stats" in err
    assert not (tmp_path / "gender").exists()


def test_a_resume_with_the_other_architecture_is_refused_by_name(tiny_dataset, tmp_path):
    from agegender.config import ModelParams, TrainParams
    from agegender.errors import ParameterError
    from agegender.training import train

    settings = dict(train_params=TrainParams(batch_size=8, num_epochs=2, seed=1),
                    models_dir=tmp_path / "models", results_dir=tmp_path / "results",
                    verbose=0)

    import keras

    class Crash(keras.callbacks.Callback):  # after epoch 1's backup, as a kill would
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_dataset, "gender", extra_callbacks=[Crash()], **settings,
              model_params=ModelParams(architecture="voice_stats", pitch_input=True))
    with pytest.raises(ParameterError, match="--architecture voice_stats → mam_cnn"):
        train(tiny_dataset, "gender", **settings)


def test_bfloat16_copy_keeps_the_statistics_in_float32(stats_model, tiny_dataset):
    from agegender.checkpoints import open_model
    from agegender.model_inputs import file_inputs, stack

    audio = _test_audio(tiny_dataset)[:2]
    exact = open_model(stats_model["keras"])
    fast = open_model(stats_model["keras"], precision="bfloat16")
    assert fast.inputs == ("pitch",)
    inputs = stack([file_inputs(path, exact.features, exact.inputs) for path in audio])
    np.testing.assert_allclose(fast.predict(inputs), exact.predict(inputs), atol=1e-5)

"""The ``--pitch_input`` model variant: voice statistics (F0 and spectral envelope) computed
once per clip by the same function in preprocessing and inference, stored in the PNG and the
shards, read by the model beside the spectrogram, in every model format."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TINY_IMAGE
from synth import tone, voice

from agegender.f0 import PITCH_FEATURES, PITCH_REFERENCE_HZ, pitch_features
from agegender.voice_stats import (
    ENVELOPE_CENTRE,
    ENVELOPE_FEATURES,
    STAT_CENTRE,
    STAT_NAMES,
    STAT_SPREAD,
    envelope_features,
    envelope_frames,
    voice_statistics,
)


def test_pitch_features_of_a_steady_voice_and_of_noise():
    low = pitch_features(tone(120.0, seconds=1.0), 16_000)
    assert low.dtype == np.float32 and low.shape == (len(PITCH_FEATURES),)
    assert low[0] == pytest.approx(np.log2(120.0 / PITCH_REFERENCE_HZ), abs=0.01)
    assert low[1] <= low[0] <= low[2]
    assert low[3] > 0.8 and low[4] == 1.0  # nearly every frame voiced, F0 measured
    high = pitch_features(voice("female", "twenties", seed=3), 16_000)
    assert high[0] > 0.4  # ~220 Hz: about half an octave above 150 Hz
    noise = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    assert pitch_features(noise, 16_000).tolist() == pytest.approx([0, 0, 0, 0, 0], abs=0.05)


def test_envelope_ignores_the_level_and_follows_the_spectral_tilt():
    import soxr
    from scipy.signal import butter, sosfilt

    assert len(STAT_NAMES) == len(STAT_CENTRE) == len(STAT_SPREAD) == 45
    speech = voice("male", "thirties", seed=4)
    envelope = envelope_features(speech, 16_000)
    assert envelope.dtype == np.float32 and envelope.shape == (len(ENVELOPE_FEATURES),)
    # c0 (the level) is left out: a quieter recording has the same envelope.
    np.testing.assert_allclose(envelope_features(speech * 0.05, 16_000), envelope, atol=0.01)
    # Every preset's envelope is taken at 8 kHz: the voice preset's 8 kHz clip and the
    # paper preset's 16 kHz one give the same values.
    at_8k = soxr.resample(speech, 16_000, 8_000, quality="HQ")
    np.testing.assert_allclose(envelope_features(at_8k, 8_000), envelope, atol=1e-3)
    noise = np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1
    dull = sosfilt(butter(4, 800, fs=16_000, output="sos"), noise).astype(np.float32)
    # MFCC 1 weighs the low bands against the high ones: higher for a duller sound.
    assert envelope_features(dull, 16_000)[0] > envelope_features(noise, 16_000)[0] + 10
    silence = np.zeros(16_000, np.float32)
    assert envelope_features(silence, 16_000).tolist() == pytest.approx(list(ENVELOPE_CENTRE))
    # The frames it summarises: 10 ms frames of the loud part, 20 coefficients each.
    frames = envelope_frames(speech, 16_000)
    assert frames.dtype == np.float32 and frames.shape[1] == 20
    assert 0 < frames.shape[0] <= len(speech) / 160 + 1
    np.testing.assert_allclose(frames.std(axis=0), envelope[20:], rtol=1e-5, atol=1e-5)
    assert envelope_frames(silence, 16_000).shape == (0, 20)
    both = voice_statistics(speech, 16_000)
    np.testing.assert_array_equal(both[:len(PITCH_FEATURES)], pitch_features(speech, 16_000))
    np.testing.assert_array_equal(both[len(PITCH_FEATURES):], envelope)


def _audio(dataset, split: str, key: str):
    from agegender.preprocess import read_clean_manifest

    manifest = read_clean_manifest(dataset, split).set_index("key")
    return dataset / manifest.loc[key, "audio_path"]


def test_the_shards_hold_what_inference_computes_for_the_clip(tiny_dataset):
    from agegender.config import FeatureParams
    from agegender.model_inputs import file_inputs
    from agegender.pipeline import split_folder
    from agegender.preprocess import clip_file, read_values
    from agegender.tfrecords import decode_example, read_index

    folder = split_folder(tiny_dataset, "dev")
    index = read_index(folder)
    assert index["pitch_features"] == list(STAT_NAMES)
    params = FeatureParams(**index["features"])
    record = next(iter(_records(folder / index["shards"][0])))
    example = decode_example(record)
    key = example["clip/key"].decode()
    stored = np.frombuffer(example["clip/pitch"], "<f4")
    assert np.array_equal(stored, read_values(clip_file(tiny_dataset, "dev", key, "pitch")))
    served = file_inputs(_audio(tiny_dataset, "dev", key), params, ("spectrogram", "pitch"))
    np.testing.assert_array_equal(stored, served["pitch"][0])


def _records(path):
    import tensorflow as tf

    return (r.numpy() for r in tf.data.TFRecordDataset(str(path)))


def test_each_input_is_paid_only_when_asked_and_a_missing_file_is_made_on_resume(tmp_path):
    """--inputs pitch renders no PNG; adding spectrogram later makes only the PNGs; a lost
    file is remade and no other file is touched."""
    from synth import make_raw_corpus

    from agegender.config import FeatureParams, PreprocessParams
    from agegender.errors import DatasetError
    from agegender.pipeline import make_dataset
    from agegender.preprocess import preprocess

    root = make_raw_corpus(tmp_path / "corpus", per_group={"train": 1, "dev": 1, "test": 1})
    features = FeatureParams(image_size=TINY_IMAGE)

    def run(inputs):
        preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1,
                                                 inputs=inputs),
                   features=features, results_dir=tmp_path / "r")

    run(("pitch",))
    assert not list(root.glob("Spectrograms/*/*.png"))
    statistics = sorted(root.glob("Spectrograms/*/*.pitch.f32"))
    assert statistics and all(p.stat().st_size == 4 * len(STAT_NAMES) for p in statistics)
    data, index = make_dataset(root, "train", "gender", batch_size=4, training=False,
                               inputs=("pitch",))
    assert index["inputs"] == ["pitch"]
    (inputs, _), = list(data.take(1))
    assert list(inputs) == ["pitch"]
    with pytest.raises(DatasetError, match="hold no spectrograms.*--inputs naming spectrogram"):
        make_dataset(root, "train", "gender", batch_size=4, training=False)
    stamps = {p: p.stat().st_mtime_ns for p in statistics}
    run(("spectrogram", "pitch"))
    assert len(list(root.glob("Spectrograms/*/*.png"))) == len(statistics)
    assert {p: p.stat().st_mtime_ns for p in statistics} == stamps  # kept, not remade
    lost = statistics[0]
    lost.unlink()
    run(("spectrogram", "pitch"))
    assert lost.stat().st_size == 4 * len(STAT_NAMES)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in statistics[1:])


def test_the_default_computes_no_statistics_and_a_pitch_model_names_the_flag(tmp_path,
                                                                           monkeypatch):
    """train.py's default model reads only the image, so preprocessing's default computes
    no voice statistics (never calls them), and a model that reads them is told which
    --inputs to re-run with."""
    from synth import make_raw_corpus

    from agegender import voice_stats
    from agegender.config import FeatureParams, PreprocessParams
    from agegender.errors import DatasetError
    from agegender.pipeline import make_dataset
    from agegender.preprocess import preprocess

    def refused(*args, **kwargs):
        raise AssertionError("voice statistics computed for the default --inputs")

    monkeypatch.setattr(voice_stats, "voice_statistics", refused)
    root = make_raw_corpus(tmp_path / "corpus", per_group={"train": 1, "dev": 1, "test": 1})
    params = PreprocessParams(dataset_type="raw", num_workers=1)
    assert params.inputs == ("spectrogram",)
    preprocess(root, params=params, features=FeatureParams(image_size=TINY_IMAGE),
               results_dir=tmp_path / "r")
    assert list(root.glob("Spectrograms/*/*.png"))
    assert not list(root.glob("Spectrograms/*/*.pitch.f32"))
    _, index = make_dataset(root, "train", "gender", batch_size=4, training=False)
    assert index["inputs"] == ["spectrogram"] and "pitch_features" not in index
    for kinds in (("spectrogram", "pitch"), ("pitch",)):
        with pytest.raises(DatasetError, match=r"no voice statistics \(made with --inputs "
                           r"spectrogram\).*--inputs naming pitch"):
            make_dataset(root, "train", "gender", batch_size=4, training=False, inputs=kinds)


@pytest.fixture(scope="module")
def pitch_model(tiny_dataset, tmp_path_factory):
    from agegender.config import ModelParams, TrainParams
    from agegender.training import train

    out = tmp_path_factory.mktemp("pitch_model")
    result = train(tiny_dataset, "gender", train_params=TrainParams(
        batch_size=8, num_epochs=1, learning_rate=1e-3, seed=1), image_size=TINY_IMAGE,
        models_dir=out / "models", results_dir=out / "results", verbose=0,
        model_params=ModelParams(pitch_input=True))
    return {**result, "out": out}


def test_pitch_model_predicts_alike_from_keras_h5_savedmodel_and_the_detector(
        pitch_model, tiny_dataset):
    import keras

    import agegender  # noqa: F401  (registers the custom layers)
    from agegender import AgeGenderDetector
    from agegender.checkpoints import export_saved_model, open_model
    from agegender.model import input_kinds
    from agegender.model_inputs import file_inputs

    plain = keras.models.load_model(pitch_model["keras"], safe_mode=True)
    assert input_kinds(plain) == ("spectrogram", "pitch")
    assert sorted(i.name for i in plain.inputs) == ["pitch", "spectrogram"]
    audio = str(_audio(tiny_dataset, "test", _first_key(tiny_dataset)))
    keras_model = open_model(pitch_model["keras"])
    assert keras_model.inputs == ("spectrogram", "pitch")
    inputs = file_inputs(audio, keras_model.features, keras_model.inputs)
    expected = keras_model.predict(inputs)
    direct = plain.predict(inputs, verbose=0)
    np.testing.assert_allclose(expected, direct, atol=1e-6)
    h5_model = open_model(pitch_model["h5"])
    np.testing.assert_allclose(h5_model.predict(inputs), expected, atol=1e-6)
    exported = export_saved_model(pitch_model["keras"], pitch_model["out"] / "saved")
    assert json.loads((exported / "agegender.json").read_text())["inputs"] == [
        "spectrogram", "pitch"]
    saved = open_model(exported)
    assert saved.inputs == ("spectrogram", "pitch")
    np.testing.assert_allclose(saved.predict(inputs), expected, atol=1e-5)
    # The second input matters: another clip's statistics give other probabilities.
    moved = {**inputs, "pitch": inputs["pitch"] + 0.5}
    assert not np.allclose(keras_model.predict(moved), expected, atol=1e-6)
    (result,) = AgeGenderDetector(pitch_model["keras"], max_crops=1,
                                  min_voiced=0).predict(audio)
    assert result["probabilities"][keras_model.class_names[0]] == pytest.approx(
        float(expected[0, 0]), abs=1e-6)


def _first_key(dataset):
    from agegender.preprocess import read_clean_manifest

    return str(read_clean_manifest(dataset, "test")["key"].iloc[0])


def test_pitch_model_evaluates_on_the_test_split(pitch_model, tiny_dataset, tmp_path):
    from agegender.evaluation import evaluate

    result = evaluate(tiny_dataset, pitch_model["keras"], "gender", results_dir=tmp_path,
                      n_resamples=50)
    assert 0.0 <= result["balanced_accuracy"] <= 1.0 and result["n"] == 12


def test_shards_without_pitch_are_refused_by_name_for_a_pitch_model(tiny_dataset, tmp_path):
    from agegender.errors import DatasetError
    from agegender.pipeline import make_dataset, split_folder
    from agegender.tfrecords import INDEX_NAME

    copy = tmp_path / "old"
    shutil.copytree(tiny_dataset / "TFRecord", copy / "TFRecord")
    index_path = split_folder(copy, "train") / INDEX_NAME
    index = json.loads(index_path.read_text())
    index["pitch_features"] = list(PITCH_FEATURES)  # the version before the envelope
    index_path.write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="hold 5 other voice statistics.*re-run"):
        make_dataset(copy, "train", "gender", batch_size=4, training=True,
                     inputs=("spectrogram", "pitch"))
    del index["pitch_features"]
    index_path.write_text(json.dumps(index))
    make_dataset(copy, "train", "gender", batch_size=4, training=True)  # the paper's model
    with pytest.raises(DatasetError, match="no voice statistics.*re-run"):
        make_dataset(copy, "train", "gender", batch_size=4, training=True,
                     inputs=("spectrogram", "pitch"))


def test_pitch_model_timeline_reads_each_windows_f0(pitch_model, tmp_path, monkeypatch):
    import synth

    from agegender import AgeGenderDetector, features

    wave = np.concatenate([synth.voice("male", "twenties", seed=1, seconds=4.0),
                           synth.voice("female", "twenties", seed=2, seconds=4.0)])
    path = synth.write_audio(tmp_path / "two.wav", wave)
    seen = []
    original = features.waveform_pitch
    monkeypatch.setattr(features, "waveform_pitch",
                        lambda piece, params: seen.append(original(piece, params)) or seen[-1])
    result = AgeGenderDetector(pitch_model["keras"]).timeline(path)
    assert result["segments"][0].start == 0.0
    assert result["segments"][-1].end == pytest.approx(8.0, abs=1e-3)
    medians = [values[0] for values in seen if values[4] == 1.0]
    # Windows over the man read ~120 Hz, windows over the woman ~220 Hz.
    assert min(medians) < np.log2(130 / 150) and max(medians) > np.log2(200 / 150)


def test_image_dropout_model_trains_and_loads_alike_from_keras_h5_and_savedmodel(
        tiny_dataset, tmp_path):
    import keras

    from agegender.checkpoints import export_saved_model, open_model
    from agegender.config import ModelParams, TrainParams
    from agegender.errors import ParameterError
    from agegender.layers import ExampleDropout
    from agegender.training import train

    with pytest.raises(ParameterError, match="image_dropout=0.5 needs pitch_input"):
        ModelParams(image_dropout=0.5)
    result = train(tiny_dataset, "gender", train_params=TrainParams(
        batch_size=8, num_epochs=1, learning_rate=1e-3, seed=1), image_size=TINY_IMAGE,
        models_dir=tmp_path / "models", results_dir=tmp_path / "results", verbose=0,
        model_params=ModelParams(pitch_input=True, image_dropout=0.5))
    plain = keras.models.load_model(result["keras"], safe_mode=True)
    (dropout,) = [layer for layer in plain.layers if isinstance(layer, ExampleDropout)]
    assert dropout.rate == 0.5
    audio = str(_audio(tiny_dataset, "test", _first_key(tiny_dataset)))
    keras_model = open_model(result["keras"])
    from agegender.model_inputs import file_inputs

    inputs = file_inputs(audio, keras_model.features, keras_model.inputs)
    expected = keras_model.predict(inputs)
    # Inference never drops: repeated calls agree, and every format gives the same.
    np.testing.assert_array_equal(keras_model.predict(inputs), expected)
    np.testing.assert_allclose(open_model(result["h5"]).predict(inputs), expected,
                               atol=1e-6)
    saved = open_model(export_saved_model(result["keras"], tmp_path / "saved"))
    np.testing.assert_allclose(saved.predict(inputs), expected, atol=1e-5)


def test_embeddings_are_refused_below_the_encoders_rate(tmp_path):
    from agegender.config import FeatureParams, PreprocessParams
    from agegender.errors import ParameterError
    from agegender.preprocess import preprocess

    with pytest.raises(ParameterError, match="embedding needs --sample_rate 16000.*not 8000"):
        preprocess(tmp_path, params=PreprocessParams(inputs=("pitch", "embedding")),
                   features=FeatureParams.preset("voice"), results_dir=tmp_path / "r")

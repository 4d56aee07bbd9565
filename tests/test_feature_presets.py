"""The ``voice`` feature preset: shape, silence trimming, level and channel invariance, crops,
and old feature records loading unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soxr
import synth
from test_features import lut_index

from agegender.channel import gsm, mu_law, telephone
from agegender.config import FEATURE_PRESETS, FeatureParams
from agegender.errors import ParameterError
from agegender.features import (clip_image, clip_images, crop_starts, feature_matrix,
                                speech_span, spectrogram_image, spectrogram_images)

VOICE = FeatureParams.preset("voice")
PAPER = FeatureParams.preset("paper")
RATE = 44_100


def image_at(wave: np.ndarray, rate: int, params: FeatureParams) -> np.ndarray:
    """The scalar image (0-1, [H, W]) of a waveform at ``rate``, as ``load_clip`` would
    resample it."""
    if rate != params.sample_rate:
        wave = soxr.resample(wave, rate, params.sample_rate, quality="HQ")
    return lut_index(spectrogram_image(wave.astype(np.float32), params)) / 255.0


def test_paper_preset_is_the_defaults_and_unknown_presets_are_refused() -> None:
    assert PAPER == FeatureParams()
    assert FeatureParams.preset("voice", image_size=160).image_shape == (160, 64, 3)
    with pytest.raises(ParameterError, match="feature_preset='phone'"):
        FeatureParams.preset("phone")


def test_old_feature_records_without_the_new_fields_still_load() -> None:
    """Shards and models store ``dataclasses.asdict(FeatureParams)``; records written before
    the voice preset lack its fields and must give the very same features."""
    old_fields = ("feature_type", "sample_rate", "n_fft", "hop_length", "image_size", "n_mels",
                  "n_mfcc", "top_db", "max_duration_s")
    old = {name: value for name, value in dataclasses.asdict(FeatureParams(image_size=32)).items()
           if name in old_fields}
    params = FeatureParams(**old)
    assert params == FeatureParams(image_size=32)
    assert params.image_shape == (32, 32, 3) and params.band_bins == slice(0, 129)
    wave = synth.tone(440.0, seconds=0.5)
    np.testing.assert_array_equal(spectrogram_image(wave, params),
                                  spectrogram_image(wave, FeatureParams(image_size=32)))


@pytest.mark.parametrize(("field", "value"), [("fmin_hz", 5000.0), ("fmax_hz", 9000.0),
                                              ("vad_top_db", -1.0), ("freq_norm", "max"),
                                              ("image_width", 8)])
def test_new_fields_are_validated(field: str, value) -> None:
    with pytest.raises(ParameterError, match=field):
        FeatureParams.preset("voice", **{field: value})


def test_voice_image_shape_and_band(tmp_path) -> None:
    assert VOICE.image_shape == (128, 64, 3)
    assert VOICE.frames_per_second == 25.0
    # 300-3400 Hz at 15.625 Hz a bin: bins 20 (312.5 Hz) to 217 (3390.6 Hz).
    assert VOICE.band_bins == slice(20, 218) and VOICE.freq_bins == 198
    clip = synth.write_audio(tmp_path / "v.wav", synth.voice("female", "twenties", seed=1,
                                                             seconds=1.0, rate=RATE), rate=RATE)
    image = clip_image(clip, VOICE)
    assert image.shape == (128, 64, 3) and image.dtype == np.uint8
    assert feature_matrix(synth.voice("male", "teens", seed=1, rate=8000), VOICE).shape[0] == 198


def test_speech_span_finds_the_loud_frames() -> None:
    magnitude = np.full((4, 20), 1e-4, np.float32)
    magnitude[:, 6:11] = 1.0
    assert speech_span(magnitude, 40.0) == slice(6, 11)
    assert speech_span(magnitude, 40.0, margin=2) == slice(4, 13)
    assert speech_span(magnitude, 0.0) == slice(0, 20)  # off
    assert speech_span(np.zeros((4, 20), np.float32), 40.0) == slice(0, 20)  # silent clip


def test_vad_trims_leading_and_trailing_silence() -> None:
    speech = synth.voice("male", "thirties", seed=3, seconds=1.2, rate=8000)
    silence = np.zeros(8000, np.float32)
    padded = np.concatenate([silence, speech, 0.5 * silence])  # 1 s + 1.2 s + 1 s
    trimmed = feature_matrix(padded, VOICE)
    # 1.2 s of speech at 25 frames a second, plus the VAD margin and the window's spill.
    assert 30 <= trimmed.shape[1] <= 30 + 2 * 3 + 2
    # The picture starts with the speech: only the VAD margin (3 frames) and the window's
    # spill before it, where without the VAD a second of silence (25 columns) would be.
    # (Seen without the envelope normalisation, which draws silence mid-scale.)
    dark = dataclasses.replace(VOICE, freq_norm="none")
    assert first_loud_column(image_at(padded, 8000, dark)) <= 4
    untrimmed = dataclasses.replace(dark, vad_top_db=0.0)
    assert feature_matrix(padded, untrimmed).shape[1] > 80
    assert first_loud_column(image_at(padded, 8000, untrimmed)) >= 12  # centre crop of 80


def first_loud_column(image: np.ndarray) -> int:
    """Index of the first column whose mean is above a quarter of the loudest column's."""
    columns = image.mean(axis=0)  # [W]
    return int(np.flatnonzero(columns > 0.25 * columns.max())[0])


def test_level_normalisation_makes_the_gain_irrelevant() -> None:
    wave = synth.voice("female", "thirties", seed=4, seconds=2.0, rate=RATE)
    for params in (VOICE, PAPER):
        loud, quiet = image_at(wave, RATE, params), image_at(0.05 * wave, RATE, params)
        # Float rounding in the resampler may move a pixel by one colour level.
        np.testing.assert_allclose(loud, quiet, rtol=0, atol=1.01 / 255)
        assert np.mean(loud != quiet) < 0.001


def _channel_and_speaker_distance(params: FeatureParams, codec: str) -> tuple[float, float]:
    """Mean |image difference| of a 44.1 kHz voice and the same voice through a telephone
    line, and of a male and a female voice, both at 44.1 kHz."""
    male = synth.voice("male", "thirties", seed=1, seconds=3.0, rate=RATE)
    female = synth.voice("female", "thirties", seed=2, seconds=3.0, rate=RATE)
    channel = np.mean([np.abs(image_at(wave, RATE, params)
                              - image_at(telephone(wave, RATE, codec=codec), 8000, params)).mean()
                       for wave in (male, female)])
    speaker = np.abs(image_at(male, RATE, params) - image_at(female, RATE, params)).mean()
    return float(channel), float(speaker)


@pytest.mark.parametrize(("codec", "limit"), [("mulaw", 0.25), ("gsm", 0.75)])
def test_voice_images_survive_the_telephone_and_paper_images_do_not(codec: str,
                                                                     limit: float) -> None:
    """The yardstick is the speaker: a telephone line must move the picture less than
    swapping a male voice for a female one does (``limit`` × that distance), where for the
    paper's features it moves it further. Measured (mean |difference| of 0-1 images) on
    these synthetic voices: voice 0.019 (μ-law) / 0.067 (GSM) against a speaker distance of
    0.137; paper 0.229 / 0.220 against 0.051 (the empty top half of the 8 kHz clip
    outweighs the voice). GSM's coding noise fills the gaps between the harmonics of a
    noise-free synthetic tone, hence the looser GSM limit."""
    voice_channel, voice_speaker = _channel_and_speaker_distance(VOICE, codec)
    paper_channel, paper_speaker = _channel_and_speaker_distance(PAPER, codec)
    assert voice_channel < limit * voice_speaker
    assert paper_channel > paper_speaker
    assert paper_channel > 2 * voice_channel


def test_telephone_simulation() -> None:
    wave = synth.voice("male", "thirties", seed=1, seconds=1.0, rate=RATE)
    line = telephone(wave, RATE, codec="none")
    assert line.shape == (8000,) and line.dtype == np.float32
    def f0_to_band(signal: np.ndarray, rate: int) -> float:
        spectrum = np.abs(np.fft.rfft(signal))  # 1 Hz bins (1-s signals)
        return float(spectrum[100:140].max() / spectrum[300:3400].max())

    assert f0_to_band(line, 8000) < 0.1 * f0_to_band(wave, RATE)  # F0 down by > 20 dB
    assert np.abs(mu_law(line) - line).max() < 0.02
    assert gsm(line).shape == line.shape
    with pytest.raises(ParameterError, match="codec"):
        telephone(wave, RATE, codec="amr")


def test_crop_starts() -> None:
    assert crop_starts(40, 64) == [0]  # short: one crop, padded
    assert crop_starts(100, 64) == [18]  # one crop: the centre
    assert crop_starts(100, 64, max_crops=3) == [0, 36]  # two crops cover 100 frames
    assert crop_starts(300, 64, max_crops=3) == [0, 118, 236]
    with pytest.raises(ParameterError, match="max_crops"):
        crop_starts(100, 64, max_crops=0)


def test_fixed_time_scale_crops_long_clips_and_pads_short_ones(tmp_path) -> None:
    long = synth.voice("female", "twenties", seed=5, seconds=6.0, rate=8000)
    crops = spectrogram_images(long, VOICE, max_crops=3)
    assert crops.shape == (3, 128, 64, 3)
    np.testing.assert_array_equal(spectrogram_images(long, VOICE)[0],
                                  spectrogram_image(long, VOICE))
    short = synth.voice("female", "twenties", seed=5, seconds=1.0, rate=8000)
    image = lut_index(spectrogram_image(short, VOICE))
    assert np.all(image[:, 40:] == 0)  # 1 s ≈ 30 columns of speech, then padding
    path = synth.write_audio(tmp_path / "long.wav", long, rate=8000)
    assert clip_images(path, VOICE, max_crops=3).shape == (3, 128, 64, 3)
    # The paper squeezes any clip into one image.
    assert clip_images(path, PAPER, max_crops=3).shape == (1, 64, 64, 3)


def test_presets_are_feature_params_fields() -> None:
    for name, fields in FEATURE_PRESETS.items():
        assert set(fields) <= {field.name for field in dataclasses.fields(FeatureParams)}, name


def test_envelope_normalisation_removes_a_channel_tilt() -> None:
    """``freq_norm="envelope"`` keeps the harmonics and drops smooth responses: a +6 dB an
    octave tilt (pre-emphasis, a bright microphone) moves the picture far less."""
    import scipy.signal

    wave = synth.voice("male", "thirties", seed=1, seconds=2.0, rate=8000)
    tilted = scipy.signal.lfilter([1.0, -0.9], [1.0], wave).astype(np.float32)
    assert VOICE.freq_norm == "envelope"
    none = FeatureParams.preset("voice", freq_norm="none")
    plain = np.abs(image_at(wave, 8000, none) - image_at(tilted, 8000, none)).mean()
    flat = np.abs(image_at(wave, 8000, VOICE) - image_at(tilted, 8000, VOICE)).mean()
    assert flat < 0.5 * plain

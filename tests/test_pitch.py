"""Median F0 on synthetic voices, silence and noise; threshold fitting; the F0 cache."""

from __future__ import annotations

import numpy as np
import pytest
from synth import write_audio

from agegender import pitch
from agegender.f0 import median_f0
from agegender.synthetic import intoned_voice

RATE = 16_000


def harmonic(f0: float, *, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voiced tone: 10 harmonics of ``f0`` with ±2 % intonation, 30 % pauses, light noise."""
    return intoned_voice(f0, seconds=seconds, rate=RATE, seed=seed, harmonics=10,
                         intonation=0.02, noise=0.01)


@pytest.mark.parametrize("f0", [100.0, 150.0, 220.0])
def test_median_f0_of_harmonic_voices(f0):
    assert median_f0(harmonic(f0), RATE) == pytest.approx(f0, rel=0.03)


def test_median_f0_at_another_rate_and_with_pyin():
    wave = harmonic(130.0)[::2]  # 8 kHz
    assert median_f0(wave, RATE // 2) == pytest.approx(130.0, rel=0.03)
    assert median_f0(harmonic(130.0), RATE, method="pyin") == pytest.approx(130, rel=0.03)


def test_silence_noise_and_tiny_clips_have_no_f0():
    rng = np.random.default_rng(1)
    assert np.isnan(median_f0(np.zeros(2 * RATE, np.float32), RATE))
    assert np.isnan(median_f0(0.1 * rng.standard_normal(2 * RATE), RATE))
    assert np.isnan(median_f0(harmonic(150.0)[:200], RATE))


def test_bad_arguments_are_named():
    with pytest.raises(pitch.ParameterError, match="sample_rate=0"):
        median_f0(np.zeros(100), 0)
    with pytest.raises(pitch.ParameterError, match="method='crepe'"):
        median_f0(harmonic(150.0), RATE, method="crepe")


def test_fitted_threshold_separates_two_groups():
    rng = np.random.default_rng(0)
    male, female = rng.normal(115, 12, 50), rng.normal(210, 20, 40)
    f0 = np.concatenate([male, female, [np.nan]])
    is_female = np.concatenate([np.zeros(50), np.ones(40), [1]]).astype(bool)
    threshold = pitch.fit_threshold(f0, is_female)
    assert male.max() < threshold < female.min()
    predicted = pitch.threshold_predictions(f0, threshold, unvoiced_code=0)
    np.testing.assert_array_equal(predicted[:90], is_female[:90])
    assert predicted[-1] == 0  # unvoiced → the given code


def test_fit_needs_both_genders():
    with pytest.raises(pitch.ParameterError, match="both genders"):
        pitch.fit_threshold(np.array([100.0, 120.0]), np.array([0, 0]))


def test_clip_files_and_the_cache(tmp_path):
    write_audio(tmp_path / "a.wav", harmonic(110.0), RATE)
    write_audio(tmp_path / "b.wav", harmonic(200.0), RATE)
    cache = pitch.cache_path(tmp_path)
    values = pitch.cached_median_f0(["a.wav", "b.wav", "missing.wav"], root=tmp_path,
                                    cache=cache)
    np.testing.assert_allclose(values[:2], [110.0, 200.0], rtol=0.03)
    assert np.isnan(values[2])
    assert cache.read_text().count("\n") == 3  # header + the two decodable clips
    # A cached value is reused as long as size and mtime match: poison it to prove it.
    cache.write_text(cache.read_text().replace(f"{values[0]}", "999.0", 1))
    assert pitch.cached_median_f0(["a.wav"], root=tmp_path, cache=cache)[0] == 999.0
    write_audio(tmp_path / "a.wav", harmonic(120.0)[: RATE], RATE)  # changed file
    assert pitch.cached_median_f0(["a.wav"], root=tmp_path, cache=cache)[0] == pytest.approx(
        120.0, rel=0.03)


def _librosa_envelope(waveform: np.ndarray, rate: int) -> np.ndarray:
    """The envelope statistics as librosa computes them (its STFT, melspectrogram, mfcc):
    the reference ``voice_stats``' own STFT and filterbank product must match."""
    import librosa
    import soxr

    from agegender import voice_stats as vs

    y = soxr.resample(waveform, rate, vs.ENVELOPE_RATE, quality="HQ")
    power = np.abs(librosa.stft(y, n_fft=vs.ENVELOPE_N_FFT, hop_length=vs.ENVELOPE_HOP)) ** 2
    energy = power.sum(axis=0)
    loud = 10 * np.log10(energy / energy.max() + 1e-12) > -vs.ENVELOPE_RANGE_DB
    mel = librosa.feature.melspectrogram(S=power, sr=vs.ENVELOPE_RATE, n_mels=vs.ENVELOPE_MELS,
                                         fmin=50.0, fmax=vs.ENVELOPE_RATE / 2)
    cepstra = librosa.feature.mfcc(S=librosa.power_to_db(mel + 1e-10),
                                   n_mfcc=vs.ENVELOPE_COEFFICIENTS + 1)[1:, loud].T
    return np.concatenate([cepstra.mean(axis=0), cepstra.std(axis=0)])


def test_voice_statistics_match_librosa_on_the_shipped_clips():
    """One shared 8 kHz resample and numpy's STFT keep the statistics within 1e-4 of
    librosa's pipeline with a resample per part, on the repo's real CC0 clips."""
    from pathlib import Path

    from agegender.config import FeatureParams
    from agegender.f0 import pitch_features
    from agegender.features import load_clip
    from agegender.voice_stats import voice_statistics

    clips = sorted((Path(__file__).parents[1] / "models" / "pretrained" / "clips").glob("*.mp3"))
    assert len(clips) >= 3
    params = FeatureParams()
    for clip in clips:
        waveform = load_clip(clip, params)
        expected = np.concatenate([pitch_features(waveform, params.sample_rate),
                                   _librosa_envelope(waveform, params.sample_rate)])
        got = voice_statistics(waveform, params.sample_rate)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=clip.name)

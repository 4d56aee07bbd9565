"""The shared synthetic voices: their pitch is what they claim, and bad arguments are named."""

from __future__ import annotations

import numpy as np
import pytest

from agegender import synthetic
from agegender.errors import ParameterError
from agegender.f0 import median_f0
from agegender.labels import AGES

RATE = 16_000


@pytest.mark.parametrize(("gender", "low", "high"), [("male", 110, 130), ("female", 205, 235)])
def test_voice_pitch_carries_gender(gender, low, high):
    for seed, age in enumerate(AGES):
        f0 = median_f0(synthetic.voice(gender, age, seed=seed, seconds=1.0), RATE)
        assert low < f0 < high, (gender, age, f0)


def test_voices_are_deterministic_in_the_seed_and_differ_between_seeds():
    first = synthetic.random_voice(3, seconds=0.5, rate=RATE)
    assert np.array_equal(first, synthetic.random_voice(3, seconds=0.5, rate=RATE))
    assert not np.array_equal(first, synthetic.random_voice(4, seconds=0.5, rate=RATE))
    assert first.dtype == np.float32 and first.shape == (RATE // 2,)


def test_intoned_voice_has_its_f0_and_pauses():
    wave = synthetic.intoned_voice(150.0, seconds=2.0, rate=RATE)
    assert median_f0(wave, RATE) == pytest.approx(150.0, rel=0.03)
    frames = wave[: len(wave) // 320 * 320].reshape(-1, 320)  # 20-ms frames
    quiet = np.sqrt((frames ** 2).mean(axis=1)) < 0.05  # a pause holds only the noise, σ 0.02
    assert 0.2 < quiet.mean() < 0.45


def test_struck_chord_decays():
    chord = synthetic.struck_chord((220.0, 277.2, 329.6), RATE, RATE, decay_s=0.3)
    assert np.abs(chord[:1600]).max() > 5 * np.abs(chord[-1600:]).max()


def test_bad_arguments_are_named():
    with pytest.raises(ParameterError, match="gender='other'"):
        synthetic.voice("other", "teens", seed=0)
    with pytest.raises(ParameterError, match="envelope has shape"):
        synthetic.harmonic_voice(100.0, seconds=1.0, rate=RATE, rng=np.random.default_rng(0),
                                 envelope=np.ones(10))
    with pytest.raises(ParameterError, match="rate=0"):
        synthetic.harmonic_voice(100.0, seconds=1.0, rate=0, rng=np.random.default_rng(0))

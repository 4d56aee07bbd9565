"""Synthetic voices and music without a voice, as waveforms: the one generator that the tests
and the benchmarks share.

A "voice" here is a harmonic tone (a fundamental and its overtones at 1/k amplitude) whose F0
glides slowly (vibrato or intonation), optionally shaped by syllables, plus light white
noise: enough for the speech gate, the pitch estimators and the feature pipeline to treat it
as voiced sound, and its F0 is known exactly. Unlike the demo corpus (``agegender.demo``,
sentences spoken by espeak-ng) it needs no external program and costs microseconds, so test
fixtures and benchmark corpora are made from it.

Every function is deterministic in its ``seed`` (or ``rng``): the tests assert on what these
produce, so a change of arithmetic here changes test data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agegender.errors import ParameterError
from agegender.labels import AGES, GENDERS


def harmonic_voice(f0: float, *, seconds: float, rate: int, rng: np.random.Generator,
                   harmonics: int = 7, vibrato: float = 0.0, vibrato_hz: float = 5.0,
                   envelope: np.ndarray | None = None, amplitude: float = 0.2,
                   noise: float = 0.01) -> np.ndarray:
    """A harmonic tone with a sinusoidal F0 glide, an optional envelope, and white noise.

    Args:
        f0: mean fundamental frequency, Hz.
        seconds: duration; the clip has ``int(seconds * rate)`` samples.
        rate: sample rate, Hz.
        rng: source of the noise (drawn last, so a caller's earlier draws keep their order).
        harmonics: overtones 1..``harmonics``, the k-th at amplitude 1/k.
        vibrato: relative F0 swing (0.01 = ±1 %).
        vibrato_hz: rate of the swing, Hz.
        envelope: [samples] gain applied to the tone (syllables, gaps), or None.
        amplitude: gain of the tone before the envelope.
        noise: standard deviation of the added white noise.

    Returns:
        float32 waveform, shape [samples].

    Raises:
        ParameterError: ``rate`` or ``harmonics`` is not positive, or ``envelope`` has
            another length than the clip.
    """
    if rate <= 0 or harmonics <= 0:
        raise ParameterError(f"rate={rate} and harmonics={harmonics} must both be > 0")
    samples = int(seconds * rate)
    if envelope is not None and envelope.shape != (samples,):
        raise ParameterError(f"envelope has shape {envelope.shape}, the clip ({samples},)")
    # The argument is spelled (2π·hz·n)/rate, not 2π·hz·(n/rate): the tests' corpora were made
    # that way and stay bit-identical.
    glide = 1 + vibrato * np.sin(2 * np.pi * vibrato_hz * np.arange(samples) / rate)
    phase = 2 * np.pi * np.cumsum(f0 * glide) / rate  # [samples] radians
    wave = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))  # [samples]
    tone = amplitude * wave if envelope is None else amplitude * wave * envelope
    return (tone + noise * rng.standard_normal(phase.shape)).astype(np.float32)


def voice(gender: str, age: str, *, seed: int, seconds: float = 1.0, rate: int = 16_000,
          ) -> np.ndarray:
    """A voice whose pitch carries gender and whose vibrato carries age, shape [samples].

    F0 is ~120 Hz (male) or ~220 Hz (female), ±5 % by seed; the vibrato (5 Hz) swings ±1 %
    for teens up to ±6 % for sixties. Seven harmonics, no pauses.

    Raises:
        ParameterError: ``gender`` or ``age`` is not one of the task's classes.
    """
    if gender not in GENDERS or age not in AGES:
        raise ParameterError(f"gender={gender!r} and age={age!r} must be in {GENDERS} and "
                             f"{AGES}")
    rng = np.random.default_rng(seed)
    f0 = (120.0 if gender == "male" else 220.0) * rng.uniform(0.95, 1.05)
    return harmonic_voice(f0, seconds=seconds, rate=rate, rng=rng,
                          vibrato=0.01 * (AGES.index(age) + 1))


def random_voice(seed: int, *, seconds: float, rate: int) -> np.ndarray:
    """A voice of random F0 (90-260 Hz, ±2 % vibrato at 3-7 Hz) spoken in syllables (2-4 a
    second, never fully silent): a stand-in for a real clip where only cost matters.

    Returns:
        float32 waveform [samples], peak about 0.4.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate  # [samples] s
    f0 = rng.uniform(90.0, 260.0)
    vibrato_hz = rng.uniform(3.0, 7.0)
    syllables = 0.3 + 0.7 * np.sin(np.pi * rng.uniform(2.0, 4.0) * t) ** 2  # [samples]
    return harmonic_voice(f0, seconds=seconds, rate=rate, rng=rng, harmonics=8, vibrato=0.02,
                          vibrato_hz=vibrato_hz, envelope=syllables, amplitude=0.15)


def intoned_voice(f0: float, *, seconds: float = 5.0, rate: int = 16_000, seed: int = 0,
                  harmonics: int = 11, intonation: float = 0.03,
                  noise: float = 0.02) -> np.ndarray:
    """A voice of known F0 with ±``intonation`` glide (3 Hz) and pauses: about 30 % of the
    clip is unvoiced (two syllables a second), where only the noise remains. The pitch
    estimators are measured and tested on it.

    Returns:
        float32 waveform [samples].
    """
    t = np.arange(int(seconds * rate)) / rate  # [samples] s
    voiced = np.sin(2 * np.pi * 2 * t) > -0.4  # [samples] bool
    return harmonic_voice(f0, seconds=seconds, rate=rate, rng=np.random.default_rng(seed),
                          harmonics=harmonics, vibrato=intonation, vibrato_hz=3.0,
                          envelope=voiced, noise=noise)


def struck_chord(frequencies: Sequence[float], samples: int, rate: int, *, decay_s: float,
                 amplitude: float = 1.0) -> np.ndarray:
    """Music without a voice: the notes of a chord, six partials each, struck together
    (10-ms attack) and decaying exponentially with time constant ``decay_s``.

    Returns:
        float64 waveform, shape [samples].
    """
    t = np.arange(samples) / rate  # [samples] s
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / decay_s)
    return amplitude * envelope * sum(np.sin(2 * np.pi * f * k * t) / k
                                      for f in frequencies for k in range(1, 7))


def click_train(per_second: float, *, seconds: float = 3.0, rate: int = 16_000, seed: int = 0,
                ring_hz: float = 1000.0, ring_s: float = 0.01, amplitude: float = 0.5,
                noise: float = 0.0) -> np.ndarray:
    """Impulsive non-voice: clicks (a metronome's or a keyboard's: a struck resonance at
    ``ring_hz`` decaying over ``ring_s``) ``per_second`` times a second, over optional white
    noise (standard deviation ``noise``). A tone burst is periodic within its frame, so
    only its brevity tells it from a voice.

    Returns:
        float32 waveform [samples].
    """
    rng = np.random.default_rng(seed)
    samples = int(round(seconds * rate))
    wave = rng.normal(0.0, noise, samples) if noise else np.zeros(samples)
    t = np.arange(int(ring_s * rate)) / rate  # [ring] s
    click = np.sin(2 * np.pi * ring_hz * t) * np.exp(-t / (ring_s / 3))
    interval = rate / per_second
    for k in range(int(seconds * per_second)):
        start = int(round((k + 0.5) * interval))
        stop = min(samples, start + click.shape[0])
        wave[start:stop] += amplitude * click[:stop - start]
    return wave.astype(np.float32)


def square_wave(frequency: float, *, seconds: float = 3.0, rate: int = 16_000,
                amplitude: float = 0.3) -> np.ndarray:
    """A steady square wave (a buzz: every odd harmonic, 1/k), float32 [samples]."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sign(np.sin(2 * np.pi * frequency * t))).astype(np.float32)


def hum(frequency: float, *, seconds: float = 3.0, rate: int = 16_000, seed: int = 0,
        harmonics: int = 8, amplitude: float = 0.2, noise: float = 0.005) -> np.ndarray:
    """A constant-pitch mains hum: ``frequency`` and its harmonics with fixed random
    amplitudes and phases, over light white noise, float32 [samples]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    wave = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * frequency * k * t
                                                  + rng.uniform(0, 2 * np.pi))
               for k in range(1, harmonics + 1))
    wave = amplitude * wave / np.max(np.abs(wave))
    return (wave + rng.normal(0.0, noise, t.shape[0])).astype(np.float32)

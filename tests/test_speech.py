"""The speech gate: no voice in noise, tones, music and silence; a voice in speech; clips
the decoder would stretch, cut or barely hear are refused with one line."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
import synth

from agegender import speech
from agegender.config import FeatureParams
from agegender.errors import AudioError, ParameterError
from agegender.speech import NoSpeechError, load_speech

RATE = 16_000
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def non_speech() -> dict[str, np.ndarray]:
    """3-s clips without a voice, [samples] at 16 kHz."""
    rng = np.random.default_rng(0)
    samples = 3 * RATE
    return {
        "dc": np.full(samples, 0.3, np.float32),
        "dither": (rng.integers(-1, 2, samples) / 32768).astype(np.float32),
        "white_noise": (0.1 * rng.standard_normal(samples)).astype(np.float32),
        "rumble": (0.002 * np.cumsum(rng.standard_normal(samples))).astype(np.float32),
        "sine_150hz": synth.tone(150.0, seconds=3.0),
        "room_silence": (1e-4 * rng.standard_normal(samples)).astype(np.float32),
        "chords": synth.chords(seconds=3.0),
    }


@pytest.mark.parametrize("kind", sorted(non_speech()))
def test_non_speech_has_no_voiced_frames(kind):
    assert speech.voiced_share(non_speech()[kind], RATE) < 0.05


@pytest.mark.parametrize("kind", sorted(non_speech()))
def test_load_speech_refuses_non_speech(tmp_path, kind):
    path = synth.write_audio(tmp_path / f"{kind}.wav", non_speech()[kind])
    with pytest.raises(NoSpeechError, match="no speech: .*% of frames voiced") as caught:
        load_speech(path, FeatureParams())
    assert caught.value.voiced < speech.DEFAULT_MIN_VOICED


def test_digital_silence_is_no_speech(tmp_path):
    path = synth.write_audio(tmp_path / "zeros.wav", np.zeros(RATE, np.float32))
    with pytest.raises(NoSpeechError, match="silent"):
        load_speech(path, FeatureParams())


@pytest.mark.parametrize(("gender", "age"), [("male", "teens"), ("female", "sixties")])
def test_harmonic_voice_with_vibrato_is_speech(tmp_path, gender, age):
    # The fixtures' voices (a gliding F0) must pass the gate that preprocessing applies.
    path = synth.write_audio(tmp_path / "v.wav", synth.voice(gender, age, seed=1))
    assert load_speech(path, FeatureParams()).shape == (RATE,)


@pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng")
@pytest.mark.parametrize("voice_name", ["en", "en+f3", "de"])
def test_espeak_voice_is_speech(tmp_path, voice_name):
    path = synth.espeak(tmp_path / "s.wav", voice_name=voice_name)
    for preset in ("paper", "voice"):
        params = FeatureParams.preset(preset)
        waveform = load_speech(path, params)
        assert speech.voiced_share(waveform, params.sample_rate) > 0.4


@pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng")
def test_speech_over_quiet_noise_is_speech(tmp_path):
    import soundfile as sf

    path = synth.espeak(tmp_path / "s.wav")
    wave, rate = sf.read(path, dtype="float32")
    noisy = wave + 0.003 * np.random.default_rng(1).standard_normal(wave.shape[0])
    assert speech.voiced_share(noisy.astype(np.float32), rate) > 0.3


def test_min_voiced_zero_turns_the_gate_off(tmp_path):
    path = synth.write_audio(tmp_path / "n.wav", non_speech()["white_noise"])
    assert load_speech(path, FeatureParams(), min_voiced=0.0).shape == (3 * RATE,)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "a"])
def test_min_voiced_outside_0_1_is_refused(value):
    with pytest.raises(ParameterError, match="min_voiced"):
        speech.check_min_voiced(value)


def _wav_bytes(tmp_path) -> bytes:
    path = synth.write_audio(tmp_path / "whole.wav", synth.voice("male", "teens", seed=2,
                                                                 seconds=3.0))
    return path.read_bytes()


def test_one_hz_header_is_refused(tmp_path):
    data = bytearray(_wav_bytes(tmp_path)[:44 + 30])
    data[24:28] = struct.pack("<I", 1)  # sample rate
    data[28:32] = struct.pack("<I", 2)  # byte rate
    path = tmp_path / "one_hz.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"one_hz.wav: implausible sample rate 1 Hz") as err:
        load_speech(path, FeatureParams())
    assert "\n" not in str(err.value)


def test_truncated_wav_is_refused(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_bytes(tmp_path)[:2000])
    with pytest.raises(AudioError, match=r"cut.wav: truncated: the header promises 3.00 s of "
                                         r"audio, the file holds 0.06 s"):
        load_speech(path, FeatureParams())


def test_whole_wav_is_not_called_truncated(tmp_path):
    path = tmp_path / "whole.wav"
    path.write_bytes(_wav_bytes(tmp_path))
    assert load_speech(path, FeatureParams()).shape == (3 * RATE,)


@pytest.mark.parametrize("preset", ["paper", "voice"])
def test_50_ms_clip_is_refused(tmp_path, preset):
    # (voice: 50 ms at 8 kHz is also under one STFT window, which load_clip says first)
    params = FeatureParams.preset(preset)
    path = synth.write_audio(tmp_path / "short.wav", synth.voice("female", "teens", seed=3,
                                                                 seconds=0.05))
    with pytest.raises(AudioError, match=r"short.wav: too short: ") as err:
        load_speech(path, params)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("preset", ["paper", "voice"])
def test_clip_under_the_preset_minimum_is_refused(tmp_path, preset):
    params = FeatureParams.preset(preset)
    seconds = params.min_duration_s * 0.8
    path = synth.write_audio(tmp_path / "short.wav", synth.voice("female", "teens", seed=3,
                                                                 seconds=seconds))
    with pytest.raises(AudioError, match=rf"short.wav: too short: {seconds * 1000:.0f} ms of "
                                         rf"audio, the feature preset needs at least "
                                         rf"{params.min_duration_s * 1000:.0f} ms"):
        load_speech(path, params)

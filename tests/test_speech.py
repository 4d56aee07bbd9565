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
from agegender.features import load_speech
from agegender.speech import NoSpeechError

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


def test_preprocessing_skips_and_reports_clips_without_speech(tmp_path):
    import pandas as pd

    from agegender.config import PreprocessParams
    from agegender.preprocess import preprocess

    root = synth.make_raw_corpus(tmp_path / "c", per_group={"train": 1})
    table = pd.read_csv(root / "cv-valid-train.csv", dtype=str, keep_default_na=False)
    audio = root / "cv-valid-train" / "cv-valid-train"
    synth.write_audio(audio / "sample-000000.wav", non_speech()["dc"])
    synth.write_audio(audio / "sample-000001.wav", non_speech()["white_noise"])
    summary = preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1),
                         features=FeatureParams(image_size=32), results_dir=tmp_path / "r")
    report = pd.read_csv(summary["report"], keep_default_na=False)
    bad = report[report["stage"] == "spectrograms"]
    assert sorted(bad["key"].str[-6:]) == ["000000", "000001"]
    assert bad["reason"].str.startswith("no speech: ").all()
    assert summary["examples"]["train"] == len(table) - 2


def test_min_voiced_zero_keeps_them(tmp_path):
    from agegender.config import PreprocessParams
    from agegender.preprocess import preprocess

    root = synth.make_raw_corpus(tmp_path / "c", per_group={"train": 1})
    synth.write_audio(root / "cv-valid-train" / "cv-valid-train" / "sample-000000.wav",
                      non_speech()["dc"])
    summary = preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1,
                                                       min_voiced=0.0),
                         features=FeatureParams(image_size=32), results_dir=tmp_path / "r")
    assert summary["bad_clips"] == 0


def test_detector_and_cli_say_no_speech(trained_gender, tmp_path, capsys):
    import inference as inference_cli

    from agegender import AgeGenderDetector

    noise = synth.write_audio(tmp_path / "noise.wav", non_speech()["white_noise"])
    tone = synth.write_audio(tmp_path / "tone.wav", non_speech()["sine_150hz"])
    voice = synth.write_audio(tmp_path / "voice.wav", synth.voice("male", "teens", seed=4))
    results = AgeGenderDetector(trained_gender["keras"]).predict([noise, tone, voice])
    assert [r["speech"] for r in results] == [False, False, True]
    assert [r["label"] for r in results[:2]] == [None, None]
    assert results[2]["label"] in ("male", "female")
    assert results[0]["voiced"] < 0.05 and results[0]["error"].startswith(f"{noise}: no speech")
    status = inference_cli.main([f"--model_path={trained_gender['keras']}",
                                 "--audio_file", str(noise), str(voice)])
    out = capsys.readouterr().out
    assert status == 0
    assert f"{noise}: no speech (0% of frames voiced, --min_voiced 0.1)" in out
    assert "1 of 2 files predicted (gender; 1 without speech)" in out


def test_evaluate_clips_leaves_out_no_speech(trained_gender, tmp_path):
    import pandas as pd

    from agegender.evaluation import evaluate_clips

    rows = []
    for i, gender in enumerate(["male", "female"] * 2):
        path = synth.write_audio(tmp_path / f"v{i}.wav", synth.voice(gender, "teens", seed=i))
        rows.append({"audio_path": str(path), "gender": gender, "speaker_id": f"s{i}"})
    path = synth.write_audio(tmp_path / "noise.wav", non_speech()["white_noise"])
    rows.append({"audio_path": str(path), "gender": "male", "speaker_id": "s9"})
    result = evaluate_clips(trained_gender["keras"], pd.DataFrame(rows),
                            results_dir=tmp_path / "r", n_resamples=20)
    assert list(result["no_speech"]) == ["noise"]


def _plain_frame_voicing(waveform: np.ndarray) -> speech.FrameVoicing:
    """The gate's frame measurements as first written (numpy's FFT; the autocorrelation from
    the full zero-padded spectrum; the peak band from a padded spectrum; the burst from a
    running sum per frame; unit-normalised magnitudes), the reference the faster
    ``speech.frame_voicing`` must reproduce."""
    frames = np.lib.stride_tricks.sliding_window_view(waveform, speech.FRAME)[::speech.HOP]
    centred = frames - frames.mean(axis=1, keepdims=True)
    rms_db = 20.0 * np.log10(np.maximum(np.sqrt((centred ** 2).sum(axis=1) / speech.FRAME),
                                        1e-7))
    window = np.hanning(speech.FRAME + 2)[1:-1]
    window_auto = np.fft.irfft(np.abs(np.fft.rfft(window, speech._FFT)) ** 2, speech._FFT)
    power = np.abs(np.fft.rfft(centred * window, speech._FFT, axis=1)) ** 2
    low, high = speech._LAGS
    auto = np.fft.irfft(power, speech._FFT, axis=1)[:, :high]
    normalised = auto / np.maximum(auto[:, :1], 1e-20) / (window_auto[:high] / window_auto[0])
    best = low + np.argmax(normalised[:, low:high], axis=1)
    rows = np.arange(len(best))
    peak = normalised[rows, best]
    dip = np.minimum.accumulate(normalised[:, 1:high], axis=1)[rows, best - 1]
    left, right = normalised[rows, best - 1], normalised[rows, np.minimum(best + 1, high - 1)]
    curve = left - 2.0 * peak + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve < 0, np.clip(0.5 * (left - right) / curve, -0.5, 0.5), 0.0)
    band = np.lib.stride_tricks.sliding_window_view(np.pad(power, ((0, 0), (8, 8))), 17, axis=1)
    peak_share = band[rows, np.argmax(power, axis=1)].sum(axis=1) / np.maximum(
        power.sum(axis=1), 1e-20)
    cumulative = np.cumsum(np.pad(centred ** 2, ((0, 0), (1, 0))), axis=1)
    burst = (cumulative[:, speech.BURST:] - cumulative[:, :-speech.BURST]).max(axis=1)
    magnitude = np.sqrt(power)
    magnitude /= np.maximum(np.linalg.norm(magnitude, axis=1, keepdims=True), 1e-12)
    similarity = np.full(len(best), np.nan)
    lag = speech.SIMILARITY_LAG
    similarity[lag:] = (magnitude[lag:] * magnitude[:-lag]).sum(axis=1)
    return speech.FrameVoicing(rms_db, np.clip(np.where(peak - dip >= speech.MIN_DIP, peak, 0.0), 0, 1),
                               speech.GATE_RATE / (best + shift), peak_share,
                               burst / np.maximum(cumulative[:, -1], 1e-20), similarity)


def test_frame_measurements_match_their_plain_definitions():
    """The gate's measurements are computed the cheap way (the autocorrelation from the
    even bins, shared norms, scipy's FFT, float32): the plain definitions in float64 give
    the same values to rounding and the same voiced frames, on voices, chords, noise, tones,
    clicks and buzz."""
    clips = [synth.voice("male", "teens", seed=1, seconds=4.0),
             synth.voice("female", "sixties", seed=2, seconds=4.0),
             synth.chords(seconds=3.0), *non_speech().values(),
             *list(clicks_and_buzz().values())[::4]]
    waveform = speech.to_gate_rate(np.concatenate(clips), RATE)  # [samples] at 8 kHz
    fast = speech.frame_voicing(waveform)
    plain = _plain_frame_voicing(waveform.astype(np.float64))
    assert fast.frames == plain.frames > 1000
    loud = plain.rms_db > speech.FLOOR_DBFS  # below it rounding noise is all there is
    for name in ("rms_db", "periodicity", "peak_share", "burst_share", "similarity"):
        # similarity: the frame SIMILARITY_LAG before must be loud too
        both = loud & np.roll(loud, speech.SIMILARITY_LAG) if name == "similarity" else loud
        np.testing.assert_allclose(getattr(fast, name)[both], getattr(plain, name)[both],
                                   atol=2e-4, err_msg=name)
    # F0 where a frame is periodic, but not perfectly: a synthetic tone peaks alike at every
    # multiple of its period, and rounding picks one.
    periodic = loud & (plain.periodicity > speech.MIN_PERIODICITY) & (plain.periodicity < 0.999)
    assert periodic.sum() > 500
    np.testing.assert_allclose(fast.f0_hz[periodic], plain.f0_hz[periodic], rtol=1e-3)
    np.testing.assert_array_equal(speech.voiced_frames(fast), speech.voiced_frames(plain))


def test_a_lone_weakly_periodic_frame_is_not_a_voice():
    # A chord's common period clears the periodicity bar one frame at a time; a syllable's
    # frames come in runs, and a lone frame that is clearly periodic stays voiced.
    voiced = np.array([1, 0, 0, 1, 0, 1, 1, 0, 1], bool)
    periodicity = np.array([0.65, 0, 0, 0.9, 0, 0.62, 0.62, 0, 0.69], np.float32)
    dropped = speech.weak_lone_frames(periodicity, voiced)
    np.testing.assert_array_equal(dropped, [1, 0, 0, 0, 0, 0, 0, 0, 1])


# -- issue 32 item 4: clicks and buzz are no voice ---------------------------------------------

def clicks_and_buzz() -> dict[str, np.ndarray]:
    """3-s clips of impulsive and stationary periodic sounds, [samples] at 16 kHz."""
    from agegender import synthetic

    clips = {f"clicks_{rate}_per_s_{ring}hz_{int(ms)}ms": synthetic.click_train(
        rate, ring_hz=ring, ring_s=ms / 1000) for rate in (5, 10, 20) for ring in (1000, 2000)
        for ms in (10.0, 20.0)}
    clips.update({f"square_{f}hz": synthetic.square_wave(f) for f in (100.0, 150.0, 165.5, 220.0,
                                                                      275.7)})
    # Seed 420497699: a 120-Hz hum whose harmonics the old gate called 38 % voiced.
    clips.update({f"hum_{f}hz_seed{seed}": synthetic.hum(f, seed=seed)
                  for f in (50.0, 60.0, 100.0, 120.0) for seed in (0, 1, 420497699)})
    return clips


@pytest.mark.parametrize("kind", sorted(clicks_and_buzz()))
def test_clicks_and_buzz_have_no_voiced_frame(kind):
    """Was: 3 s of clicks (10/s) -> male (p=0.550), a steady 150 Hz square wave -> male
    (p=0.787): the timeline labels any voiced stretch, so not one frame may pass."""
    waveform = clicks_and_buzz()[kind]
    voicing = speech.frame_voicing(speech.to_gate_rate(waveform, RATE))
    assert not speech.voiced_frames(voicing).any()


def test_clicks_get_no_label_on_the_timeline(tmp_path):
    """Was: 60 s of clicks (5/s) -> "female 59.9 s" on the timeline."""
    from types import SimpleNamespace

    from agegender import synthetic, timeline

    path = synth.write_audio(tmp_path / "clicks.wav", synthetic.click_train(
        5.0, seconds=20.0, ring_hz=2000.0, ring_s=0.01))
    model = SimpleNamespace(features=FeatureParams(), class_names=("male", "female"),
                            predict=None)  # never called: no window may be made
    result = timeline.timeline(model, path)
    assert [s.label for s in result["segments"]] == [timeline.NO_SPEECH]
    assert result["windows"] == 0


def test_a_voice_between_clicks_and_buzz_still_passes():
    from agegender import synthetic

    voice = synthetic.intoned_voice(150.0, seconds=3.0)
    noisy = voice + synthetic.click_train(5.0, ring_s=0.01) + 0.3 * synthetic.hum(60.0)
    assert speech.voiced_share(voice, RATE) > 0.5
    assert speech.voiced_share(noisy, RATE) > 0.3


def test_blocks_measure_every_frame_as_one_pass_does(tmp_path):
    """The stationarity cue compares each frame with one 0.1 s before: a recording measured
    in 1-s blocks (the timeline's gate pass) must compare across block edges alike."""
    from agegender import synthetic, timeline

    wave = np.concatenate([synthetic.intoned_voice(150.0, seconds=2.3, rate=8_000),
                           synthetic.square_wave(150.0, seconds=2.0, rate=8_000)])
    path = tmp_path / "mixed.wav"
    import soundfile as sf

    sf.write(path, wave, 8_000, subtype="FLOAT")
    blocks, _ = timeline.gate_pass(path, 1.0)
    whole = speech.frame_voicing(wave)
    np.testing.assert_allclose(blocks.similarity, whole.similarity, atol=1e-5)
    np.testing.assert_array_equal(speech.voiced_frames(blocks), speech.voiced_frames(whole))


def test_percentile_95_is_numpys():
    """The loud-frame reference the gate computes by partition equals ``np.percentile``
    bit for bit, ties and one-frame clips included."""
    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 19, 20, 21, 250, 1001):
        values = (rng.standard_normal(size) * 30 - 40).astype(np.float32)
        tied = values.copy()
        tied[: size // 2] = tied[-1]
        for case in (values, tied):
            assert speech.percentile_95(case) == float(np.percentile(case, 95))


def test_measuring_only_the_loud_frames_decides_alike():
    """``voiced_share`` measures the spectral cues of the loud frames only (and of the frames
    their similarity looks back to): each clip's decisions equal the full measurement's, and
    so do the cues of the loud frames."""
    clips = [synth.voice("male", "teens", seed=4, seconds=3.0), synth.chords(seconds=3.0),
             *non_speech().values(), *list(clicks_and_buzz().values())[::3]]
    clips.append(np.concatenate([np.zeros(RATE, np.float32), clips[0], 1e-4 * clips[0]]))
    quiet_frames = 0
    for clip in clips:
        waveform = speech.to_gate_rate(clip, RATE)
        full, part = speech.frame_voicing(waveform), speech.frame_voicing(waveform,
                                                                          loud_only=True)
        np.testing.assert_array_equal(speech.voiced_frames(part), speech.voiced_frames(full))
        loud = speech.loud_frames(full.rms_db, speech.percentile_95(full.rms_db))
        for name in ("rms_db", "periodicity", "f0_hz", "peak_share", "burst_share"):
            np.testing.assert_array_equal(getattr(part, name)[loud], getattr(full, name)[loud])
        np.testing.assert_allclose(part.similarity[loud], full.similarity[loud], atol=1e-6)
        looked_back = np.append(loud[speech.SIMILARITY_LAG:],
                                np.zeros(speech.SIMILARITY_LAG, bool))
        skipped = ~loud & ~looked_back
        assert (part.periodicity[skipped] == 0).all() and (part.peak_share[skipped] == 1).all()
        quiet_frames += int(skipped.sum())
    assert quiet_frames > 100  # frames whose spectra were never taken

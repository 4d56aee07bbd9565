"""The timeline: segments over a whole recording, non-speech marked, streamed in blocks;
its RTTM and TextGrid read back."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import synth

import inference as inference_cli
from agegender import AgeGenderDetector
from agegender.errors import AudioError, ParameterError
from agegender.timeline import (
    NO_SPEECH,
    PAPER_WINDOW_S,
    TimelineParams,
    label_segments,
    local_reference_db,
    model_window_s,
    speech_regions,
    viterbi,
    windows_in,
)
from agegender.timeline_formats import read_rttm, read_textgrid, write_timeline

RATE = 16_000
# (start, end, kind) of the recording below, seconds
PLAN = [(0.0, 1.0, "silence"), (1.0, 4.0, "male"), (4.0, 5.0, "silence"),
        (5.0, 8.0, "noise"), (8.0, 11.0, "female"), (11.0, 14.0, "chords"),
        (14.0, 15.0, "silence")]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """15 s: two voices between silence, white noise and music without a voice."""
    rng = np.random.default_rng(5)
    parts = []
    for start, end, kind in PLAN:
        seconds = end - start
        if kind in ("male", "female"):
            wave = synth.voice(kind, "twenties", seed=int(start), seconds=seconds)
        elif kind == "noise":
            wave = 0.05 * rng.standard_normal(int(seconds * RATE))
        elif kind == "chords":
            wave = synth.chords(seconds=seconds)
        else:
            wave = 1e-4 * rng.standard_normal(int(seconds * RATE))
        parts.append(np.asarray(wave, np.float32))
    folder = tmp_path_factory.mktemp("recording")
    return synth.write_audio(folder / "meeting.wav", np.concatenate(parts))


def _check_cover(result, duration):
    segments = result["segments"]
    assert segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(duration, abs=1e-6)
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.end == pytest.approx(after.start, abs=1e-6)


def _label_at(segments, time):
    return next(s.label for s in segments if s.start <= time < s.end)


def test_timeline_marks_non_speech_and_labels_speech(trained_gender, recording):
    detector = AgeGenderDetector(trained_gender["keras"])
    result = detector.timeline(recording)
    assert result["duration"] == pytest.approx(15.0, abs=1e-3)
    _check_cover(result, 15.0)
    for start, end, kind in PLAN:
        middle = 0.5 * (start + end)
        if kind in ("male", "female"):
            assert _label_at(result["segments"], middle) in detector.class_names
        else:
            assert _label_at(result["segments"], middle) == NO_SPEECH, kind
    for segment in result["segments"]:
        if segment.label == NO_SPEECH:
            assert segment.probability is None
        else:
            assert 0.0 <= segment.probability <= 1.0
            # speech only where a voice is, give or take the padding
            assert any(kind in ("male", "female") and s - 0.7 <= segment.start
                       and segment.end <= e + 0.7 for s, e, kind in PLAN)


def test_small_blocks_give_the_same_timeline(trained_gender, recording):
    detector = AgeGenderDetector(trained_gender["keras"])
    whole = detector.timeline(recording, TimelineParams(block_s=60.0))
    blocks = detector.timeline(recording, TimelineParams(block_s=1.3))
    assert [s.label for s in blocks["segments"]] == [s.label for s in whole["segments"]]
    for a, b in zip(blocks["segments"], whole["segments"], strict=True):
        assert a.start == pytest.approx(b.start, abs=0.05)
        assert a.end == pytest.approx(b.end, abs=0.05)


def test_h5_model_gives_the_same_timeline(trained_gender, recording):
    keras = AgeGenderDetector(trained_gender["keras"]).timeline(recording)
    h5 = AgeGenderDetector(trained_gender["h5"]).timeline(recording)
    assert [(s.label, round(s.start, 3)) for s in h5["segments"]] == \
        [(s.label, round(s.start, 3)) for s in keras["segments"]]


def test_files_read_back(trained_gender, recording, tmp_path):
    detector = AgeGenderDetector(trained_gender["keras"])
    result = detector.timeline(recording)
    written = write_timeline(result, tmp_path / "out" / "meeting", task="gender")
    assert len(written) == 6
    speech = [s for s in result["segments"] if s.label != NO_SPEECH]
    assert speech and all(s.speaker and s.speaker.startswith("S") for s in speech)
    rttm = read_rttm(tmp_path / "out" / "meeting.rttm")
    assert [(r[3], round(r[1], 3), round(r[2], 3)) for r in rttm] == \
        [(s.speaker, round(s.start, 3), round(s.end, 3)) for s in speech]
    assert {r[0] for r in rttm} == {"meeting"}
    grid = read_textgrid(tmp_path / "out" / "meeting.TextGrid")
    assert list(grid) == ["gender", "speaker"]
    assert [(text, round(a, 3), round(b, 3)) for a, b, text in grid["gender"]] == \
        [(s.label, round(s.start, 3), round(s.end, 3)) for s in result["segments"]]
    assert [text for _, _, text in grid["speaker"]] == \
        [s.speaker or NO_SPEECH for s in result["segments"]]
    saved = json.loads((tmp_path / "out" / "meeting.json").read_text())
    assert all(s["gender_probability"] is None and s["speaker"] is None
               for s in saved["segments"] if s["gender"] is None)
    assert [row["speaker"] for row in saved["speakers"]] == \
        list(dict.fromkeys(s.speaker for s in speech))
    assert (tmp_path / "out" / "meeting.png").read_bytes()[:4] == b"\x89PNG"


def test_noise_only_file_is_all_no_speech(trained_gender, tmp_path):
    path = synth.write_audio(tmp_path / "noise.wav", 0.1 * np.random.default_rng(2)
                             .standard_normal(5 * RATE).astype(np.float32))
    result = AgeGenderDetector(trained_gender["keras"]).timeline(path)
    assert [s.label for s in result["segments"]] == [NO_SPEECH]
    assert result["windows"] == 0


def test_cli_timeline_writes_every_format(trained_gender, recording, tmp_path, capsys):
    out = tmp_path / "tl"
    status = inference_cli.main([f"--model_path={trained_gender['keras']}",
                                 f"--audio_file={recording}", "--timeline",
                                 f"--timeline_dir={out}"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "meeting.wav: 15.0 s," in printed
    assert "1 of 1 files put on a timeline (gender)" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "meeting.TextGrid", "meeting.csv", "meeting.json", "meeting.png", "meeting.rttm",
        "meeting_speakers.csv"]


def test_truncated_file_is_refused(trained_gender, recording, tmp_path):
    cut = tmp_path / "cut.wav"
    cut.write_bytes(recording.read_bytes()[:5000])
    with pytest.raises(AudioError, match="cut.wav: truncated"):
        AgeGenderDetector(trained_gender["keras"]).timeline(cut)


def test_bad_params_are_refused():
    with pytest.raises(ParameterError, match="hop_s"):
        TimelineParams(hop_s=float("nan"))
    with pytest.raises(ParameterError, match="block_s"):
        TimelineParams(block_s=0.1)
    with pytest.raises(ParameterError, match="gender_weight"):
        TimelineParams(gender_weight=-0.1)


def test_viterbi_ignores_a_short_flip_but_keeps_a_long_one():
    probs = np.full((40, 2), 0.1)
    probs[:, 0] = 0.9
    probs[10:12] = [0.3, 0.7]   # 0.2 s of the other class: smoothed away
    probs[25:] = [0.2, 0.8]     # a real change
    path = viterbi(np.log(probs), switch_penalty=3.0)
    assert path[:25].tolist() == [0] * 25 and path[25:].tolist() == [1] * 15


# A timeline whose right answer is known to the tenth of a second: a stand-in model that
# calls a window "male" when its median F0 is under THRESHOLD_HZ, on a recording whose
# voices change pitch at known times. The trained fixture above learns from a few clips and
# may call anything anything, so only this pins which label goes where.
THRESHOLD_HZ = 165.0
# (start, end, truth) seconds; the voices are synthetic.harmonic_voice at 120 / 220 Hz.
PITCH_PLAN = [(0.0, 1.0, NO_SPEECH), (1.0, 5.0, "male"), (5.0, 9.0, "female"),
              (9.0, 10.0, NO_SPEECH), (10.0, 13.0, "male"), (13.0, 14.0, NO_SPEECH)]
# How far a segment edge may sit from the truth, seconds: the gate pads speech by
# TimelineParams.pad_s (0.1 s) and frames are 40 ms (measured: edges 0.10-0.14 s off); a 1-s
# window hopped by 0.25 s places the change of voice 0.1 s late.
EDGE_TOLERANCE_S = 0.25
# Where one voice runs straight into the other (5.0 s), the turn is placed between the
# centres of the last window embedded as one voice and the first as the other; a 1-s
# window with a third of the 120-Hz voice still embeds as it (measured: the turn at 5.3 s).
TURN_TOLERANCE_S = 0.5


def _tolerance(edge: float) -> float:
    return TURN_TOLERANCE_S if edge == 5.0 else EDGE_TOLERANCE_S


@pytest.fixture(scope="module")
def pitch_threshold_model(tmp_path_factory):
    """A ``voice_stats`` gender model whose weights are set by hand: male exactly where the
    window's median F0 is under THRESHOLD_HZ, with probability ~0.9 on the voices below."""
    import math

    from agegender.config import FeatureParams, ModelParams
    from agegender.labels import GENDERS
    from agegender.model import PITCH_BOOST, voice_stats_model
    from agegender.f0 import PITCH_CENTRE, PITCH_REFERENCE_HZ, PITCH_SPREAD
    from agegender.voice_stats import STAT_NAMES

    features = dataclasses.asdict(FeatureParams.preset("voice"))
    model = voice_stats_model(ModelParams(architecture="voice_stats", pitch_input=True,
                                          num_classes=2, task="gender",
                                          class_names=GENDERS), features=features)
    median = STAT_NAMES.index("log2_median_f0")
    # The model sees z = (log2(F0 / 150 Hz) - centre) / spread and gives
    # logit(male) - logit(female) = boost * 2w * (z_threshold - z).
    z_threshold = ((math.log2(THRESHOLD_HZ / PITCH_REFERENCE_HZ) - PITCH_CENTRE[median])
                   / PITCH_SPREAD[median])
    w = 0.05
    kernel = np.zeros((len(STAT_NAMES), 2), np.float32)
    kernel[median] = [-w, w]
    bias = np.array([w * z_threshold, -w * z_threshold], np.float32)
    assert list(GENDERS) == ["male", "female"]  # the column order the weights assume
    model.get_layer("logits").set_weights([kernel, bias])
    assert PITCH_BOOST * 2 * w * z_threshold > 0  # 150 Hz is on the male side
    path = tmp_path_factory.mktemp("stub") / "pitch_threshold.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def pitch_recording(tmp_path_factory):
    """PITCH_PLAN as a 14-s, 16-kHz WAV: a 120-Hz voice running straight into a 220-Hz
    one, a pause, the 120-Hz voice again, with near-silence around them."""
    from agegender.synthetic import harmonic_voice

    rng = np.random.default_rng(11)
    parts = []
    for start, end, truth in PITCH_PLAN:
        seconds = end - start
        if truth == NO_SPEECH:
            parts.append((1e-4 * rng.standard_normal(int(seconds * RATE))).astype(np.float32))
        else:
            parts.append(harmonic_voice(120.0 if truth == "male" else 220.0, seconds=seconds,
                                        rate=RATE, rng=rng, vibrato=0.02))
    folder = tmp_path_factory.mktemp("pitch_recording")
    return synth.write_audio(folder / "two_voices.wav", np.concatenate(parts))


def test_stub_model_labels_land_on_the_right_voice_at_the_right_time(pitch_threshold_model,
                                                                      pitch_recording):
    """Fails when the timeline swaps labels (male <-> female), misplaces them in time by more
    than EDGE_TOLERANCE_S, or loses or invents a segment."""
    detector = AgeGenderDetector(pitch_threshold_model)
    # Labels are decided per speaker: the two synthetic voices differ only in pitch and lie
    # 0.23 apart in the voice encoder's space (real speakers: 0.34-0.51 on the shipped
    # clips), under the default threshold, so the test says how many voices there are, as
    # a user would with --num_speakers.
    result = detector.timeline(pitch_recording, TimelineParams(window_s=1.0, hop_s=0.25,
                                                               num_speakers=2))
    segments = result["segments"]
    _check_cover(result, PITCH_PLAN[-1][1])
    assert [s.label for s in segments] == [truth for _, _, truth in PITCH_PLAN], \
        [(round(s.start, 2), round(s.end, 2), s.label) for s in segments]
    assert [s.speaker for s in segments] == [None, "S1", "S2", None, "S1", None]
    for segment, (start, end, truth) in zip(segments, PITCH_PLAN, strict=True):
        assert segment.start == pytest.approx(start, abs=_tolerance(start)), (segment, truth)
        assert segment.end == pytest.approx(end, abs=_tolerance(end)), (segment, truth)
        if truth != NO_SPEECH:
            assert segment.probability > 0.8, segment


# The pure steps of the timeline, on hand-made inputs whose answers follow from the rules in
# their docstrings (gate frames: 20-ms hop, 40-ms long; decision steps: 0.1 s).


def _pairs(actual, expected) -> bool:
    """Whether two lists of (start, end) seconds agree to a microsecond."""
    return len(actual) == len(expected) and np.allclose(np.reshape(actual, (-1, 2)),
                                                        np.reshape(expected, (-1, 2)),
                                                        rtol=0, atol=1e-6)


def _frames(duration_s: float, voiced_s: list[tuple[float, float]]) -> np.ndarray:
    """A gate's voiced mask [frames] with frames [start/0.02, stop/0.02) set."""
    mask = np.zeros(int(round(duration_s / 0.02)), bool)
    for start, stop in voiced_s:
        mask[int(round(start / 0.02)):int(round(stop / 0.02))] = True
    return mask


def test_speech_regions_bridge_short_pauses_drop_short_bursts_and_pad():
    # A run of voiced frames [i, j) spans i * 20 ms to j * 20 ms + 40 ms (the frame length).
    # Voiced 1.0-2.0 s and 2.2-3.0 s (a 0.16-s pause between the spans), a 0.1-s burst at
    # 6.0 s (0.14 s long), and 8.0 s to the end.
    voiced = _frames(10.0, [(1.0, 2.0), (2.2, 3.0), (6.0, 6.1), (8.0, 10.0)])
    regions = speech_regions(voiced, TimelineParams(), 10.0)
    assert _pairs(regions, [(0.9, 3.14), (7.9, 10.0)])  # padded 0.1, clipped at 10
    # A pause of min_pause_s or more splits the region; shorter, it is bridged.
    split = speech_regions(voiced, TimelineParams(min_pause_s=0.15, pad_s=0.0), 10.0)
    assert _pairs(split, [(1.0, 2.04), (2.2, 3.04), (8.0, 10.0)])
    # min_speech_s keeps the burst when it is short enough.
    kept = speech_regions(voiced, TimelineParams(min_speech_s=0.1, pad_s=0.0), 10.0)
    assert _pairs(kept, [(1.0, 3.04), (6.0, 6.14), (8.0, 10.0)])
    # Regions whose padding overlaps become one; the first starts no earlier than 0.
    near = _frames(4.0, [(0.06, 1.0), (1.7, 2.5)])
    assert _pairs(speech_regions(near, TimelineParams(pad_s=0.4), 4.0), [(0.0, 2.94)])
    assert _pairs(speech_regions(near, TimelineParams(pad_s=0.3), 4.0),
                  [(0.0, 1.34), (1.4, 2.84)])
    assert speech_regions(np.zeros(50, bool), TimelineParams(), 1.0) == []


def test_windows_cover_each_region_and_short_ones_get_one_centred_window():
    windows = windows_in([(1.0, 2.0), (3.0, 7.0), (7.5, 8.0)], 2.0, 1.0, 8.0)
    assert _pairs(windows, [(0.5, 2.5),                                # centred on 1.5
                            (3.0, 5.0), (4.0, 6.0), (5.0, 7.0),        # hop 1 s
                            (6.0, 8.0)])                 # centred, then kept inside
    # The windows spread evenly when the hop does not divide the region.
    assert _pairs(windows_in([(3.0, 6.5)], 2.0, 1.0, 8.0),
                  [(3.0, 5.0), (3.75, 5.75), (4.5, 6.5)])
    # A region at the very start, and a recording shorter than one window.
    assert _pairs(windows_in([(0.0, 0.4)], 2.0, 1.0, 8.0), [(0.0, 2.0)])
    assert _pairs(windows_in([(0.2, 1.0)], 2.0, 1.0, 1.5), [(0.0, 1.5)])
    assert windows_in([], 2.0, 1.0, 8.0) == []


def _spans(segments):
    return [(round(s.start, 6), round(s.end, 6), s.label,
             None if s.probability is None else round(s.probability, 6)) for s in segments]


def test_label_segments_give_each_step_its_windows_and_fill_the_gaps_with_no_speech():
    names = ["a", "b"]
    windows = [(1.0, 1.5), (1.5, 2.0), (3.0, 4.0)]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    segments = label_segments([(1.0, 2.0), (3.0, 4.0)], windows, probabilities, names, 5.0,
                              switch_penalty=0.0)
    assert _spans(segments) == [(0.0, 1.0, NO_SPEECH, None), (1.0, 1.5, "a", 0.9),
                                (1.5, 2.0, "b", 0.8), (2.0, 3.0, NO_SPEECH, None),
                                (3.0, 4.0, "b", 0.7), (4.0, 5.0, NO_SPEECH, None)]
    # Overlapping windows are averaged per step: 1.0-1.5 s is (0.9 + 0.3) / 2 = 0.6 "a".
    segments = label_segments([(0.0, 1.5)], [(0.0, 1.0), (0.5, 1.5)],
                              np.array([[0.9, 0.1], [0.3, 0.7]]), names, 1.5, 0.0)
    assert _spans(segments) == [(0.0, 1.0, "a", 0.75), (1.0, 1.5, "b", 0.7)]
    # A high switching penalty keeps one label: the one of more evidence.
    segments = label_segments([(0.0, 1.5)], [(0.0, 1.0), (0.5, 1.5)],
                              np.array([[0.9, 0.1], [0.3, 0.7]]), names, 1.5, 100.0)
    assert [s.label for s in segments] == ["a"]


def test_label_segments_skip_windows_too_short_to_analyse():
    names = ["a", "b"]
    nan = [np.nan, np.nan]
    # Steps no window reaches take the nearest covered step's probabilities.
    segments = label_segments([(0.0, 1.0)], [(0.0, 0.5), (0.5, 1.0)],
                              np.array([nan, [0.3, 0.7]]), names, 1.0, 0.0)
    assert _spans(segments) == [(0.0, 1.0, "b", 0.7)]
    # No window analysed: the region has no class.
    segments = label_segments([(0.5, 1.0)], [(0.5, 1.0)], np.array([nan]), names, 2.0, 0.0)
    assert _spans(segments) == [(0.0, 0.5, NO_SPEECH, None), (0.5, 1.0, NO_SPEECH, None),
                                (1.0, 2.0, NO_SPEECH, None)]
    # No region at all: one stretch of no speech.
    assert _spans(label_segments([], [], np.zeros((0, 0)), names, 3.0, 8.0)) == [
        (0.0, 3.0, NO_SPEECH, None)]


def test_local_reference_is_each_stretch_own_95th_percentile():
    rms_db = np.array([0, 0, 0, 0, 100, -50, -50, -50, -50, -10, 7], float)
    # 0.1 s = 5 frames a stretch; 95th percentile by linear interpolation.
    reference = local_reference_db(rms_db, span_s=0.1)
    assert reference.tolist() == pytest.approx([80.0] * 5 + [-18.0] * 5 + [7.0])
    assert local_reference_db(rms_db).tolist() == pytest.approx(
        [np.percentile(rms_db, 95)] * 11)  # the default 30 s holds all of it


def test_model_window_is_the_image_width_or_the_paper_window():
    from agegender.config import FeatureParams

    assert model_window_s(FeatureParams.preset("voice")) == pytest.approx(64 * 320 / 8000)
    assert model_window_s(FeatureParams()) == PAPER_WINDOW_S == 3.0


@pytest.mark.parametrize("field", ["window_s", "hop_s", "min_pause_s", "min_speech_s", "pad_s",
                                   "switch_penalty"])
@pytest.mark.parametrize("value", [-0.1, float("inf"), float("nan")])
def test_every_timeline_parameter_is_checked(field, value):
    with pytest.raises(ParameterError, match=rf"^{field}="):
        TimelineParams(**{field: value})
    TimelineParams(**{field: 0.0})  # zero is allowed: "the model's", or "off"


def test_block_and_voiced_share_limits():
    TimelineParams(block_s=1.0)
    for bad in (0.99, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="block_s"):
            TimelineParams(block_s=bad)
    with pytest.raises(ParameterError, match="min_voiced"):
        TimelineParams(min_voiced=1.5)


def test_segment_as_dict():
    from agegender.timeline import Segment

    assert Segment(1.0, 2.5, "male", 0.75, speaker="S2").as_dict() == {
        "start": 1.0, "end": 2.5, "speaker": "S2", "gender": "male",
        "gender_probability": 0.75, "age": None, "age_probability": None}
    # An age model beside the gender one fills the age columns; a gender_age class both.
    assert Segment(0.0, 1.0, "female", 0.9, speaker="S1",
                   more=(("thirties", 0.4),)).as_dict()["age"] == "thirties"
    row = Segment(0.0, 1.0, "female-sixties", 0.5, speaker="S1").as_dict()
    assert (row["gender"], row["age"]) == ("female", "sixties")


# Gaps found by mutation testing (docs/mutation.md): each test below fails on a mutant of
# agegender.timeline's pure steps that the tests above let through.


def test_steps_before_the_first_and_after_the_last_window_take_the_closest_ones():
    # Windows cover steps 2 (a), 3-6 (b) and 7 (a, 0.7); steps 0-1 take step 2's values,
    # steps 8-9 step 7's.
    segments = label_segments([(0.0, 1.0)], [(0.2, 0.3), (0.3, 0.7), (0.7, 0.8)],
                              np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]), ["a", "b"],
                              1.0, 0.0)
    assert _spans(segments) == [(0.0, 0.3, "a", 0.9), (0.3, 0.7, "b", 0.8),
                                (0.7, 1.0, "a", 0.7)]


def test_a_window_starting_before_its_region_still_counts():
    # A short region's window is centred on it, so it starts before the region does.
    segments = label_segments([(1.0, 1.4)], [(0.2, 2.2)], np.array([[0.2, 0.8]]), ["a", "b"],
                              3.0, 8.0)
    assert _spans(segments) == [(0.0, 1.0, NO_SPEECH, None), (1.0, 1.4, "b", 0.8),
                                (1.4, 3.0, NO_SPEECH, None)]


def test_a_late_region_weighs_only_its_own_steps():
    # 0.5 s of a (0.9) then 0.5 s of b (0.6): with a switching penalty of 3 nats, staying on
    # a (log-score -5.1) beats switching (-6.1); extra steps of b would tip it.
    segments = label_segments([(5.0, 6.0)], [(5.0, 5.5), (5.5, 6.0)],
                              np.array([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"], 6.0, 3.0)
    assert [(s.label, round(s.start, 6), round(s.end, 6)) for s in segments] == [
        (NO_SPEECH, 0.0, 5.0), ("a", 5.0, 6.0)]


def test_viterbi_starts_from_the_first_step_and_switches_from_the_best_class():
    # The first step alone says class 1, strongly: cheap switches follow each step; a dear
    # one keeps class 1 throughout (log 0.9 + 3 log 0.4 = -2.85 beats log 0.1 + 3 log 0.6).
    log_probs = np.log([[0.1, 0.9], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]])
    assert viterbi(log_probs, switch_penalty=0.1).tolist() == [1, 0, 0, 0]
    assert viterbi(log_probs, switch_penalty=5.0).tolist() == [1, 1, 1, 1]
    # Three classes: the switch comes from the best-scoring class (2), not from class 0.
    three = np.log([[0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    assert viterbi(three, switch_penalty=1.0).tolist() == [2, 1, 1]
    # The first step counts once: staying on 0 scores log 0.3 + log 0.8 = -1.43, starting on
    # 1 and switching log 0.7 - 1 + log 0.8 = -1.58 (counting step 0 twice would flip it).
    assert viterbi(np.log([[0.3, 0.7], [0.8, 0.2]]), 1.0).tolist() == [0, 0]


def test_windows_hop_by_hop_s_and_a_late_short_region_ends_with_the_recording():
    assert _pairs(windows_in([(0.0, 3.0)], 2.0, 0.5, 8.0),
                  [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0)])
    # Recording 2.5 s, window 2 s: the window of a region at 2.0-2.4 s is 0.5-2.5 s.
    assert _pairs(windows_in([(2.0, 2.4)], 2.0, 1.0, 2.5), [(0.5, 2.5)])


def test_local_reference_stretches_are_thirty_seconds_by_default():
    # 20-ms frames: 1,500 to 30 s. A quiet first 30 s, a loud 10 s after.
    rms_db = np.r_[np.full(1500, -40.0), np.full(500, -10.0)]
    reference = local_reference_db(rms_db)
    assert reference[:1500].tolist() == [-40.0] * 1500
    assert reference[1500:].tolist() == [-10.0] * 500


def test_segments_are_written_with_times_rounded_to_the_millisecond():
    """Was: JSON times such as 12.300000000000001 (issue 33, first hour)."""
    from agegender.timeline import Segment

    row = Segment(0.1 + 0.2, 12.300000000000001, "male", 0.876543219, speaker="S1").as_dict()
    assert row == {"start": 0.3, "end": 12.3, "speaker": "S1", "gender": "male",
                   "gender_probability": 0.8765, "age": None, "age_probability": None}
    assert Segment(1.0, 2.0, "no speech", None).as_dict()["gender_probability"] is None

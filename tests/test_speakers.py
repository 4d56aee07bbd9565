"""Speaker clustering on synthetic embeddings: groups found, ids by first appearance,
a fixed count honoured, per-speaker log-odds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agegender.errors import ParameterError
from agegender.speakers import cluster_speakers, speaker_ids, speaker_labels, speaker_log_odds

DIMS = 256


def _voices(rng, count):
    """``count`` random unit directions in 256-D (nearly orthogonal to each other)."""
    centres = rng.normal(size=(count, DIMS))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def _windows(rng, centres, order, spread=0.15):
    """One noisy unit embedding per entry of ``order`` (an index into ``centres``)."""
    points = centres[order] + spread * rng.normal(size=(len(order), DIMS)) / np.sqrt(DIMS)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_two_separated_groups_give_two_speakers_ordered_by_first_appearance():
    rng = np.random.default_rng(0)
    centres = _voices(rng, 2)
    # Voice 1 speaks first, so it must be S1 (index 0) whatever scipy numbers it.
    order = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1, 0])
    labels = cluster_speakers(_windows(rng, centres, order))
    np.testing.assert_array_equal(labels, (order == 0).astype(int))
    assert speaker_ids(labels.max() + 1) == ["S1", "S2"]


def test_four_voices_found_without_a_count():
    rng = np.random.default_rng(1)
    centres = _voices(rng, 4)
    order = np.array([2, 2, 0, 0, 3, 1, 1, 2, 3, 0])
    labels = cluster_speakers(_windows(rng, centres, order))
    expected = np.array([0, 0, 1, 1, 2, 3, 3, 0, 2, 1])
    np.testing.assert_array_equal(labels, expected)


def test_num_speakers_is_honoured():
    rng = np.random.default_rng(2)
    centres = _voices(rng, 3)
    order = np.array([0, 1, 2, 0, 1, 2])
    points = _windows(rng, centres, order)
    assert cluster_speakers(points, num_speakers=1).tolist() == [0] * 6
    assert cluster_speakers(points, num_speakers=3).tolist() == [0, 1, 2, 0, 1, 2]
    # Threshold 2 would merge everything; a count overrides it.
    assert cluster_speakers(points, distance_threshold=2.0, num_speakers=2).max() == 1
    # More speakers than windows: one each, still in order.
    assert cluster_speakers(points[:2], num_speakers=5).tolist() == [0, 1]


def test_one_and_zero_windows():
    assert cluster_speakers(np.ones((1, DIMS))).tolist() == [0]
    assert cluster_speakers(np.zeros((0, DIMS))).tolist() == []


@pytest.mark.parametrize("kwargs, match", [
    ({"num_speakers": 0}, "num_speakers"),
    ({"num_speakers": 1.5}, "num_speakers"),
    ({"num_speakers": True}, "num_speakers"),
    ({"distance_threshold": -0.1}, "distance_threshold"),
    ({"distance_threshold": float("nan")}, "distance_threshold"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        cluster_speakers(np.eye(3, DIMS), **kwargs)


def test_bad_embeddings_are_named():
    with pytest.raises(ParameterError, match="shape"):
        cluster_speakers(np.ones(DIMS))
    with pytest.raises(ParameterError, match="row 1"):
        cluster_speakers(np.stack([np.ones(DIMS), np.zeros(DIMS)]))
    with pytest.raises(ParameterError, match="NaN"):
        cluster_speakers(np.full((2, DIMS), np.nan))


def test_speaker_log_odds_is_the_mean_per_speaker():
    log_odds = np.array([2.0, 4.0, -1.0, -3.0, 0.0])
    labels = np.array([0, 0, 1, 1, 0])
    np.testing.assert_allclose(speaker_log_odds(log_odds, labels), [2.0, -2.0])
    with pytest.raises(ParameterError, match="shape"):
        speaker_log_odds(log_odds, labels[:3])


def test_speaker_labels_follow_the_speaker_and_keep_only_strong_dissent():
    # S1 leans positive overall, S2 negative; a weak and a strong dissenter in S1.
    log_odds = np.array([3.0, 2.0, -1.0, -6.0, 5.0, -2.0, -3.0, 0.5])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    speaker_pos, window_pos = speaker_labels(log_odds, labels, strong=4.0)
    assert speaker_pos.tolist() == [True, False]
    assert window_pos.tolist() == [True, True, True, False, True, False, False, False]
    with pytest.raises(ParameterError, match="strong"):
        speaker_labels(log_odds, labels, strong=-1)


def test_speaker_labels_do_not_swap_between_speakers():
    """A stub model: speaker A's windows say female (log-odds > 0), B's male. If the per-speaker
    vote were indexed by the wrong speaker, A and B would swap."""
    rng = np.random.default_rng(3)
    centres = _voices(rng, 2)
    order = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])  # B first: B becomes S1
    stub_log_odds = np.where(order == 0, 2.5, -2.5) + rng.normal(0, 0.5, len(order))
    labels = cluster_speakers(_windows(rng, centres, order))
    speaker_pos, window_pos = speaker_labels(stub_log_odds, labels)
    assert speaker_pos.tolist() == [False, True]  # S1 = B (negative), S2 = A (positive)
    np.testing.assert_array_equal(window_pos, order == 0)


CLIPS = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "clips"


def test_two_shipped_clips_joined_give_two_speakers_with_the_turn_in_place():
    """Real voices: two CC0 clips of different speakers, back to back; 1.6-s windows embedded
    by the shipped voice encoder; the switch must fall within 1 s of the join."""
    soundfile = pytest.importorskip("soundfile")
    soxr = pytest.importorskip("soxr")
    from agegender import voice_encoder

    rate = 16_000
    waves = []
    for name in ("common_voice_pl_20862262", "common_voice_rw_21551074"):
        audio, native = soundfile.read(CLIPS / f"{name}.mp3", dtype="float32", always_2d=True)
        waves.append(soxr.resample(audio.mean(axis=1), native, rate))
    joined = np.concatenate(waves)  # [samples]
    cut_s = len(waves[0]) / rate
    window, hop = int(1.6 * rate), int(0.8 * rate)
    starts = np.arange(0, len(joined) - window + 1, hop)
    embeddings = voice_encoder.embed_many([joined[s:s + window] for s in starts], rate)
    labels = cluster_speakers(embeddings, num_speakers=2)
    assert labels[0] == 0 and labels[-1] == 1
    switches = np.flatnonzero(np.diff(labels))
    assert len(switches) == 1, labels
    # The turn lies between the centres of the last S1 window and the first S2 window.
    turn_s = (starts[switches[0]] + starts[switches[0] + 1] + window) / 2 / rate
    assert abs(turn_s - cut_s) <= 1.0, (turn_s, cut_s, labels)


def test_speaker_classes_agree_with_speaker_labels_on_two_classes():
    from agegender.speakers import speaker_classes

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    odds = np.array([2.0, 1.0, -5.0, 3.0, -1.0, -0.5, -2.0, 0.3, -0.1])  # log p1/p0
    log_probs = np.stack([-np.logaddexp(0, odds), -np.logaddexp(0, -odds)], axis=1)
    probabilities, window_class = speaker_classes(log_probs, labels)
    speaker_positive, window_positive = speaker_labels(odds, labels)
    np.testing.assert_array_equal(np.argmax(probabilities, axis=1) == 1, speaker_positive)
    np.testing.assert_array_equal(window_class == 1, window_positive)
    # Speaker 0 is positive on the mean; its window at -5 nats keeps its own class.
    assert window_class.tolist() == [1, 1, 0, 1, 0, 0, 0, 1, 1]
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(3))


def test_nearest_centroid_moves_a_window_to_the_voice_it_is_closest_to():
    from agegender.speakers import nearest_centroid

    rng = np.random.default_rng(3)
    centres = _voices(rng, 2)
    points = _windows(rng, centres, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    wrong = np.array([0, 0, 0, 0, 0, 1, 1, 1])  # window 4 is voice 1's, put with voice 0
    assert nearest_centroid(points, wrong).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # Ids stay in order of first appearance.
    assert nearest_centroid(points, 1 - wrong).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def _close_voices_of_two_genders(rng, windows=12):
    """Two voices 0.15 apart in cosine (one speaker at threshold 0.41), the first heard as
    male (p ~ 0.95), the second as female (p ~ 0.05): [windows, dims], [windows] p(male),
    [windows] true voice."""
    base = _voices(rng, 2)
    other = 0.9 * base[0] + np.sqrt(1 - 0.9 ** 2) * base[1]  # cosine 0.9 to base[0]
    order = np.tile([0, 1], windows // 2)
    points = _windows(rng, np.stack([base[0], other]), order, spread=0.05)
    male = np.where(order == 0, 0.95, 0.05) + rng.uniform(-0.04, 0.04, windows)
    return points, male, order


def test_gender_weight_keeps_close_voices_of_opposite_gender_apart():
    points, male, order = _close_voices_of_two_genders(np.random.default_rng(4))
    # Voice alone: one speaker (the two voices are closer than the threshold).
    assert cluster_speakers(points, distance_threshold=0.41).tolist() == [0] * len(order)
    assert cluster_speakers(points, distance_threshold=0.41, gender=male,
                            gender_weight=0.0).tolist() == [0] * len(order)
    # With the gender model's disagreement added: the two voices, in order.
    apart = cluster_speakers(points, distance_threshold=0.41, gender=male, gender_weight=0.4,
                             gender_neighbours=3)
    np.testing.assert_array_equal(apart, order)
    # Unknown gender (NaN, a window too short for the model) adds nothing.
    unknown = cluster_speakers(points, distance_threshold=0.41, gender=np.full(len(order),
                               np.nan), gender_weight=0.4, gender_neighbours=3)
    assert unknown.tolist() == [0] * len(order)


def test_a_voice_heard_as_both_genders_is_not_split_when_neighbours_are_averaged():
    rng = np.random.default_rng(5)
    points = _windows(rng, _voices(rng, 1), np.zeros(20, dtype=int), spread=0.05)
    male = np.tile([0.95, 0.05], 10)  # the model flips on every other window of one voice
    kwargs = {"distance_threshold": 0.41, "gender": male, "gender_weight": 0.6}
    assert cluster_speakers(points, gender_neighbours=1, **kwargs).max() >= 1  # split
    assert cluster_speakers(points, **kwargs).tolist() == [0] * 20  # default: 40 averaged


def test_neighbour_mean_averages_the_nearest_voices_and_skips_unknown_values():
    from agegender.speakers import neighbour_mean

    rng = np.random.default_rng(6)
    points = _windows(rng, _voices(rng, 2), np.array([0, 0, 0, 1, 1, 1]), spread=0.05)
    values = np.array([1.0, 0.0, np.nan, 0.2, 0.4, np.nan])
    np.testing.assert_allclose(neighbour_mean(points, values, 3, rows=2),
                               [0.5, 0.5, 0.5, 0.3, 0.3, 0.3])
    np.testing.assert_allclose(neighbour_mean(points, values, 1), values)
    assert np.isnan(neighbour_mean(points[:1], np.array([np.nan]), 5)).all()


def test_gender_distance_is_the_condensed_probability_difference():
    from agegender.speakers import gender_distance

    np.testing.assert_allclose(gender_distance(np.array([0.1, np.nan, 0.9]), 3),
                               [0.0, 0.8, 0.0])
    with pytest.raises(ParameterError, match="shape"):
        gender_distance(np.array([0.1, 0.2]), 3)
    with pytest.raises(ParameterError, match="0-1"):
        gender_distance(np.array([0.1, 1.5]), 2)
    with pytest.raises(ParameterError, match="gender_weight"):
        cluster_speakers(np.eye(3, DIMS), gender=np.zeros(3), gender_weight=-0.1)
    with pytest.raises(ParameterError, match="gender_neighbours"):
        cluster_speakers(np.eye(3, DIMS), gender=np.zeros(3), gender_neighbours=0)

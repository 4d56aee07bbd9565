"""Speaker clustering on synthetic embeddings: groups found, ids by first appearance,
a fixed count honoured, per-speaker log-odds."""

from __future__ import annotations

import numpy as np
import pytest

from agegender.errors import ParameterError
from agegender.speakers import cluster_speakers, speaker_ids, speaker_log_odds

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

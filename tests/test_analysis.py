"""Per-speaker rows, speaker-level votes and the whole analysis against hand-computed values
(``agegender.analysis``)."""

from __future__ import annotations

import numpy as np
import pytest

from agegender import reports
from agegender.analysis import analyse, speaker_level_metrics, speaker_table


def test_per_speaker_table_and_speaker_level_votes_by_hand():
    names = ["male", "female"]
    #         speaker: a  a  a  b  b  c  c  c  c
    speakers = ["a", "a", "a", "b", "b", "c", "c", "c", "c"]
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    p_female = np.array([.2, .9, .4, .8, .3, .45, .45, .49, .95])
    probabilities = np.stack([1 - p_female, p_female], axis=1)
    table = speaker_table(y_true, probabilities, speakers, names,
                          pitch_pred=np.array([0, 0, 0, 1, 1, 0, 0, 1, 1]))
    # c: 1 of 4 right; b: 1 of 2; a: 2 of 3 → worst first.
    assert list(table["speaker_id"]) == ["c", "b", "a"]
    row = table.set_index("speaker_id")
    assert row.loc["c", "clips"] == 4 and row.loc["c", "accuracy"] == pytest.approx(0.25)
    assert row.loc["c", "mean_p_true"] == pytest.approx((.45 + .45 + .49 + .95) / 4)
    assert row.loc["c", "majority_label"] == "male"  # 3 of 4 clips say male
    assert row.loc["c", "mean_probability_label"] == "female"  # mean p = 0.585
    assert row.loc["b", "majority_label"] == "female"  # 1:1 tie → higher mean p (0.55)
    assert row.loc["a", "majority_label"] == "male" and row.loc["a", "true"] == "male"
    assert row.loc["a", "mean_p_true"] == pytest.approx(1 - (.2 + .9 + .4) / 3)
    assert row.loc["c", "pitch_accuracy"] == pytest.approx(0.5)
    level = speaker_level_metrics(table)
    assert level["n_speakers"] == 3
    assert level["majority_accuracy"] == pytest.approx(2 / 3)  # a, b right; c wrong
    assert level["mean_probability_accuracy"] == pytest.approx(1.0)
    assert level["majority_uar"] == pytest.approx((1 + 1 / 2) / 2)


def test_a_speaker_with_two_labels_gets_two_rows():
    table = speaker_table(np.array([0, 0, 1]), np.array([[.9, .1], [.8, .2], [.7, .3]]),
                          ["s", "s", "s"], ["teens", "twenties"])
    assert sorted(zip(table["true"], table["accuracy"], strict=True)) == [
        ("teens", 1.0), ("twenties", 0.0)]


def test_analyse_shows_what_pooling_hides():
    # Two speakers per class; one female speaker is always called male.
    speakers = np.array(["m1", "m2", "f1", "f2"]).repeat(25)
    y_true = np.array([0, 0, 1, 1]).repeat(25)
    p_female = np.select([speakers == "f1", speakers == "f2"], [0.1, 0.9], 0.1)
    result = analyse(y_true, np.stack([1 - p_female, p_female], 1), ["male", "female"],
                     speakers=speakers, f0_hz=np.where(y_true == 1, 210.0, 110.0),
                     pitch_threshold={"hz": 165.0, "source": "fixed", "unvoiced_code": 0},
                     n_resamples=300)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["speakers"].iloc[0]["speaker_id"] == "f1"
    assert result["speakers"].iloc[0]["accuracy"] == 0.0
    assert result["speakers_per_class"] == {"male": 2, "female": 2}
    assert result["pitch"]["balanced_accuracy"] == 1.0
    text = "\n".join(reports._speaker_lines(result, ["male", "female"]))
    assert "speakers per class: male 2, female 2" in text
    assert "over speakers, 4 units" in text
    assert "f1" in text.split("worst first")[1].splitlines()[2]

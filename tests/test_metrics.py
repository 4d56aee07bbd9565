"""Metrics and intervals against hand-computed answers (``agegender.metrics``)."""

from __future__ import annotations

import numpy as np
import pytest

from agegender.metrics import bootstrap_ci, classification_metrics, uar


def test_everyone_called_female_has_uar_one_half_in_every_resample():
    # 1 man, 2 women, all called female: recall male 0, female 1, UAR 0.5 whatever is drawn,
    # because each resample draws the man from the men and the women from the women.
    ci = bootstrap_ci([0, 1, 1], [1, 1, 1], ["m", "f1", "f2"])
    assert uar([0, 1, 1], [1, 1, 1]) == 0.5
    assert ci["balanced_accuracy"] == (0.5, 0.5)
    assert ci["stratified"] and ci["n_units"] == 3


def test_stratified_interval_by_hand():
    # Class 0: speaker a right, speaker b wrong (one clip each); class 1: speaker c right.
    # A resample draws 2 of {a, b} and 1 of {c}: recall_0 is 0, 1/2 or 1 with chance
    # 1/4, 1/2, 1/4 and recall_1 is 1, so UAR is 0.5, 0.75 or 1.0: the 95 % interval is
    # [0.5, 1.0]. (Drawing 3 of the 3 speakers unstratified can miss class 1, UAR 0.)
    ci = bootstrap_ci([0, 0, 1], [0, 1, 1], ["a", "b", "c"], n_resamples=4000, seed=1)
    assert ci["balanced_accuracy"] == (0.5, 1.0)
    # Accuracy pools clips: 1/3, 2/3 or 3/3.
    assert ci["accuracy"] == pytest.approx((1 / 3, 1.0))


def test_a_speaker_with_clips_in_two_classes_is_one_unit_in_each_stratum():
    # Speaker s has one clip as class 0 (right) and one as class 1 (wrong); t is class 1,
    # right. Recall_0 is always 1; recall_1 is 0, 1/2 or 1.
    ci = bootstrap_ci([0, 1, 1], [0, 0, 1], ["s", "s", "t"], n_resamples=4000, seed=2)
    assert ci["balanced_accuracy"] == (0.5, 1.0)
    assert ci["n_units"] == 2  # two distinct speakers


def test_macro_f1_of_the_headline_is_the_report_macro_average():
    # Class c is absent from the split and never predicted; a: P 1 R 1/2 F1 2/3,
    # b: P 2/3 R 1 F1 4/5 → macro-F1 over {a, b} = 11/15; averaging c's 0 in gave 22/45.
    result = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    assert result["macro_f1"] == pytest.approx(11 / 15)
    macro_row = next(line for line in result["report"].splitlines() if "macro avg" in line)
    assert float(macro_row.split()[4]) == pytest.approx(result["macro_f1"], abs=5e-5)
    assert result["absent"] == ["c"]
    assert result["confusion"].shape == (3, 3)  # the matrix keeps every class of the task


def test_a_predicted_class_absent_from_the_truth_is_scored_in_both():
    # c is predicted once but never true: precision 0, recall undefined → F1 0 in both.
    result = classification_metrics([0, 1, 1], [0, 1, 2], ["a", "b", "c"])
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    macro_row = next(line for line in result["report"].splitlines() if "macro avg" in line)
    assert float(macro_row.split()[4]) == pytest.approx(result["macro_f1"], abs=5e-5)
    assert result["balanced_accuracy"] == pytest.approx((1 + 1 / 2) / 2)


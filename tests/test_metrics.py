"""Metrics and intervals against hand-computed answers (``agegender.metrics``)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from agegender.metrics import (bootstrap_ci, classification_metrics,
                               paired_bootstrap_difference, uar)


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


def test_metrics_on_a_fixed_prediction_set():
    #            class:  0  0  0  0  1  1  2  2
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2])
    result = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(5 / 8)
    # recalls: a 2/4, b 1/2, c 2/2 → UAR = (0.5 + 0.5 + 1) / 3
    assert result["balanced_accuracy"] == pytest.approx(2 / 3)
    # precision a 2/3, b 1/2, c 2/3; F1 a 4/7, b 1/2, c 4/5
    assert result["macro_f1"] == pytest.approx((4 / 7 + 1 / 2 + 4 / 5) / 3)
    assert result["majority_baseline"] == pytest.approx(4 / 8)
    np.testing.assert_array_equal(result["confusion"], [[2, 1, 1], [1, 1, 0], [0, 0, 2]])
    assert "a" in result["report"] and "0.5000" in result["report"]


def test_uar_ignores_classes_absent_from_the_split():
    result = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), ["a", "b", "c"])
    assert result["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert result["confusion"].shape == (3, 3)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_speakers():
    rng = np.random.default_rng(0)

    def corpus(speakers: int):
        # Each speaker: 5 clips, right on each with a speaker-specific rate.
        skill = rng.uniform(0.3, 1.0, speakers).repeat(5)
        y_true = np.tile([0, 1], speakers * 5 // 2 + 1)[: speakers * 5]
        right = rng.random(speakers * 5) < skill
        return y_true, np.where(right, y_true, 1 - y_true), np.arange(speakers).repeat(5)

    widths = []
    for n in (10, 200):
        y_true, y_pred, speakers = corpus(n)
        ci = bootstrap_ci(y_true, y_pred, speakers.astype(str), seed=3)
        accuracy = np.mean(y_true == y_pred)
        uar = classification_metrics(y_true, y_pred, ["a", "b"])["balanced_accuracy"]
        assert ci["accuracy"][0] <= accuracy <= ci["accuracy"][1]
        assert ci["balanced_accuracy"][0] <= uar <= ci["balanced_accuracy"][1]
        assert ci["unit"] == "speakers" and ci["n_units"] == n
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < widths[0] / 2
    again = bootstrap_ci(*corpus(10)[:2], corpus(10)[2].astype(str), seed=3)
    assert again["n_resamples"] == 1000


def test_bootstrap_resamples_speakers_not_clips():
    # 10 speakers × 20 clips, 5 of each class; a speaker is either always right or always
    # wrong (3 of 5 right in each class).
    y_true = (np.arange(10).repeat(20) >= 5).astype(int)
    speakers = np.arange(10).repeat(20).astype(str)
    right = np.isin(np.arange(10).repeat(20), [0, 1, 2, 5, 6, 7])
    y_pred = np.where(right, y_true, 1 - y_true)
    by_speaker = bootstrap_ci(y_true, y_pred, speakers, seed=0)
    by_clip = bootstrap_ci(y_true, y_pred, [""] * 200, seed=0)
    assert by_clip["unit"] == "clips (speaker ids unknown)" and by_clip["n_units"] == 200
    width = {name: ci["accuracy"][1] - ci["accuracy"][0]
             for name, ci in (("speaker", by_speaker), ("clip", by_clip))}
    # 10 independent units vs 200: about sqrt(20) ≈ 4.5x wider.
    assert width["speaker"] > 3 * width["clip"]
    assert by_speaker["accuracy"][0] < 0.35 and by_speaker["accuracy"][1] > 0.85
    again = bootstrap_ci(y_true, y_pred, speakers, seed=0)
    assert again["accuracy"] == by_speaker["accuracy"]  # seeded


def test_paired_difference_of_a_model_with_itself_is_zero():
    truth, predicted = [0, 0, 1, 1], [0, 1, 1, 0]
    result = paired_bootstrap_difference(truth, predicted, predicted, ["a", "b", "c", "d"])
    assert result["difference"] == 0.0
    assert result["interval"] == (0.0, 0.0)
    assert result["a_better"] == 0.0


def test_paired_difference_by_hand():
    # Class 0: speaker a (A right, B wrong), speaker b (both right); class 1: c (both right).
    # A resample draws 2 of {a, b}: A's recall_0 is 1; B's is the share of b among the two
    # draws: 0, 1/2 or 1 with chance 1/4, 1/2, 1/4. UAR difference = (1 - B's recall_0) / 2:
    # 0.5, 0.25 or 0, so the interval is [0, 0.5] and A is better in 3/4 of resamples.
    result = paired_bootstrap_difference([0, 0, 1], [0, 0, 1], [1, 0, 1], ["a", "b", "c"],
                                         n_resamples=4000, seed=1)
    assert result["difference"] == pytest.approx(0.25)
    assert result["interval"] == (0.0, 0.5)
    assert result["a_better"] == pytest.approx(0.75, abs=0.03)


def test_paired_interval_sees_a_change_that_the_models_own_intervals_hide():
    # 60 speakers a class, 3 clips each, a model right on 80 % of speakers; the second model
    # makes the same calls plus errors on ~10 more men: the two models' own intervals overlap,
    # yet the paired interval of the difference excludes zero.
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 180)
    speakers = [f"s{i // 3}" for i in range(360)]
    right = np.repeat(rng.uniform(size=120) < 0.8, 3)
    better = np.where(right, truth, 1 - truth)
    worse = better.copy()
    worse[:36][right[:36]] = 1  # the right-called men among the first 12 speakers
    result = paired_bootstrap_difference(truth, better, worse, speakers)
    low, high = result["interval"]
    assert 0 < low <= result["difference"] <= high
    assert result["a_better"] > 0.99
    better_low = bootstrap_ci(truth, better, speakers)["balanced_accuracy"][0]
    worse_high = bootstrap_ci(truth, worse, speakers)["balanced_accuracy"][1]
    assert better_low < worse_high


def test_paired_difference_refuses_unequal_lengths():
    from agegender.errors import ParameterError

    with pytest.raises(ParameterError, match="differ in length: 2, 2, 1, 2"):
        paired_bootstrap_difference([0, 1], [0, 1], [0], ["a", "b"])


# Gaps found by mutation testing (docs/mutation.md): each test below fails on a mutant of
# agegender.metrics that the tests above let through.


def test_the_report_names_the_scored_classes_with_four_decimals():
    # c is predicted but never true: its recall is 0/0, reported as 0 (zero_division=0).
    result = classification_metrics([0, 1, 1], [0, 1, 2], ["a", "b", "c"])
    rows = {line.split()[0]: line.split()[1:] for line in result["report"].splitlines()
            if line.strip() and line.split()[0] in ("a", "b", "c")}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["c"][:3] == ["0.0000", "0.0000", "0.0000"]  # precision, recall, F1
    assert rows["b"][:3] == ["1.0000", "0.5000", "0.6667"]
    assert result["n"] == 3 and result["report_labels"] == [0, 1, 2]
    assert result["absent"] == []


def test_one_clip_is_its_own_majority():
    result = classification_metrics([1], [0], ["a", "b"])
    assert result["majority_baseline"] == 1.0 and result["accuracy"] == 0.0
    ci = bootstrap_ci([1], [1], ["s"], n_resamples=10)
    assert ci["balanced_accuracy"] == (1.0, 1.0) and ci["n_units"] == 1


# Class 0: speakers a (right) and b (wrong); class 1: speaker c (right). Each resample's
# recall of class 0 is 0, 1/2 or 1 (chance 1/4, 1/2, 1/4): UAR 0.5, 0.75 or 1.0. A 45 %
# interval (percentiles 27.5 and 72.5) is therefore (0.75, 0.75), a 95 % one (0.5, 1.0).
BY_HAND = ([0, 0, 1], [0, 1, 1], ["a", "b", "c"])


def test_interval_percentiles_follow_the_level_and_the_result_records_it():
    narrow = bootstrap_ci(*BY_HAND, n_resamples=4000, level=0.45, seed=2)
    assert narrow["balanced_accuracy"] == (0.75, 0.75)
    assert narrow["level"] == 0.45 and narrow["n_resamples"] == 4000
    assert narrow["n_units"] == 3 and narrow["unit"] == "speakers"
    wide = bootstrap_ci(*BY_HAND, n_resamples=4000, level=0.999, seed=2)
    assert wide["balanced_accuracy"] == (0.5, 1.0)
    # Paired: a = BY_HAND's predictions, b calls everyone class 1: UAR a - UAR b is half of
    # a's class-0 recall, 0, 1/4 or 1/2 with chance 1/4, 1/2, 1/4.
    y_true, pred_a, speakers = BY_HAND
    paired = paired_bootstrap_difference(y_true, pred_a, [1, 1, 1], speakers,
                                         n_resamples=4000, level=0.45, seed=2)
    assert paired["interval"] == (0.25, 0.25)
    assert paired["difference"] == pytest.approx(0.25)
    assert paired["a_better"] == pytest.approx(0.75, abs=0.03)
    assert paired["level"] == 0.45 and paired["n_resamples"] == 4000
    assert paired["n_units"] == 3
    assert paired_bootstrap_difference(y_true, pred_a, [1, 1, 1], speakers, n_resamples=4000,
                                       level=0.999, seed=2)["interval"] == (0.0, 0.5)


def test_the_seed_decides_the_resamples():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 60)
    y_pred = np.where(rng.uniform(size=60) < 0.7, y_true, 1 - y_true)
    speakers = [f"s{i}" for i in range(60)]
    one = bootstrap_ci(y_true, y_pred, speakers, n_resamples=200, seed=5)
    assert bootstrap_ci(y_true, y_pred, speakers, n_resamples=200, seed=5) == one
    assert bootstrap_ci(y_true, y_pred, speakers, n_resamples=200, seed=6) != one
    other = 1 - y_pred
    pair = paired_bootstrap_difference(y_true, y_pred, other, speakers, n_resamples=200, seed=5)
    assert paired_bootstrap_difference(y_true, y_pred, other, speakers, n_resamples=200,
                                       seed=5) == pair
    assert paired_bootstrap_difference(y_true, y_pred, other, speakers, n_resamples=200,
                                       seed=6) != pair


def test_each_stratum_draws_only_its_own_class_speakers():
    # Three classes, one speaker each: a stratum of one unit always draws that unit, so
    # UAR is 2/3 in every resample. Drawing from another class's units would vary it.
    ci = bootstrap_ci([0, 1, 2], [0, 0, 2], ["a", "b", "c"], n_resamples=500)
    assert ci["balanced_accuracy"] == pytest.approx((2 / 3, 2 / 3))
    assert ci["accuracy"] == pytest.approx((2 / 3, 2 / 3))


def test_large_strata_are_drawn_in_chunks_with_the_same_answer():
    # 6,001 speakers: the draws of class 0 come in chunks of 5,000,000 // 6,000 = 833
    # resamples, so 1,000 resamples take two chunks.
    y_true = np.r_[np.zeros(6000, int), 1]
    speakers = [f"s{i}" for i in range(6001)]
    ci = bootstrap_ci(y_true, y_true, speakers, n_resamples=1000)
    assert ci["balanced_accuracy"] == (1.0, 1.0) and ci["n_units"] == 6001


def test_clips_without_a_speaker_id_are_counted_in_the_unit_name():
    ci = bootstrap_ci([0, 0, 1, 1], [0, 0, 1, 1], ["a", "", "b", ""], n_resamples=10)
    assert ci["unit"] == "speakers (2 clips without speaker id count as one each)"
    assert ci["n_units"] == 4


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"n_resamples": 0}, "n_resamples=0, level=0.95: need >= 1 and in (0, 1)"),
    ({"level": 0.0}, "level=0.0"),
    ({"level": 1.0}, "level=1.0"),
    ({"level": 1.5}, "level=1.5"),
])
def test_bad_resample_count_or_level_is_refused(kwargs, needle):
    from agegender.errors import ParameterError

    for function, args in ((bootstrap_ci, BY_HAND),
                           (paired_bootstrap_difference, (BY_HAND[0], BY_HAND[1], BY_HAND[1],
                                                          BY_HAND[2]))):
        with pytest.raises(ParameterError, match=re.escape(needle)):
            function(*args, **kwargs)
    assert bootstrap_ci(*BY_HAND, n_resamples=1)["n_resamples"] == 1  # one is enough


def test_no_clips_or_unequal_lengths_are_refused_naming_the_function_and_arrays():
    from agegender.errors import ParameterError

    with pytest.raises(ParameterError, match="^bootstrap_ci needs at least one clip$"):
        bootstrap_ci([], [], [])
    with pytest.raises(ParameterError, match="^paired_bootstrap_difference needs at least"):
        paired_bootstrap_difference([], [], [], [])
    with pytest.raises(ParameterError, match=r"^y_true, y_pred, speakers differ in length: "
                                             r"2, 2, 1$"):
        bootstrap_ci([0, 1], [0, 1], ["a"])
    with pytest.raises(ParameterError, match=r"^y_true, pred_a, pred_b, speakers differ"):
        paired_bootstrap_difference([0, 1], [0, 1], [0], ["a", "b"])

"""Classification metrics and their intervals: pure functions on arrays of label codes.

* ``uar``: unweighted average recall (balanced accuracy) over the classes present in the
  truth, through scikit-learn's ``balanced_accuracy_score``;
* ``classification_metrics``: accuracy, UAR, macro-F1, majority baseline, report, confusion;
  the macro-F1 of the headline and the report's ``macro avg`` use one label set;
* ``bootstrap_ci``: a stratified cluster bootstrap: speakers are resampled *within each true
  class*, so every resample holds every class of the split and its UAR is taken over the
  same classes as the point estimate.

Nothing here reads files or imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agegender.errors import ParameterError

N_RESAMPLES = 1000  # bootstrap resamples: enough for stable 2.5/97.5 percentiles


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted average recall: the mean over the classes present in ``y_true`` of the
    share of their clips called right (scikit-learn's ``balanced_accuracy_score``).

    Args:
        y_true: true codes [n].
        y_pred: predicted codes [n].
    """
    import warnings  # noqa: PLC0415

    from sklearn.metrics import balanced_accuracy_score  # noqa: PLC0415

    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected (calling a woman a teen).
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(np.asarray(y_true), np.asarray(y_pred)))


def report_labels(y_true: np.ndarray, y_pred: np.ndarray) -> list[int]:
    """The codes a report scores: those in the truth or among the predictions.

    A class neither present nor predicted has no precision, recall or F1; averaging its
    zeros in would lower macro-F1 for a class the split simply lacks.
    """
    return sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (UAR), macro-F1, majority baseline, report, confusion.

    Args:
        y_true: true codes, shape [n].
        y_pred: predicted codes, shape [n].
        class_names: name of each code.

    Returns:
        dict with ``n``, ``accuracy``, ``balanced_accuracy`` (UAR over the classes present),
        ``macro_f1`` (over ``report_labels``, the same set as the report's ``macro avg``),
        ``majority_baseline`` (accuracy of always predicting the split's most frequent
        class), ``report`` (text), ``report_labels`` (the codes it lists), ``absent``
        (names of the task's classes neither present nor predicted) and ``confusion``
        ([classes, classes] counts over every class of the task, rows = true class).
    """
    from sklearn import metrics  # noqa: PLC0415

    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    codes = list(range(len(class_names)))
    scored = report_labels(y_true, y_pred)
    return {
        "n": int(len(y_true)),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": uar(y_true, y_pred),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, labels=scored, average="macro",
                                           zero_division=0)),
        "majority_baseline": float(np.bincount(y_true, minlength=len(codes)).max()
                                   / max(1, len(y_true))),
        "report": metrics.classification_report(y_true, y_pred, labels=scored,
                                                target_names=[class_names[c] for c in scored],
                                                zero_division=0, digits=4),
        "report_labels": scored,
        "absent": [class_names[c] for c in codes if c not in scored],
        "confusion": metrics.confusion_matrix(y_true, y_pred, labels=codes),
    }


def _units(speakers: Sequence[str], y_true: np.ndarray) -> tuple[np.ndarray, str, int]:
    """Bootstrap unit of each clip: (speaker, true class), or the clip alone without an id.

    A speaker whose clips carry two labels (age across years) is one unit in each class's
    stratum: strata must not share units.

    Returns:
        (int unit index [clips], description of the unit for the report, number of distinct
        speakers and anonymous clips).
    """
    speakers = np.asarray([str(s) for s in speakers], dtype=object)
    unknown = speakers == ""
    # A clip without speaker id is its own unit: it cannot be tied to any other clip.
    names = np.where(unknown, [f"\0clip{i}" for i in range(len(speakers))], speakers)
    keyed = np.asarray([f"{name}\0{code}" for name, code in zip(names, y_true, strict=True)],
                       dtype=object)
    _, units = np.unique(keyed, return_inverse=True)
    count = len(np.unique(names))
    if not unknown.any():
        return units, "speakers", count
    if unknown.all():
        return units, "clips (speaker ids unknown)", count
    return (units, f"speakers ({int(unknown.sum())} clips without speaker id count as one each)",
            count)


def _checked(caller: str, codes: dict[str, np.ndarray], speakers: Sequence[str],
             n_resamples: int, level: float) -> list[np.ndarray]:
    """The code arrays as int arrays, after a one-line ParameterError for unequal lengths,
    no clips, or a bad resample count or level."""
    arrays = [np.asarray(values, dtype=int) for values in codes.values()]
    lengths = [len(a) for a in arrays] + [len(speakers)]
    if len(set(lengths)) > 1:
        raise ParameterError(f"{', '.join(codes)}, speakers differ in length: "
                             f"{', '.join(map(str, lengths))}")
    if n_resamples < 1 or not 0 < level < 1:
        raise ParameterError(f"n_resamples={n_resamples}, level={level}: need >= 1 and in (0, 1)")
    if lengths[0] == 0:
        raise ParameterError(f"{caller} needs at least one clip")
    return arrays


def _resampled_counts(y_true: np.ndarray, predictions: list[np.ndarray], units: np.ndarray,
                      n_resamples: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The stratified cluster resamples of ``bootstrap_ci``, shared by every predictor.

    Returns:
        (clips drawn [resamples, classes present], for each predictor the clips of them it
        called right [resamples, classes present]).
    """
    n_units = int(units.max()) + 1
    classes = np.unique(y_true)  # [present classes]
    clips = np.zeros(n_units)  # clips of each unit (all of one true class)
    np.add.at(clips, units, 1)
    right = []  # per predictor: clips of each unit it called right
    for y_pred in predictions:
        counts = np.zeros(n_units)
        np.add.at(counts, units, y_pred == y_true)
        right.append(counts)
    unit_class = np.zeros(n_units, dtype=int)
    unit_class[units] = y_true
    rng = np.random.default_rng(seed)
    total = np.zeros((n_resamples, len(classes)))
    correct = [np.zeros((n_resamples, len(classes))) for _ in predictions]
    for k, code in enumerate(classes):
        members = np.flatnonzero(unit_class == code)  # this stratum's units
        chunk = max(1, 5_000_000 // len(members))  # keeps [chunk, members] draws small
        for start in range(0, n_resamples, chunk):
            size = min(chunk, n_resamples - start)
            draws = members[rng.integers(0, len(members), size=(size, len(members)))]
            total[start:start + size, k] = clips[draws].sum(axis=1)
            for counts, out in zip(right, correct, strict=True):
                out[start:start + size, k] = counts[draws].sum(axis=1)
    return total, correct


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, speakers: Sequence[str], *,
                 n_resamples: int = N_RESAMPLES, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile intervals of accuracy and UAR: a stratified cluster bootstrap.

    Strata are the true classes, clusters are speakers: each resample draws, for every class,
    as many of that class's speakers as it has, with replacement, and pools all their clips
    of that class. Every resample therefore holds every class of the split, and its UAR is
    the mean recall over exactly those classes, as the point estimate's. Clips without a
    speaker id are drawn on their own (the clip bootstrap, stratified, when no id is known).

    ``scipy.stats.bootstrap`` resamples several samples independently (strata), but refuses
    a stratum of one unit, which a test split of few speakers per age group often has; the
    seeded resample here has no such limit.

    Args:
        y_true: true codes [clips].
        y_pred: predicted codes [clips].
        speakers: speaker id of each clip [clips], "" when unknown.
        n_resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: resampling seed (the same seed gives the same interval).

    Returns:
        ``accuracy`` and ``balanced_accuracy`` as (low, high), ``unit`` (what was resampled),
        ``n_units`` (distinct speakers, plus clips without an id), ``n_resamples``, ``level``,
        ``stratified`` (True: within true classes).

    Example:
        One man and two women, everyone called female: UAR 0.5 in every resample.

        >>> bootstrap_ci([0, 1, 1], [1, 1, 1], ["m", "f1", "f2"])["balanced_accuracy"]
        (0.5, 0.5)
    """
    y_true, y_pred = _checked("bootstrap_ci", {"y_true": y_true, "y_pred": y_pred},
                              speakers, n_resamples, level)
    units, unit_name, n_speakers = _units(speakers, y_true)
    total, (correct,) = _resampled_counts(y_true, [y_pred], units, n_resamples, seed)
    accuracy = correct.sum(axis=1) / total.sum(axis=1)
    balanced = (correct / total).mean(axis=1)  # every class is in every resample
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    return {"accuracy": tuple(float(v) for v in np.percentile(accuracy, tails)),
            "balanced_accuracy": tuple(float(v) for v in np.percentile(balanced, tails)),
            "unit": unit_name, "n_units": n_speakers, "n_resamples": n_resamples,
            "level": level, "stratified": True}


def paired_bootstrap_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                                speakers: Sequence[str], *, n_resamples: int = N_RESAMPLES,
                                level: float = 0.95, seed: int = 0) -> dict:
    """UAR of ``pred_a`` minus UAR of ``pred_b`` on the same clips, with a paired interval.

    Both predictors are scored on the very same resamples (``bootstrap_ci``'s stratified
    speaker bootstrap), so what the speakers share cancels: two models whose own intervals
    overlap almost entirely can still differ reliably, or not.

    Args:
        y_true: true codes [clips].
        pred_a: predicted codes of the first predictor [clips].
        pred_b: predicted codes of the second [clips].
        speakers: speaker id of each clip [clips], "" when unknown.
        n_resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: resampling seed.

    Returns:
        ``difference`` (point estimate, UAR a - b), ``interval`` (low, high), ``a_better``
        (share of resamples where a's UAR is higher), ``n_units``, ``n_resamples``, ``level``.

    Example:
        >>> paired_bootstrap_difference([0, 1, 1], [0, 1, 1], [1, 1, 1], ["m", "f1", "f2"])
        ... # doctest: +ELLIPSIS
        {'difference': 0.5, 'interval': (0.5, 0.5), 'a_better': 1.0, ...}
    """
    y_true, pred_a, pred_b = _checked(
        "paired_bootstrap_difference", {"y_true": y_true, "pred_a": pred_a, "pred_b": pred_b},
        speakers, n_resamples, level)
    units, _, n_speakers = _units(speakers, y_true)
    total, (right_a, right_b) = _resampled_counts(y_true, [pred_a, pred_b], units,
                                                  n_resamples, seed)
    difference = ((right_a - right_b) / total).mean(axis=1)  # [resamples]
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    return {"difference": uar(y_true, pred_a) - uar(y_true, pred_b),
            "interval": tuple(float(v) for v in np.percentile(difference, tails)),
            "a_better": float(np.mean(difference > 0)), "n_units": n_speakers,
            "n_resamples": n_resamples, "level": level}

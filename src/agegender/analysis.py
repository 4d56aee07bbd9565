"""Every number of a test report, from arrays: pure functions, no files, no TensorFlow.

The report core works on arrays (true codes, probabilities, speaker ids, and for gender the
median F0 of each clip), so the shard-based ``evaluation.evaluate`` and the audio-based
``evaluation.evaluate_clips`` report the same numbers:

* clip-level accuracy, UAR, macro-F1, majority-class baseline, confusion matrix;
* 95 % bootstrap intervals over speakers, stratified by true class (``metrics.bootstrap_ci``:
  clips resampled with their speaker, because clips of one speaker are not independent, and
  speakers within their class, so every resample has every class), over clips only when
  speaker ids are unknown;
* one row per (speaker, true class): clips, accuracy, mean p(true class), majority-vote and
  mean-probability labels; speaker-level accuracy by both votes; speakers per class;
* for gender, the "median F0 above a threshold → female" baseline with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from agegender import labels
from agegender.metrics import N_RESAMPLES, bootstrap_ci, classification_metrics

UNKNOWN_SPEAKER = "(unknown)"


def _vote(codes: np.ndarray, probabilities: np.ndarray) -> int:
    """Most frequent predicted code; a tie goes to the higher mean probability."""
    votes = np.bincount(codes, minlength=probabilities.shape[1]).astype(float)
    return int(np.argmax(votes + 1e-6 * probabilities.mean(axis=0)))


def speaker_table(y_true: np.ndarray, probabilities: np.ndarray, speakers: Sequence[str],
                  class_names: Sequence[str], *,
                  pitch_pred: np.ndarray | None = None,
                  f0_hz: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (speaker, true class), worst first.

    A speaker whose clips carry several labels (age across years) gets one row per label.
    Clips without a speaker id are pooled per class under ``(unknown)``.

    Args:
        y_true: true codes [clips].
        probabilities: model outputs [clips, classes].
        speakers: speaker id per clip [clips], "" when unknown.
        class_names: name of each code.
        pitch_pred: pitch-baseline codes [clips] (gender), adds ``pitch_accuracy``.
        f0_hz: median F0 per clip [clips], adds the speaker's ``median_f0_hz``.

    Returns:
        columns speaker_id, true, clips, accuracy, mean_p_true, majority_label,
        mean_probability_label (+ pitch_accuracy, median_f0_hz), sorted by accuracy then
        mean_p_true, ascending.
    """
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    y_pred = probabilities.argmax(axis=1)
    frame = pd.DataFrame({"speaker_id": [str(s) or UNKNOWN_SPEAKER for s in speakers],
                          "code": y_true, "index": np.arange(len(y_true))})
    rows = []
    for (speaker, code), group in frame.groupby(["speaker_id", "code"], sort=True):
        idx = group["index"].to_numpy()
        p = probabilities[idx]  # [clips of this speaker, classes]
        row = {"speaker_id": speaker, "true": class_names[code], "clips": len(idx),
               "accuracy": float(np.mean(y_pred[idx] == code)),
               "mean_p_true": float(p[:, code].mean()),
               "majority_label": class_names[_vote(y_pred[idx], p)],
               "mean_probability_label": class_names[int(p.mean(axis=0).argmax())]}
        if pitch_pred is not None:
            row["pitch_accuracy"] = float(np.mean(np.asarray(pitch_pred)[idx] == code))
        if f0_hz is not None:
            voiced = np.asarray(f0_hz, dtype=float)[idx]
            voiced = voiced[np.isfinite(voiced)]
            row["median_f0_hz"] = float(np.median(voiced)) if len(voiced) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["accuracy", "mean_p_true", "speaker_id"],
                             kind="stable").reset_index(drop=True)


def speaker_level_metrics(table: pd.DataFrame) -> dict:
    """Accuracy and UAR over (speaker, true class) rows, a speaker's label by majority vote
    and by mean probability (rows of ``speaker_table``; the ``(unknown)`` pool excluded).

    Returns:
        ``n_speakers``, ``majority_accuracy``, ``majority_uar``, ``mean_probability_accuracy``,
        ``mean_probability_uar`` (nan when no speaker is known).
    """
    known = table[table["speaker_id"] != UNKNOWN_SPEAKER]
    result = {"n_speakers": int(len(known))}
    for vote in ("majority", "mean_probability"):
        right = known[f"{vote}_label"] == known["true"]
        result[f"{vote}_accuracy"] = float(right.mean()) if len(known) else float("nan")
        result[f"{vote}_uar"] = (float(right.groupby(known["true"]).mean().mean())
                                 if len(known) else float("nan"))
    return result


def speakers_per_class(y_true: np.ndarray, speakers: Sequence[str],
                       class_names: Sequence[str]) -> dict[str, int | None]:
    """Distinct known speakers of each class present ({name: count}; None: ids unknown)."""
    frame = pd.DataFrame({"code": np.asarray(y_true, dtype=int),
                          "speaker": [str(s) for s in speakers]})
    result: dict[str, int | None] = {}
    for code, group in frame.groupby("code", sort=True):
        known = group.loc[group["speaker"] != "", "speaker"]
        result[class_names[code]] = int(known.nunique()) if len(known) else None
    return result


def analyse(y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], *,
            speakers: Sequence[str], f0_hz: np.ndarray | None = None,
            pitch_threshold: dict | None = None, n_resamples: int = N_RESAMPLES,
            seed: int = 0) -> dict:
    """Every number of a report, from arrays.

    Args:
        y_true: true codes [clips].
        probabilities: model outputs [clips, classes].
        class_names: name of each code.
        speakers: speaker id per clip [clips], "" when unknown.
        f0_hz: median F0 per clip [clips], nan where unknown (gender only).
        pitch_threshold: ``{"hz", "source", "unvoiced_code"}``; with ``f0_hz`` adds the
            pitch baseline.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``classification_metrics`` keys plus ``ci``, ``speakers``, ``speaker_level``,
        ``speakers_per_class``, ``y_pred``, and ``pitch`` (None, or the baseline's
        ``pitch_pred``, ``threshold``, metrics, ``ci``, ``speaker_level``, ``unvoiced``).
    """
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    y_pred = probabilities.argmax(axis=1)
    result = classification_metrics(y_true, y_pred, class_names)
    result["y_true"], result["y_pred"] = y_true, y_pred
    result["ci"] = bootstrap_ci(y_true, y_pred, speakers, n_resamples=n_resamples, seed=seed)
    result["speakers_per_class"] = speakers_per_class(y_true, speakers, class_names)
    result["pitch"] = None
    pitch_pred = None
    if f0_hz is not None and pitch_threshold is not None:
        from agegender.pitch import threshold_predictions  # noqa: PLC0415

        pitch_pred = threshold_predictions(f0_hz, pitch_threshold["hz"],
                                           unvoiced_code=pitch_threshold.get("unvoiced_code", 0))
        pitch = classification_metrics(y_true, pitch_pred, class_names)
        pitch["ci"] = bootstrap_ci(y_true, pitch_pred, speakers, n_resamples=n_resamples,
                                   seed=seed)
        one_hot = np.eye(len(class_names))[pitch_pred]  # votes of a hard classifier
        pitch["speaker_level"] = speaker_level_metrics(
            speaker_table(y_true, one_hot, speakers, class_names))
        pitch.update(pitch_pred=pitch_pred, threshold=pitch_threshold,
                     unvoiced=int(np.sum(~np.isfinite(np.asarray(f0_hz, dtype=float)))))
        result["pitch"] = pitch
    result["speakers"] = speaker_table(y_true, probabilities, speakers, class_names,
                                       pitch_pred=pitch_pred, f0_hz=f0_hz)
    result["speaker_level"] = speaker_level_metrics(result["speakers"])
    result["parts"] = gender_age_part_metrics(y_true, y_pred) \
        if tuple(class_names) == labels.GENDER_AGES else None
    return result


def gender_age_part_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Gender and age accuracy/UAR of ``gender_age`` predictions, each part read through
    ``labels.gender_age_parts`` (never ``code // 6``: the two tasks order gender apart).

    Args:
        y_true: true ``gender_age`` codes [clips].
        y_pred: predicted ``gender_age`` codes [clips].

    Returns:
        ``{"gender": {...}, "age": {...}}`` of ``classification_metrics``.
    """
    parts = np.array([labels.gender_age_parts(int(c)) for c in range(len(labels.GENDER_AGES))])
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    return {name: classification_metrics(parts[y_true, k], parts[y_pred, k], names)
            for k, (name, names) in enumerate((("gender", labels.GENDERS),
                                               ("age", labels.AGES)))}

"""Evaluation on a held-out split: metrics, per-speaker truth, uncertainty, pitch baseline.

The report core works on arrays (true codes, probabilities, speaker ids, and for gender the
median F0 of each clip), so the shard-based ``evaluate`` and the audio-based
``evaluate_clips`` write the same report:

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

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import atomic, figures, labels
from agegender.errors import DatasetError
from agegender.metrics import N_RESAMPLES, bootstrap_ci, classification_metrics  # noqa: F401

log = logging.getLogger(__name__)

LOG_SPEAKER_ROWS = 20  # worst speakers shown in the text log; the CSV has all
UNKNOWN_SPEAKER = "(unknown)"
PITCH_FIT_CLIPS = 2000  # train+dev clips the pitch threshold is fitted on, at most
MIN_DEV_SPEAKERS, MIN_DEV_CLIPS = 3, 10  # per class, below which dev is called thin


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


def _ci(interval: tuple[float, float]) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def model_sidecar(path: str | os.PathLike) -> Path:
    """``predictions_age.csv`` → ``predictions_age.csv.model.json``: names the model a file
    of predictions came from (``checkpoints.model_identity``)."""
    return Path(f"{os.fspath(path)}.model.json")


def _identity(model_path: str | os.PathLike) -> dict | None:
    """``checkpoints.model_identity``, or None when the path is not on disk (array tests)."""
    from agegender.checkpoints import model_identity  # noqa: PLC0415

    return model_identity(model_path) if Path(model_path).exists() else None


def format_report(result: dict, class_names: Sequence[str], *, task: str, split: str,
                  model_path: str, identity: dict | None = None) -> str:
    """The human-readable test log (``result`` from ``analyse`` or ``classification_metrics``).

    ``identity`` (``checkpoints.model_identity``) adds the model's sha256, size and epoch.
    """
    model_lines = [f"model: {model_path}"]
    if identity is not None:
        epoch = (identity["epoch"] if identity["epoch"] is not None
                 else "unknown (no best_model JSON beside it)")
        model_lines += [f"model file: {identity['path']}",
                        f"model sha256: {identity['sha256']}",
                        f"model size: {identity['size']} bytes   best epoch: {epoch}"]
    matrix = pd.DataFrame(result["confusion"], index=[f"true {n}" for n in class_names],
                          columns=list(class_names))
    lines = [
        f"task: {task}   split: {split}   clips: {result['n']}",
        *model_lines,
        *([f"probabilities: {result['scoring']}"] if result.get("scoring") else []),
        f"accuracy:               {result['accuracy']:.4f}",
        f"balanced accuracy (UAR): {result['balanced_accuracy']:.4f}",
        f"macro F1:               {result['macro_f1']:.4f}",
        f"majority-class baseline: {result['majority_baseline']:.4f}",
        "",
        *([f"classes absent from this split and never predicted (left out of macro-F1 and "
            f"the report): {', '.join(result['absent'])}"] if result.get("absent") else []),
        "classification report:",
        result["report"],
        "confusion matrix (rows: true, columns: predicted):",
        matrix.to_string(),
        "",
    ]
    if result.get("parts"):
        lines += ["read as its two parts (labels.gender_age_parts):"]
        lines += [f"  {name}: accuracy {part['accuracy']:.4f}, UAR "
                  f"{part['balanced_accuracy']:.4f}" for name, part in result["parts"].items()]
        lines += [""]
    if "ci" in result:
        lines += _speaker_lines(result, class_names)
        if task == "gender" and result["pitch"] is None:
            lines += ["pitch baseline: not available (no audio for these clips)", ""]
    return "\n".join(lines)


def _speaker_lines(result: dict, class_names: Sequence[str]) -> list[str]:
    ci, level, pitch = result["ci"], result["speaker_level"], result["pitch"]
    per_class = ", ".join(f"{name} {'unknown' if n is None else n}"
                          for name, n in result["speakers_per_class"].items())
    lines = [f"speakers per class: {per_class}",
             f"{ci['level']:.0%} confidence intervals: percentile bootstrap over {ci['unit']}, "
             f"{ci['n_units']} units, resampled within each true class (stratified: every "
             f"resample has every class; UAR over the same classes), {ci['n_resamples']} "
             "resamples (seed fixed)"]
    rows = {"accuracy": [f"{result['accuracy']:.4f} {_ci(ci['accuracy'])}"],
            "UAR": [f"{result['balanced_accuracy']:.4f} {_ci(ci['balanced_accuracy'])}"],
            "speaker accuracy (majority vote)": [f"{level['majority_accuracy']:.4f}"],
            "speaker accuracy (mean probability)": [f"{level['mean_probability_accuracy']:.4f}"],
            "speaker UAR (majority vote)": [f"{level['majority_uar']:.4f}"],
            "majority-class baseline": [f"{result['majority_baseline']:.4f}"]}
    columns = ["model"]
    if pitch is not None:
        columns.append("pitch baseline")
        pitch_level = pitch["speaker_level"]
        for name, value in (
                ("accuracy", f"{pitch['accuracy']:.4f} {_ci(pitch['ci']['accuracy'])}"),
                ("UAR", f"{pitch['balanced_accuracy']:.4f} "
                        f"{_ci(pitch['ci']['balanced_accuracy'])}"),
                ("speaker accuracy (majority vote)", f"{pitch_level['majority_accuracy']:.4f}"),
                ("speaker accuracy (mean probability)", "-"),
                ("speaker UAR (majority vote)", f"{pitch_level['majority_uar']:.4f}"),
                ("majority-class baseline", "-")):
            rows[name].append(value)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    lines += [f"model{' vs pitch baseline' if pitch is not None else ''} "
              f"(speaker rows: {level['n_speakers']} (speaker, class) pairs):",
              table.to_string(), ""]
    if pitch is not None:
        threshold = pitch["threshold"]
        lines += [f"pitch baseline: median F0 > {threshold['hz']:.1f} Hz → "
                  f"{class_names[1]}, else {class_names[0]}; threshold {threshold['source']}; "
                  f"{pitch['unvoiced']} clips without F0 (unvoiced or no audio) called "
                  f"{class_names[threshold.get('unvoiced_code', 0)]}", ""]
    speakers = result["speakers"]
    shown = speakers.head(LOG_SPEAKER_ROWS)
    lines += [f"per speaker, worst first ({len(shown)} of {len(speakers)} rows shown):",
              shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    return lines


def write_report(result: dict, class_names: Sequence[str], *, task: str, split: str,
                 model_path: str, results_dir: str | os.PathLike, keys: Sequence[str],
                 speakers: Sequence[str], audio_paths: Sequence[str] | None = None,
                 f0_hz: np.ndarray | None = None, probabilities: np.ndarray) -> dict:
    """Writes the report files of ``analyse``'s result.

    Files in ``RESULTS/<task>/``: ``test_log_<task>.txt``, ``confusion_matrix_<task>.png``,
    ``predictions_<task>.csv`` (per clip: key, speaker, [audio_path], true, predicted,
    every class probability, [median_f0_hz, pitch_predicted]), ``per_speaker_<task>.csv``
    and ``per_speaker_<task>.png``.

    Returns:
        ``{"text": log text, "paths": {name: path}}``.
    """
    from agegender.checkpoints import describe_model  # noqa: PLC0415

    out = Path(results_dir) / task
    identity = _identity(model_path)
    named = f"\n{describe_model(identity, short=True)}" if identity is not None else ""
    paths = {"log": out / f"test_log_{task}.txt",
             "confusion": out / f"confusion_matrix_{task}.png",
             "predictions": out / f"predictions_{task}.csv",
             "per_speaker": out / f"per_speaker_{task}.csv",
             "per_speaker_figure": out / f"per_speaker_{task}.png"}
    text = format_report(result, class_names, task=task, split=split, model_path=model_path,
                         identity=identity)
    atomic.write_text(paths["log"], text)
    figures.confusion_matrix(result["confusion"], list(class_names), paths["confusion"],
                             title=f"{task} — {split} (accuracy {result['accuracy']:.1%}, "
                                   f"UAR {result['balanced_accuracy']:.1%}){named}")
    table = pd.DataFrame({"key": list(keys), "speaker_id": list(speakers)})
    if audio_paths is not None:
        table["audio_path"] = list(audio_paths)
    table["true"] = [class_names[c] for c in result["y_true"]]
    table["predicted"] = [class_names[c] for c in result["y_pred"]]
    for i, name in enumerate(class_names):
        table[f"p_{name}"] = np.asarray(probabilities)[:, i].round(6)
    if f0_hz is not None:
        table["median_f0_hz"] = np.round(np.asarray(f0_hz, dtype=float), 2)
    if result["pitch"] is not None:
        table["pitch_predicted"] = [class_names[c] for c in result["pitch"]["pitch_pred"]]
    atomic.write_text(paths["predictions"], table.to_csv(index=False))
    if identity is not None:
        paths["predictions_model"] = model_sidecar(paths["predictions"])
        atomic.write_text(paths["predictions_model"], json.dumps(
            {**identity, "task": task, "split": split}, indent=2))
    atomic.write_text(paths["per_speaker"], result["speakers"].to_csv(index=False))
    ci = result["ci"]
    figures.per_speaker(result["speakers"], list(class_names), paths["per_speaker_figure"],
                        title=f"{task} — {split}: accuracy per speaker (UAR "
                              f"{result['balanced_accuracy']:.2f}, 95% CI "
                              f"{ci['balanced_accuracy'][0]:.2f}-{ci['balanced_accuracy'][1]:.2f}"
                              f" over {ci['unit'].split(' ')[0]}){named}")
    return {"text": text, "paths": {k: str(v) for k, v in paths.items()}}


def pitch_threshold_from_splits(dataset_dir: str | os.PathLike, *,
                                max_clips: int = PITCH_FIT_CLIPS, seed: int = 0) -> dict:
    """Fits the gender pitch threshold on the train and dev manifests' clips.

    Up to ``max_clips`` clips (seeded sample) are measured, through the F0 cache. Falls back
    to 165 Hz when the manifests, their audio or one of the genders is missing.

    Returns:
        ``{"hz", "source" (text for the report), "unvoiced_code"}``.
    """
    from agegender import pitch  # noqa: PLC0415
    from agegender.preprocess import read_manifest  # noqa: PLC0415

    try:
        table = pd.concat([read_manifest(dataset_dir, split) for split in ("train", "dev")],
                          ignore_index=True)
    except DatasetError as err:
        return _fallback_threshold(f"no train/dev manifest ({err})")
    return pitch_threshold_from_clips(table["audio_path"].tolist(),
                                      table["gender_code"].to_numpy(), root=dataset_dir,
                                      cache=pitch.cache_path(dataset_dir), max_clips=max_clips,
                                      seed=seed, what="train+dev")


def pitch_threshold_from_clips(audio_paths: Sequence[str], gender_codes: np.ndarray, *,
                               root: str | os.PathLike | None = None,
                               cache: str | os.PathLike | None = None,
                               max_clips: int = PITCH_FIT_CLIPS, seed: int = 0,
                               what: str = "fit") -> dict:
    """Fits the pitch threshold (max UAR) on labelled clips; 165 Hz if that is impossible.

    Args:
        audio_paths: files [clips], absolute or relative to ``root``.
        gender_codes: 0 male, 1 female [clips].
        root: base of relative paths.
        cache: F0 cache CSV.
        max_clips: seeded sample size.
        seed: sample seed.
        what: names the clips in the report ("train+dev").
    """
    from agegender import pitch  # noqa: PLC0415

    codes = np.asarray(gender_codes, dtype=int)
    labelled = np.flatnonzero(codes >= 0)  # -1: the clip has no gender label
    audio_paths, codes = [audio_paths[i] for i in labelled], codes[labelled]
    if len(codes) == 0:
        return _fallback_threshold(f"no {what} clips with a gender label")
    pick = np.random.default_rng(seed).permutation(len(codes))[:max_clips]
    f0 = pitch.cached_median_f0([audio_paths[i] for i in pick], root=root, cache=cache)
    codes = codes[pick]
    majority = int(np.bincount(codes, minlength=2).argmax())
    try:
        hz = pitch.fit_threshold(f0, codes == 1)
    except ParameterError as err:
        return _fallback_threshold(f"cannot fit on {what} ({err})", unvoiced_code=majority)
    voiced = np.isfinite(f0)
    fitted = pitch.threshold_predictions(f0[voiced], hz)
    uar = classification_metrics(codes[voiced], fitted, ("male", "female"))["balanced_accuracy"]
    return {"hz": hz, "unvoiced_code": majority,
            "source": f"fitted for best UAR on {int(voiced.sum())} voiced {what} clips "
                      f"(UAR {uar:.3f} there)"}


def _fallback_threshold(why: str, unvoiced_code: int = 0) -> dict:
    from agegender.pitch import DEFAULT_THRESHOLD_HZ  # noqa: PLC0415

    log.warning("pitch baseline: using the fixed %.0f Hz threshold: %s", DEFAULT_THRESHOLD_HZ,
                why)
    return {"hz": DEFAULT_THRESHOLD_HZ, "unvoiced_code": unvoiced_code,
            "source": f"fixed at {DEFAULT_THRESHOLD_HZ:.0f} Hz ({why})"}


def manifest_audio_paths(dataset_dir: str | os.PathLike, split: str,
                         keys: Sequence[str]) -> list[str] | None:
    """Audio path (relative to ``dataset_dir``) of each clip key from the split's manifest;
    "" for keys it lacks; None without a manifest."""
    from agegender.preprocess import read_manifest  # noqa: PLC0415

    try:
        manifest = read_manifest(dataset_dir, split)
    except DatasetError as err:
        log.warning("no audio paths for the %s clips: %s", split, err)
        return None
    paths = dict(zip(manifest["key"], manifest["audio_path"], strict=True))
    return [paths.get(key, "") for key in keys]


def _gender_f0(audio_paths: list[str] | None, root, cache) -> np.ndarray | None:
    from agegender import pitch  # noqa: PLC0415

    if audio_paths is None:
        return None
    known = [i for i, path in enumerate(audio_paths) if path]
    f0 = np.full(len(audio_paths), np.nan)
    f0[known] = pitch.cached_median_f0([audio_paths[i] for i in known], root=root, cache=cache)
    return f0


def evaluate(dataset_dir: str | os.PathLike, model_path: str | os.PathLike, task: str | None,
             *, split: str = "test", results_dir: str | os.PathLike = "results",
             batch_size: int = 128, n_resamples: int = N_RESAMPLES,
             skip_corrupt: bool = False, verify: bool = True,
             max_crops: int | None = None) -> dict:
    """Evaluates a model on a split's TFRecords and writes the reports (``write_report``).

    The report scores what inference ships: for a model with a constant time scale
    (``voice``) and ``max_crops`` > 1, each clip's probabilities are the mean over the crops
    ``AgeGenderDetector(max_crops=...)`` takes, computed from the clip's audio (found through
    ``DIR/Manifest``); a clip whose audio cannot be read keeps its shard image's
    probabilities (counted in the log and the report). Otherwise the shard image is the
    very image the detector makes (one per clip). ``max_crops`` None: the detector's default.

    The model's stored feature settings must equal the shards' (``check_model_features``).
    ``skip_corrupt`` leaves corrupt records out (``result["corrupt"]`` says which) instead of
    stopping; ``verify`` checks the model file against its ``.sha256`` sidecar.

    For gender, the clips' audio (found through ``DIR/Manifest``) gives the pitch baseline,
    its threshold fitted on train+dev (``pitch_threshold_from_splits``).

    Raises:
        ModelError: the model does not fit ``task`` (checked before any data is read).
        DatasetError: no shards for the split.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from agegender import pitch  # noqa: PLC0415
    from agegender.checkpoints import open_model  # noqa: PLC0415
    from agegender.pipeline import make_dataset  # noqa: PLC0415

    model = open_model(model_path, task, verify=verify)
    task, names = model.task, list(model.class_names)
    from agegender.pipeline import split_index  # noqa: PLC0415

    check_model_features(model, split_index(dataset_dir, split, task), dataset_dir, split)
    data, index = make_dataset(dataset_dir, split, task, batch_size=batch_size, training=False,
                               with_keys=True, image_size=model.features.image_size,
                               skip_corrupt=skip_corrupt, pitch=model.pitch)
    keys, speakers, truth, probabilities = [], [], [], []
    # disable=None: a bar only on a terminal, where it is redrawn in place. In a pipe or log
    # file every redraw stays, and tqdm draws the last state twice (last update, then close),
    # so "evaluating test" showed up twice at 100 %; there the log line below says it once.
    started = time.monotonic()
    for inputs, codes, batch_keys, batch_speakers in tqdm(data, desc=f"evaluating {split}",
                                                          unit="batch", disable=None):
        if model.pitch:
            probabilities.append(model.predict(inputs["spectrogram"].numpy(),
                                               inputs["pitch"].numpy()))
        else:
            probabilities.append(model.predict(inputs.numpy()))
        truth.append(codes.numpy())
        keys += [k.decode() for k in batch_keys.numpy()]
        speakers += [s.decode() for s in batch_speakers.numpy()]
    probabilities = np.concatenate(probabilities)
    y_true = np.concatenate(truth)
    log.info("evaluated %d %s clips in %.1f s", len(y_true), split, time.monotonic() - started)
    audio_paths = manifest_audio_paths(dataset_dir, split, keys)
    probabilities, scoring = _as_detector_scores(model, probabilities, audio_paths, dataset_dir,
                                                 max_crops=max_crops, batch_size=batch_size)
    f0 = threshold = None
    if task == "gender":
        f0 = _gender_f0(audio_paths, dataset_dir, pitch.cache_path(dataset_dir))
        threshold = pitch_threshold_from_splits(dataset_dir) if f0 is not None else None
    result = _report(y_true, probabilities, names, task=task, split=split,
                     model_path=str(model_path), results_dir=results_dir, keys=keys,
                     speakers=speakers, audio_paths=audio_paths, f0_hz=f0, threshold=threshold,
                     n_resamples=n_resamples, scoring=scoring)
    result = _with_leakage_line(result, dataset_dir)
    return {**result, "corrupt": index.get("corrupt", {"records": 0, "shards": []})}


def _as_detector_scores(model, shard_probabilities: np.ndarray, audio_paths: list[str] | None,
                        root: str | os.PathLike, *, max_crops: int | None,
                        batch_size: int) -> tuple[np.ndarray, str]:
    """The detector's probabilities for the clips, where they differ from the shard image's.

    Returns:
        (probabilities [clips, classes], how they were made, in words).
    """
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415

    detector = AgeGenderDetector.from_model(model, batch_size=min(batch_size, 64),
                                            max_crops=max_crops)
    scoring = detector.scoring()
    if not (model.features.fixed_time and detector.max_crops > 1):
        return shard_probabilities, f"{scoring}; from the shard images"
    if audio_paths is None:
        log.warning("no manifest: the %d clips are scored on their shard image (one crop), "
                    "not on %d crops as inference does", len(shard_probabilities),
                    detector.max_crops)
        return shard_probabilities, "the centre crop of each clip (shard images; no manifest " \
                                    "to find the audio for more crops)"
    files = [str(Path(root) / path) if path else "" for path in audio_paths]
    results = detector.predict_files([f for f in files if f])
    by_file = iter(results)
    names = list(model.class_names)
    probabilities = np.array(shard_probabilities, dtype=np.float64)
    kept = 0
    for i, file in enumerate(files):
        result = next(by_file) if file else None
        if result is not None and result["error"] is None:
            probabilities[i] = [result["probabilities"][name] for name in names]
            kept += 1
    if kept < len(files):
        log.warning("%d of %d clips were refused by the detector (no speech, or the audio "
                    "could not be read): scored on their shard image (one crop)",
                    len(files) - kept, len(files))
    return probabilities, (f"{scoring}; from the audio"
                           + (f" ({len(files) - kept} clips the detector refused, no speech "
                              "or unreadable audio: their shard image)" if kept < len(files)
                              else ""))



def _with_leakage_line(result: dict, dataset_dir: str | os.PathLike) -> dict:
    """Adds the line on speaker leakage (``leakage.report_line``) to the test log."""
    from agegender import leakage  # noqa: PLC0415

    line = leakage.report_line(dataset_dir)
    if line is None:
        return result
    log.info("%s", line)
    text = result["text"].rstrip("\n") + "\n" + line + "\n"
    atomic.write_text(result["paths"]["log"], text)
    return {**result, "text": text}


def check_model_features(model, index: dict, dataset_dir: str | os.PathLike,
                         split: str) -> None:
    """Refuses a model whose stored feature settings differ from the shards' (a model trained
    on mel images must not be scored on spectrogram shards).

    Args:
        model: a ``checkpoints.LoadedModel``.
        index: the split's shard index (its ``features``; older indexes without it pass).

    Raises:
        ModelError: one line naming every setting that differs, with both values.
    """
    import dataclasses  # noqa: PLC0415

    from agegender.config import FeatureParams  # noqa: PLC0415
    from agegender.errors import ModelError  # noqa: PLC0415

    stored = index.get("features")
    if not stored:
        return
    defaults = dataclasses.asdict(FeatureParams())
    ours = dataclasses.asdict(model.features)
    pairs = {name: (ours.get(name, defaults.get(name)), stored.get(name, defaults.get(name)))
             for name in sorted(set(ours) | set(stored))}
    differ = [f"{name} {mine!r} vs {theirs!r}" for name, (mine, theirs) in pairs.items()
              if mine != theirs]
    if differ:
        raise ModelError(f"--model_path={model.path} was trained on other features than the "
                         f"{split} shards of {dataset_dir} (model vs shards: "
                         f"{'; '.join(differ)}); preprocess the data with the model's "
                         "settings or use a model trained on these shards")


def _report(y_true, probabilities, names, *, task, split, model_path, results_dir, keys,
            speakers, audio_paths, f0_hz, threshold, n_resamples, scoring) -> dict:
    """``analyse`` + ``write_report``: the one path both evaluations end in."""
    if f0_hz is not None and not np.isfinite(f0_hz).any():
        # Every clip unvoiced means no audio was found, not a baseline worth reporting.
        log.warning("pitch baseline left out: no clip's audio gave an F0")
        f0_hz = threshold = None
    result = analyse(y_true, probabilities, names, speakers=speakers, f0_hz=f0_hz,
                     pitch_threshold=threshold, n_resamples=n_resamples)
    result["scoring"] = scoring
    written = write_report(result, names, task=task, split=split, model_path=model_path,
                           results_dir=results_dir, keys=keys, speakers=speakers,
                           audio_paths=audio_paths, f0_hz=f0_hz, probabilities=probabilities)
    return {**result, **written, "task": task}


def evaluate_clips(model_path: str | os.PathLike, clips: pd.DataFrame, *,
                   task: str | None = None, root: str | os.PathLike | None = None,
                   results_dir: str | os.PathLike = "results", split: str = "clips",
                   pitch_threshold: float | None = None, fit_clips: pd.DataFrame | None = None,
                   pitch_cache: str | os.PathLike | None = None, batch_size: int = 64,
                   n_resamples: int = N_RESAMPLES, max_crops: int | None = None,
                   min_voiced: float = 0.1) -> dict:
    """Evaluates a model on audio files listed in a table; the same report as ``evaluate``.

    The probabilities are ``AgeGenderDetector.predict``'s, with the same ``max_crops`` (None:
    the detector's default), so the report scores exactly what inference ships. Clips that
    cannot be decoded are left out (logged).

    Args:
        model_path: the model.
        clips: one row per clip: ``audio_path`` (absolute or relative to ``root``),
            ``speaker_id`` ("" or missing column: unknown), the label as ``<task>_code``
            or as a name in column ``<task>``; optional ``key`` (default: the file stem).
        task: expected task; None reads it from the model.
        root: base folder of relative audio paths.
        results_dir: reports go to ``results_dir/<task>/``.
        split: names the clips in the report.
        pitch_threshold: gender: fixed threshold, Hz. None: fitted on ``fit_clips`` (same
            columns) when given, else 165 Hz.
        fit_clips: gender: labelled clips to fit the pitch threshold on (train/dev).
        pitch_cache: F0 cache CSV (e.g. ``pitch.cache_path(root)``); None: no cache.
        batch_size: images per model call.
        n_resamples: bootstrap resamples.
        max_crops: crops averaged per clip (``AgeGenderDetector``); None: its default.
        min_voiced: the speech gate (``agegender.speech``, as in preprocessing and
            inference): clips with fewer voiced frames are left out and listed in the
            result's ``no_speech`` ({key: voiced share}); 0 = no gate.

    Raises:
        ModelError: the model does not fit ``task``.
        DatasetError: a column is missing, or no clip could be decoded.
    """
    from agegender import pitch  # noqa: PLC0415
    from agegender.checkpoints import open_model  # noqa: PLC0415
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415
    from agegender.speech import check_min_voiced  # noqa: PLC0415

    check_min_voiced(min_voiced)
    model = open_model(model_path, task)
    detector = AgeGenderDetector.from_model(model, batch_size=batch_size,
                                            min_voiced=min_voiced, max_crops=max_crops)
    task, names = model.task, list(model.class_names)
    codes = _label_codes(clips, task, names)
    if (codes < 0).any():  # task-aware tables: rows without this task's label take no part
        log.info("%d of %d clips have no %s label and are left out", int((codes < 0).sum()),
                 len(codes), task)
        clips, codes = clips[codes >= 0], codes[codes >= 0]
    if not len(clips):
        raise DatasetError(f"no clip has a {task} label")
    base = Path(root) if root is not None else None
    paths = [str(p) for p in clips["audio_path"]]
    files = [str(base / p) if base is not None else p for p in paths]
    speakers = (clips["speaker_id"].fillna("").astype(str).tolist()
                if "speaker_id" in clips.columns else [""] * len(clips))
    keys = (clips["key"].astype(str).tolist() if "key" in clips.columns
            else [Path(p).stem for p in paths])
    kept, probabilities, no_speech = [], [], {}
    for i, result in enumerate(detector.predict_files(files)):
        if not result.get("speech", True):
            no_speech[keys[i]] = result["voiced"]
            log.warning("left out: %s", result["error"])
            continue
        if result["error"] is not None:
            log.warning("left out: %s", result["error"])
            continue
        kept.append(i)
        probabilities.append([result["probabilities"][name] for name in names])
    if not kept:
        raise DatasetError(f"none of the {len(clips)} clips could be decoded")
    f0 = threshold = None
    if task == "gender":
        f0 = pitch.cached_median_f0([paths[i] for i in kept], root=base, cache=pitch_cache)
        if pitch_threshold is not None:
            threshold = {"hz": float(pitch_threshold), "unvoiced_code": 0,
                         "source": f"given ({float(pitch_threshold):.1f} Hz)"}
        elif fit_clips is not None:
            threshold = pitch_threshold_from_clips(
                [str(p) for p in fit_clips["audio_path"]], _label_codes(fit_clips, task, names),
                root=base, cache=pitch_cache, what="fit")
        else:
            threshold = _fallback_threshold("no clips to fit it on were given")
    result = _report(codes[kept], np.asarray(probabilities), names, task=task, split=split,
                     model_path=str(model_path), results_dir=results_dir,
                     keys=[keys[i] for i in kept], speakers=[speakers[i] for i in kept],
                     audio_paths=[paths[i] for i in kept], f0_hz=f0, threshold=threshold,
                     n_resamples=n_resamples, scoring=f"{detector.scoring()}; from the audio")
    return {**result, "no_speech": no_speech}


def _label_codes(clips: pd.DataFrame, task: str, names: list[str]) -> np.ndarray:
    """Label codes [clips] from ``<task>_code`` or from names in ``<task>``."""
    if "audio_path" not in clips.columns:
        raise DatasetError("clip table has no audio_path column")
    if f"{task}_code" in clips.columns:
        codes = clips[f"{task}_code"].astype(int).to_numpy()
    elif task in clips.columns:
        unknown = sorted(set(clips[task]) - set(names))
        if unknown:
            raise DatasetError(f"clip table: {task} values {unknown[:3]} are not one of "
                               f"{', '.join(names)}")
        codes = clips[task].map(names.index).to_numpy()
    else:
        raise DatasetError(f"clip table has neither {task}_code nor {task} column")
    if codes.size and not -1 <= codes.min() <= codes.max() < len(names):
        raise DatasetError(f"clip table: {task}_code outside -1..{len(names) - 1}")
    return codes


def thin_split_warnings(counts_by_class: dict[str, int],
                        speakers_by_class: dict[str, int | None], *, split: str = "dev",
                        min_speakers: int = MIN_DEV_SPEAKERS,
                        min_clips: int = MIN_DEV_CLIPS) -> list[str]:
    """Warnings for a validation split too thin to choose the best epoch on.

    Args:
        counts_by_class: clips of each class (every class of the task, 0 included).
        speakers_by_class: distinct speakers of each class; None when ids are unknown.
        split: named in the text.
        min_speakers: fewer speakers than this in a class is thin.
        min_clips: fewer clips than this in a class is thin.

    Returns:
        One line per problem; empty when the split is fine.
    """
    problems = []
    for name, count in counts_by_class.items():
        speakers = speakers_by_class.get(name)
        if count < min_clips:
            problems.append(f"{name}: {count} clips (< {min_clips})")
        if speakers is not None and speakers < min_speakers:
            problems.append(f"{name}: {speakers} speakers (< {min_speakers})")
    if not problems:
        return []
    return [f"{split} split is thin ({'; '.join(problems)}): the best epoch chosen on it "
            "means little"]


def check_dev_split(dataset_dir: str | os.PathLike, task: str,
                    results_dir: str | os.PathLike) -> list[str]:
    """Counts dev clips and speakers per class, logs ``thin_split_warnings`` as WARNING and
    writes them (with the counts) to ``results_dir/<task>/train_warnings_<task>.txt``."""
    from agegender import labels  # noqa: PLC0415
    from agegender.pipeline import split_labels_and_speakers  # noqa: PLC0415

    names = labels.class_names(task)
    codes, speakers = split_labels_and_speakers(dataset_dir, "dev", task)
    counts = {name: int(np.sum(codes == c)) for c, name in enumerate(names)}
    per_class = speakers_per_class(codes, speakers, names)
    known = any(speakers)  # no ids at all: speaker counts are unknown, not zero
    by_class = {name: (per_class.get(name) or 0) if known else None for name in names}
    found = thin_split_warnings(counts, by_class)
    for line in found:
        log.warning("%s", line)
    summary = ", ".join(f"{name} {counts[name]} clips/"
                        f"{'?' if by_class[name] is None else by_class[name]} speakers"
                        for name in names)
    atomic.write_text(Path(results_dir) / task / f"train_warnings_{task}.txt",
                      "\n".join([f"dev: {summary}", *(found or ["no warnings"])]) + "\n")
    return found

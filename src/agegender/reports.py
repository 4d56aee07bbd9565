"""The files of a test report, written from ``analysis.analyse``'s result.

``RESULTS/<task>/<model name>/`` (``report_dirs``: one folder per model, so a test of one
model never lands beside another's reports): the human-readable log (``format_report``), the confusion-matrix and
per-speaker figures, the per-clip predictions CSV with its model sidecar, and the
per-speaker CSV. Nothing here computes a metric: every number comes in with the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import atomic, figures, report_dirs

LOG_SPEAKER_ROWS = 20  # worst speakers shown in the text log; the CSV has all


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
    """Writes the report files of ``analysis.analyse``'s result.

    Files in ``report_dirs.report_dir(results_dir, task, model_path)``
    (``RESULTS/<task>/<model name>/``): ``test_log_<task>.txt``, ``confusion_matrix_<task>.png``,
    ``predictions_<task>.csv`` (per clip: key, speaker, [audio_path], true, predicted,
    every class probability, [median_f0_hz, pitch_predicted]), ``per_speaker_<task>.csv``
    and ``per_speaker_<task>.png``.

    Returns:
        ``{"text": log text, "paths": {name: path}}``.

    Raises:
        OutputError: the folder holds another model's reports (``report_dirs.claim``).
    """
    from agegender.checkpoints import describe_model  # noqa: PLC0415

    out = report_dirs.claim(results_dir, task, model_path)
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

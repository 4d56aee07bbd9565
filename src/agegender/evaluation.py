"""Evaluation on a held-out split: metrics, report, confusion matrix, per-clip predictions."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import atomic, figures

log = logging.getLogger(__name__)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           class_names: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, balanced accuracy (UAR), macro-F1, majority baseline, report, confusion.

    Args:
        y_true: true codes, shape [n].
        y_pred: predicted codes, shape [n].
        class_names: name of each code.

    Returns:
        dict with ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``majority_baseline``
        (accuracy of always predicting the split's most frequent class), ``report`` (text)
        and ``confusion`` ([classes, classes] counts, rows = true class).
    """
    from sklearn import metrics  # noqa: PLC0415

    codes = list(range(len(class_names)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = sorted(set(y_true.tolist()))
    return {
        "n": int(len(y_true)),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        # Recall averaged over the classes present in the split (UAR).
        "balanced_accuracy": float(np.mean([np.mean(y_pred[y_true == c] == c)
                                            for c in present])),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, labels=present, average="macro",
                                           zero_division=0)),
        "majority_baseline": float(np.bincount(y_true, minlength=len(codes)).max()
                                   / max(1, len(y_true))),
        "report": metrics.classification_report(y_true, y_pred, labels=codes,
                                                target_names=list(class_names),
                                                zero_division=0, digits=4),
        "confusion": metrics.confusion_matrix(y_true, y_pred, labels=codes),
    }


def format_report(result: dict, class_names: list[str] | tuple[str, ...], *, task: str,
                  split: str, model_path: str) -> str:
    """The human-readable test log."""
    matrix = pd.DataFrame(result["confusion"], index=[f"true {n}" for n in class_names],
                          columns=list(class_names))
    return "\n".join([
        f"task: {task}   split: {split}   clips: {result['n']}",
        f"model: {model_path}",
        f"accuracy:               {result['accuracy']:.4f}",
        f"balanced accuracy (UAR): {result['balanced_accuracy']:.4f}",
        f"macro F1:               {result['macro_f1']:.4f}",
        f"majority-class baseline: {result['majority_baseline']:.4f}",
        "",
        "classification report:",
        result["report"],
        "confusion matrix (rows: true, columns: predicted):",
        matrix.to_string(),
        "",
    ])


def evaluate(dataset_dir: str | os.PathLike, model_path: str | os.PathLike, task: str | None,
             *, split: str = "test", results_dir: str | os.PathLike = "results",
             batch_size: int = 128) -> dict:
    """Evaluates a model on a split's TFRecords and writes the reports.

    Writes ``RESULTS/<task>/test_log_<task>.txt``, ``confusion_matrix_<task>.png`` and
    ``predictions_<task>.csv`` (one row per clip: key, speaker, true, predicted, every class
    probability).

    Raises:
        ModelError: the model does not fit ``task`` (checked before any data is read).
        DatasetError: no shards for the split.
    """
    from agegender.checkpoints import open_model  # noqa: PLC0415
    from agegender.pipeline import make_dataset  # noqa: PLC0415

    model = open_model(model_path, task)
    task, names = model.task, list(model.class_names)
    data, _ = make_dataset(dataset_dir, split, task, batch_size=batch_size, training=False,
                           with_keys=True, image_size=model.features.image_size)
    keys, speakers, truth, probabilities = [], [], [], []
    from tqdm import tqdm  # noqa: PLC0415

    for images, codes, batch_keys, batch_speakers in tqdm(data, desc=f"evaluating {split}",
                                                          unit="batch"):
        probabilities.append(model.predict(images.numpy()))
        truth.append(codes.numpy())
        keys += [k.decode() for k in batch_keys.numpy()]
        speakers += [s.decode() for s in batch_speakers.numpy()]
    probabilities = np.concatenate(probabilities)
    y_true = np.concatenate(truth)
    y_pred = probabilities.argmax(axis=1)
    result = classification_metrics(y_true, y_pred, names)

    out = Path(results_dir) / task
    paths = {"log": out / f"test_log_{task}.txt",
             "confusion": out / f"confusion_matrix_{task}.png",
             "predictions": out / f"predictions_{task}.csv"}
    text = format_report(result, names, task=task, split=split, model_path=str(model_path))
    atomic.write_text(paths["log"], text)
    figures.confusion_matrix(result["confusion"], names, paths["confusion"],
                             title=f"{task} — {split} (accuracy {result['accuracy']:.1%}, "
                                   f"UAR {result['balanced_accuracy']:.1%})")
    table = pd.DataFrame({"key": keys, "speaker_id": speakers,
                          "true": [names[c] for c in y_true],
                          "predicted": [names[c] for c in y_pred]})
    for i, name in enumerate(names):
        table[f"p_{name}"] = probabilities[:, i].round(6)
    atomic.write_text(paths["predictions"], table.to_csv(index=False))
    return {**result, "text": text, "paths": {k: str(v) for k, v in paths.items()},
            "task": task}

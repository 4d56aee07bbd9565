"""Metrics against hand-computed values; the test step's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agegender.errors import ModelError
from agegender.evaluation import classification_metrics, evaluate


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


def test_evaluate_writes_log_confusion_png_and_predictions(trained_gender, tmp_path):
    result = evaluate(trained_gender["dataset"], trained_gender["keras"], "gender",
                      results_dir=tmp_path)
    paths = {k: Path(v) for k, v in result["paths"].items()}
    assert paths["log"] == tmp_path / "gender" / "test_log_gender.txt"
    log = paths["log"].read_text()
    for needle in ("accuracy:", "balanced accuracy (UAR):", "macro F1:",
                   "majority-class baseline:", "classification report:", "confusion matrix"):
        assert needle in log
    assert paths["confusion"].read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(paths["predictions"])
    assert len(table) == 12  # every test clip
    assert list(table.columns) == ["key", "speaker_id", "true", "predicted", "p_male",
                                   "p_female"]
    np.testing.assert_allclose(table[["p_male", "p_female"]].sum(axis=1), 1.0, atol=1e-4)
    assert result["accuracy"] == pytest.approx(np.mean(table["true"] == table["predicted"]))
    assert set(table["key"]) == {f"sample-{i:06d}" for i in range(12)}


def test_task_mismatch_stops_before_any_work(trained_gender, tmp_path):
    with pytest.raises(ModelError, match="trained for cls_task='gender', not --cls_task='age'"):
        evaluate(trained_gender["dataset"], trained_gender["keras"], "age",
                 results_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_evaluate_on_dev_and_with_the_h5_file(trained_gender, tmp_path):
    result = evaluate(trained_gender["dataset"], trained_gender["h5"], None, split="dev",
                      results_dir=tmp_path)
    assert result["task"] == "gender" and result["n"] == 12

"""Reports of one model never land beside (or over) another model's (``agegender.report_dirs``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agegender import report_dirs
from agegender.errors import OutputError
from agegender.evaluation import _report

NAMES = ["male", "female"]
TRUE = np.array([0, 1, 0, 1])


def _test_report(results: Path, model_path: Path, probabilities: np.ndarray) -> dict:
    """The report ``test.py`` writes, from arrays (no model is run)."""
    return _report(TRUE, probabilities, NAMES, task="gender", split="test",
                   model_path=str(model_path), results_dir=results,
                   keys=["a", "b", "c", "d"], speakers=["s1", "s2", "s3", "s4"],
                   audio_paths=None, f0_hz=None, threshold=None, n_resamples=20, scoring=None)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_models_reports_land_in_two_folders_and_neither_is_overwritten(tmp_path):
    results = tmp_path / "results"
    trained = tmp_path / "models" / "gender" / "best_model_gender.keras"
    shipped = tmp_path / "models" / "pretrained" / "gender.keras"
    right = np.array([[.9, .1], [.2, .8], [.7, .3], [.1, .9]])
    _test_report(results, trained, right)
    first = _files(results / "gender" / "best_model_gender")
    _test_report(results, shipped, right[:, ::-1])  # every clip wrong
    for folder, model, predicted in (("best_model_gender", trained, TRUE),
                                     ("gender", shipped, 1 - TRUE)):
        reports = results / "gender" / folder
        table = pd.read_csv(reports / "predictions_gender.csv")
        assert list(table["predicted"]) == [NAMES[c] for c in predicted], folder
        assert f"model: {model}" in (reports / "test_log_gender.txt").read_text()
    assert _files(results / "gender" / "best_model_gender") == first
    assert sorted(p.name for p in (results / "gender").iterdir()) == ["best_model_gender",
                                                                      "gender"]


def test_another_model_of_the_same_name_is_refused_and_changes_nothing(tmp_path):
    results = tmp_path / "results"
    probabilities = np.array([[.9, .1], [.2, .8], [.7, .3], [.1, .9]])
    _test_report(results, tmp_path / "a" / "gender.keras", probabilities)
    before = _files(results / "gender" / "gender")
    with pytest.raises(OutputError) as raised:
        _test_report(results, tmp_path / "b" / "gender.keras", probabilities[:, ::-1])
    message = str(raised.value)
    assert "\n" not in message and "b/gender.keras" in message and "a/gender" in message
    assert "--results_dir" in message
    assert _files(results / "gender" / "gender") == before


def test_the_keras_and_h5_of_one_model_share_its_folder_which_moves_with_the_project(tmp_path):
    project = tmp_path / "project"
    model = project / "models" / "gender" / "best_model_gender"
    first = report_dirs.claim(project / "results", "gender", model.with_suffix(".keras"))
    assert report_dirs.claim(project / "results", "gender", model.with_suffix(".h5")) == first
    assert first == project / "results" / "gender" / "best_model_gender"
    assert "/" + str(tmp_path).strip("/") not in (first / report_dirs.CLAIM_FILE).read_text()
    moved = tmp_path / "moved"
    shutil.move(project, moved)  # the claim is relative: the same model, found again
    report_dirs.claim(moved / "results", "gender",
                      moved / "models" / "gender" / "best_model_gender.keras")


def test_model_name_strips_only_model_suffixes():
    assert report_dirs.model_name("models/pretrained/gender.keras") == "gender"
    assert report_dirs.model_name("exported/gender_v2") == "gender_v2"  # a SavedModel folder
    assert report_dirs.model_name("m.v1.h5") == "m.v1"

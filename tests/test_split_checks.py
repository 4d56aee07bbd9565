"""The dev-split check of training (``agegender.split_checks``)."""

from __future__ import annotations

from pathlib import Path

from agegender.split_checks import thin_split_warnings


def test_thin_dev_warnings():
    assert thin_split_warnings({"male": 40, "female": 30}, {"male": 5, "female": 3}) == []
    [line] = thin_split_warnings({"male": 40, "female": 6}, {"male": 5, "female": 2})
    assert "female: 6 clips (< 10)" in line and "female: 2 speakers (< 3)" in line
    assert "male:" not in line.replace("female:", "")
    assert line.endswith("the best epoch chosen on it means little")
    [unknown] = thin_split_warnings({"male": 3, "female": 30}, {"male": None, "female": None})
    assert "male: 3 clips" in unknown and "speakers" not in unknown.split("(")[1]


def test_training_warned_that_the_tiny_dev_split_is_thin(trained_gender):
    text = (Path(trained_gender["out"]) / "results" / "gender" / "best_model_gender" /
            "train_warnings_gender.txt").read_text()
    assert text.startswith("dev: male 6 clips/? speakers, female 6 clips/? speakers")
    assert "male: 6 clips (< 10)" in text and "means little" in text

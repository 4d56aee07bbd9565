"""Shipped models: shipping within the budget, the default model when none is given, and the shipped
files checked against the probabilities their card records."""

from __future__ import annotations

import json

import pytest

from agegender import pretrained, shipped


def test_no_model_path_means_the_shipped_model_or_a_clear_error(monkeypatch, tmp_path):
    from agegender import AgeGenderDetector
    from agegender.errors import ModelError

    monkeypatch.setattr(shipped, "pretrained_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match=r"no --model_path given and no pretrained age model"
                                         r".*build_pretrained"):
        AgeGenderDetector(task="age")
    with pytest.raises(ModelError, match="pretrained gender model"):
        shipped.pretrained_path(None)


def test_ship_then_the_detector_uses_it_by_default_and_gives_the_recorded_values(
        trained_gender, monkeypatch, tmp_path):
    import shutil

    from agegender import AgeGenderDetector

    folder = tmp_path / "pretrained"
    clips_dir = folder / "clips"
    clips_dir.mkdir(parents=True)
    test_clips = sorted((trained_gender["dataset"] / "cv-valid-test").rglob("*.wav"))
    for clip in test_clips[:3]:
        shutil.copyfile(clip, clips_dir / clip.name)
    from agegender import atomic

    report = pretrained.ship(trained_gender["keras"], "gender", folder)
    assert report["bytes"] == (folder / "gender.keras").stat().st_size
    assert atomic.read_checksums(folder / "gender.keras") == [
        atomic.sha256_file(trained_gender["keras"])]
    monkeypatch.setattr(shipped, "pretrained_dir", lambda: folder)
    pretrained.write_reference(folder, ["gender"])
    recorded = pretrained.read_reference(folder)["gender"]
    default = AgeGenderDetector()  # no model path: the shipped gender model
    assert default.model.path == str(folder / "gender.keras")
    results = default.predict_files([str(c) for c in sorted(clips_dir.iterdir())])
    for result in results:
        expected = recorded["probabilities"][result["file"].rsplit("/", 1)[-1]]
        assert result["probabilities"] == pytest.approx(expected, abs=1e-6)


def test_ship_refuses_beyond_the_budget_and_replaces_nothing(trained_gender, monkeypatch,
                                                             tmp_path):
    from agegender import atomic
    from agegender.errors import ModelError

    report = pretrained.ship(trained_gender["keras"], "gender", tmp_path)
    shipped_file = tmp_path / "gender.keras"
    assert atomic.sha256_file(shipped_file) == atomic.sha256_file(trained_gender["keras"])
    before = atomic.sha256_file(shipped_file)
    (tmp_path / "age.keras").write_bytes(b"x" * 10)  # another shipped model counts too
    monkeypatch.setattr(pretrained, "SHIP_BUDGET_BYTES", report["bytes"] + 9)
    with pytest.raises(ModelError, match=r"MB for all shipped models; not shipped"):
        pretrained.ship(trained_gender["keras"], "gender", tmp_path)
    assert atomic.sha256_file(shipped_file) == before  # nothing replaced


def _shipped() -> list[str]:
    path = shipped.pretrained_dir() / pretrained.REFERENCE_NAME
    return sorted(json.loads(path.read_text())) if path.is_file() else []


@pytest.mark.parametrize("task", _shipped())
def test_shipped_model_gives_the_recorded_probabilities(task):
    from agegender import AgeGenderDetector, atomic

    folder = shipped.pretrained_dir()
    recorded = pretrained.read_reference()[task]
    path = folder / recorded["model"]
    assert atomic.sha256_file(path) == recorded["sha256"], f"{path} changed"
    clips = sorted((folder / "clips").iterdir())
    assert {c.name for c in clips} == set(recorded["probabilities"])
    results = AgeGenderDetector(task=task).predict_files([str(c) for c in clips])
    for clip, result in zip(clips, results, strict=True):
        expected = recorded["probabilities"][clip.name]
        assert result["probabilities"] == pytest.approx(expected, abs=1e-4), clip.name

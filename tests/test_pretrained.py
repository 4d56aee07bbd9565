"""Shipped models: shipping within the budget, the default model when none is given, and the shipped
files checked against the probabilities their card records."""

from __future__ import annotations

import json
import zipfile

import pytest

from agegender import pretrained, shipped

WEIGHTS_MEMBER = "model.weights.h5"  # where a .keras zip keeps the weights


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


def _tampered_copy(folder, *, sidecar: bool):
    """``folder/gender.keras``: the shipped gender model with one byte of one weight changed
    (the zip rewritten with valid CRCs, so only a checksum can tell), and, with ``sidecar``,
    the shipped ``.sha256`` beside it. Returns (path, the changed weight's (old, new))."""
    import io
    import shutil

    import h5py

    source = shipped.pretrained_dir() / "gender.keras"
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = bytearray(members[WEIGHTS_MEMBER])
    with h5py.File(io.BytesIO(bytes(weights)), "r") as handle:
        kernel = handle["layers/boosted_linear/vars/0"]
        offset = kernel.id.get_offset()  # contiguous storage: the raw values start here
        old = float(kernel[0, 0])
    assert offset is not None, "the kernel is stored in chunks; pick another weight"
    weights[offset] ^= 0x01  # lowest bit of the first value's first (little-endian) byte
    members[WEIGHTS_MEMBER] = bytes(weights)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "gender.keras"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    if sidecar:
        shutil.copyfile(f"{source}.sha256", f"{target}.sha256")
    with h5py.File(io.BytesIO(members[WEIGHTS_MEMBER]), "r") as handle:
        new = float(handle["layers/boosted_linear/vars/0"][0, 0])
    return target, (old, new)


@pytest.mark.skipif(not (shipped.pretrained_dir() / "gender.keras").is_file(),
                    reason="no shipped gender model")
def test_a_shipped_model_with_one_weight_byte_changed_is_refused(monkeypatch, tmp_path):
    from agegender import AgeGenderDetector
    from agegender.checkpoints import load_model
    from agegender.errors import ModelError

    path, (old, new) = _tampered_copy(tmp_path / "with_sidecar", sidecar=True)
    lone, _ = _tampered_copy(tmp_path / "lone", sidecar=False)
    assert old != new  # the change reached a weight, not padding
    # Unchecked, Keras loads the tampered file: only the checksums stand in the way.
    assert load_model(path, verify=False).get_layer("logits").get_weights()[0][0, 0] == new
    # Beside its sidecar: the file's SHA-256 is not the recorded one.
    with pytest.raises(ModelError, match=r"gender\.keras: checksum mismatch"):
        AgeGenderDetector(path)
    # A lone copy, no sidecar: the weights digest stored inside the file catches it.
    with pytest.raises(ModelError, match=r"gender\.keras: its weights do not match the "
                                         r"checksum stored inside the file \(expected "
                                         r"[0-9a-f]{16}…, got [0-9a-f]{16}…\): the file is "
                                         r"corrupt or was changed after training; "
                                         r"--no_verify loads it anyway$"):
        AgeGenderDetector(lone)
    # As the default model (no path given), through the same checks.
    monkeypatch.setattr(shipped, "pretrained_dir", lambda: path.parent)
    with pytest.raises(ModelError, match="checksum mismatch"):
        AgeGenderDetector()


@pytest.mark.skipif(not (shipped.pretrained_dir() / "gender.keras").is_file(),
                    reason="no shipped gender model")
def test_a_shipped_model_whose_sidecar_was_changed_is_refused(tmp_path):
    import shutil

    from agegender import AgeGenderDetector
    from agegender.errors import ModelError

    source = shipped.pretrained_dir() / "gender.keras"
    path = tmp_path / "gender.keras"
    shutil.copyfile(source, path)
    sidecar = tmp_path / "gender.keras.sha256"
    recorded = (source.parent / sidecar.name).read_text().split()[0]
    changed = ("0" if recorded[0] != "0" else "1") + recorded[1:]
    sidecar.write_text(f"{changed}  gender.keras\n")
    with pytest.raises(ModelError, match=rf"checksum mismatch.*expected {changed}"):
        AgeGenderDetector(path)
    sidecar.write_text(f"{recorded}  gender.keras\n")  # the shipped sidecar: accepted
    assert list(AgeGenderDetector(path).class_names) == ["male", "female"]

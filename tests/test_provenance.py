"""A model knows what it was trained on (``agegender.provenance``, ``LabelledOutput``'s
``trained_on``), and a model trained on the synthetic demo voices says so, once, when it
labels other audio."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from agegender import provenance, shipped
from agegender.checkpoints import open_model, set_trained_on
from agegender.demo import SPEAKERS_FILE, VoiceParams

SHIPPED = shipped.pretrained_dir() / "gender.keras"
CLIPS = sorted((ROOT / "models" / "pretrained" / "clips").glob("*.mp3"))
# The shipped model's record (models/pretrained/README.md): the train split of the share after
# the speech gate, as the shards of its recipe count it (gender: 2,359 examples, 917 speakers).
SHIPPED_RECORD = {"dataset": "cv-sample", "kind": "real", "speakers": 917, "clips": 2359}
# SHA-256 of the shipped file's model.weights.h5 member before trained_on was written into its
# config.json: the weights stayed bit-identical.
SHIPPED_WEIGHTS_MEMBER = "7684726259d1d67f84ceeea1ed7522f1e6276386c928b612c130a826bb34bec4"

needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped gender model")


def _fake_demo_corpus(folder: Path) -> Path:
    """A folder ``demo.is_demo_corpus`` recognises (the demo's speakers.csv header)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(f.name for f in dataclasses.fields(VoiceParams))
    (folder / SPEAKERS_FILE).write_text(header + "\n")
    return folder


def _synthetic_copy(tmp_path: Path, dataset: str = "DemoVoice") -> Path:
    """The shipped model as if trained on the demo corpus ``dataset`` (weights unchanged)."""
    path = tmp_path / "demo_gender.keras"
    shutil.copyfile(SHIPPED, path)
    set_trained_on(path, {"dataset": dataset, "kind": "synthetic", "speakers": 98,
                          "clips": 348})
    return path


@needs_shipped
def test_shipped_model_records_real_training_data_with_its_weights_unchanged(tmp_path):
    assert open_model(SHIPPED).trained_on == SHIPPED_RECORD
    with zipfile.ZipFile(SHIPPED) as archive:
        member = archive.read("model.weights.h5")
    assert hashlib.sha256(member).hexdigest() == SHIPPED_WEIGHTS_MEMBER
    # Rewriting the record again changes the config alone: every weight array is equal.
    copy = _synthetic_copy(tmp_path)
    import keras

    before = keras.models.load_model(SHIPPED).get_weights()
    after = keras.models.load_model(copy).get_weights()
    assert len(before) == len(after) > 0
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(before, after))
    with zipfile.ZipFile(SHIPPED) as old, zipfile.ZipFile(copy) as new:
        assert old.namelist() == new.namelist()
        assert [n for n in old.namelist() if old.read(n) != new.read(n)] == ["config.json"]
    assert open_model(copy).trained_on["kind"] == "synthetic"


def test_training_records_the_dataset_speakers_and_clips(trained_gender):
    record = open_model(trained_gender["keras"]).trained_on
    index = json.loads((Path(trained_gender["dataset"]) / "TFRecord" / "cv-valid-train" /
                        "shards.json").read_text())
    # The tiny corpus is tones in the raw layout: not the demo corpus, no speaker ids.
    assert record == {"dataset": Path(trained_gender["dataset"]).name, "kind": "real",
                      "speakers": None, "clips": index["task_counts"]["gender"]["examples"]}
    assert json.loads((Path(trained_gender["dataset"]) / "Manifest" /
                       provenance.SOURCE_FILE).read_text())["kind"] == "real"


@needs_shipped
def test_a_model_file_without_the_record_loads_and_is_unknown(tmp_path):
    import keras

    # An older file: the shipped model as it was, its LabelledOutput config without the key.
    with zipfile.ZipFile(SHIPPED) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    old = tmp_path / "older.keras"
    with zipfile.ZipFile(old, "w") as archive:
        for info, data in members:
            if info.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    layer["config"].pop("trained_on", None)
                data = json.dumps(config).encode()
            archive.writestr(info, data)
    assert b"trained_on" not in zipfile.ZipFile(old).read("config.json")
    assert keras.models.load_model(old) is not None
    assert open_model(old).trained_on is None
    assert provenance.synthetic_warning(None, [str(old)], model="old.keras") is None


def test_the_demo_corpus_is_synthetic_and_its_own_clips_get_no_warning(tmp_path):
    demo = _fake_demo_corpus(tmp_path / "DemoVoice")
    assert provenance.dataset_source(demo) == {"dataset": "DemoVoice", "kind": "synthetic"}
    assert provenance.dataset_source(tmp_path)["kind"] == "real"
    provenance.write_source(tmp_path / "shards", demo)  # --output_dir elsewhere: still named
    assert provenance.read_source(tmp_path / "shards") == {"dataset": "DemoVoice",
                                                           "kind": "synthetic"}
    record = {"dataset": "DemoVoice", "kind": "synthetic", "speakers": 98, "clips": 348}
    own = demo / "cv-valid-test" / "cv-valid-test" / "sample-000000.mp3"
    assert provenance.demo_corpus_of(own) == demo
    assert provenance.synthetic_warning(record, [own], model="m.keras") is None
    other_demo = _fake_demo_corpus(tmp_path / "OtherDemo") / "a" / "b.mp3"
    line = provenance.synthetic_warning(record, [own, other_demo, tmp_path / "me.wav"],
                                        model="m.keras")
    assert "\n" not in line and "2 of 3 files" in line
    assert "synthetic demo voices (DemoVoice: 98 speakers, 348 clips)" in line
    assert provenance.synthetic_warning({**record, "kind": "real"}, [tmp_path / "me.wav"],
                                        model="m.keras") is None
    assert "this audio is not" in provenance.synthetic_warning(record, None, model="m.keras")


@needs_shipped
def test_inference_warns_once_for_a_synthetic_model_on_other_audio(tmp_path, capsys):
    import inference as inference_cli

    model = _synthetic_copy(tmp_path)
    assert inference_cli.main(["--model_path", str(model), "--audio_file",
                               *map(str, CLIPS[:2])]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "2 of 2 files are not from that corpus" in warnings[0]
    # The same clip inside its own demo corpus: no warning.
    own = _fake_demo_corpus(tmp_path / "DemoVoice") / "cv-valid-test" / "cv-valid-test"
    own.mkdir(parents=True)
    shutil.copyfile(CLIPS[0], own / "sample-000000.mp3")
    assert inference_cli.main(["--model_path", str(model), "--audio_file",
                               str(own / "sample-000000.mp3")]) == 0
    assert "WARNING" not in capsys.readouterr().err
    # The shipped model, trained on real voices: no warning.
    assert inference_cli.main(["--audio_file", str(CLIPS[0])]) == 0
    assert "WARNING" not in capsys.readouterr().err


@needs_shipped
def test_serve_answers_carry_the_warning_of_a_synthetic_model(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from agegender import AgeGenderDetector
    from agegender.serve import ServeParams, create_app

    for path, expected in ((_synthetic_copy(tmp_path), "synthetic demo voices"),
                           (SHIPPED, None)):
        app = create_app(ServeParams(temp_dir=str(tmp_path)),
                         detectors={"gender": AgeGenderDetector(path)})
        with TestClient(app) as client:
            body = client.post("/v1/predict", files={"file": (
                "a.mp3", CLIPS[0].read_bytes(), "application/octet-stream")}).json()
        assert (body["warning"] is None) if expected is None else expected in body["warning"]


@pytest.mark.parametrize("demo", [True, False], ids=["demo corpus", "other corpus"])
def test_the_demos_other_labels_are_a_note_on_the_demo_and_a_warning_elsewhere(
        tmp_path, caplog, demo):
    import logging

    from synth import append_csv, make_raw_corpus, v1_row, voice, write_audio

    from agegender.config import PreprocessParams
    from agegender.preprocess import run_clean

    root = make_raw_corpus(tmp_path / "corpus", per_group={"train": 1, "dev": 1, "test": 1})
    write_audio(root / "cv-valid-train" / "cv-valid-train" / "extra.wav",
                voice("male", "twenties", seed=99))
    append_csv(root / "cv-valid-train.csv",
               [v1_row("cv-valid-train/extra.wav", age="twenties", gender="other")])
    if demo:
        _fake_demo_corpus(root)
    with caplog.at_level(logging.INFO, logger="agegender.preprocess"):
        cleaned = run_clean(root, PreprocessParams(dataset_type="raw"), tmp_path / "results")
    line = "gender: 1 cells not recognised: 'other' 1"
    logged = {(r.levelname, r.getMessage().split(" (accepted")[0]) for r in caplog.records}
    if demo:
        assert [n.split(" (accepted")[0] for n in cleaned.label_notes] == [line]
        assert cleaned.label_warnings == ()
        assert ("INFO", f"clean: note: expected in the demo: {line}") in logged
    else:
        assert [w.split(" (accepted")[0] for w in cleaned.label_warnings] == [line]
        assert cleaned.label_notes == ()
        assert ("WARNING", f"clean: {line}") in logged
    assert any(level == "WARNING" and "not recognised" in m for level, m in logged) != demo


def test_tiny_gender_age_splits_are_notes_on_the_demo_only(tmp_path):
    from agegender.preprocess import split_report

    tiny = {"examples": 8, "speakers": 4, "classes": {"female-teens": 4, "male-teens": 4}}
    fine = {"examples": 40, "speakers": 8, "classes": {"male": 20, "female": 20}}
    counts = {"dev": {"gender": fine, "gender_age": tiny}}
    demo = _fake_demo_corpus(tmp_path / "DemoVoice")
    warnings, notes = split_report(demo, counts)
    assert warnings == [] and len(notes) == 1 and notes[0].startswith("dev/gender_age: 8")
    warnings, notes = split_report(tmp_path / "mine", counts)
    assert notes == [] and len(warnings) == 1 and warnings[0].startswith("dev/gender_age: 8")
    counts["dev"]["gender"] = {**tiny, "classes": {"male": 4, "female": 4}}
    assert len(split_report(demo, counts)[0]) == 1  # a trained task stays a warning

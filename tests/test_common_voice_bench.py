"""The pure parts of bench/common_voice.py: arguments, the work copy, baselines, tables.

Everything runs on a hand-made predictions CSV and manifests in tmp_path, with answers
worked out by hand in the comments; one slow test scores the shipped gender model through
the CLIs on a tiny synthetic corpus.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agegender import labels

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("common_voice", _BENCH / "common_voice.py")
cv = importlib.util.module_from_spec(_SPEC)
sys.modules["common_voice"] = cv  # dataclasses look their module up there
_SPEC.loader.exec_module(cv)


# --------------------------------------------------------------------------- arguments


def test_models(capsys):
    assert cv.parse_models(["gender=m/g.keras", "age=a.keras"]) == {
        "gender": Path("m/g.keras"), "age": Path("a.keras")}
    with pytest.raises(ValueError, match="TASK=PATH"):
        cv.parse_models(["sex=m.keras"])
    with pytest.raises(SystemExit):
        cv.parse_args(["--dataset_dir", "x", "--model", "height=h.keras"])
    assert "'height=h.keras'" in capsys.readouterr().err


def test_the_default_models_are_the_shipped_ones():
    models = cv.parse_args(["--dataset_dir", "x"]).model
    assert models["gender"].name == "gender.keras" and models["gender"].is_file()
    assert set(models) == {p.stem for p in models["gender"].parent.glob("*.keras")}


# --------------------------------------------------------------------------- work copy


def _source(root: Path) -> Path:
    (root / "clips" / "en").mkdir(parents=True)
    (root / "clips" / "en" / "a.mp3").write_bytes(b"audio")
    pd.DataFrame({"path": ["clips/en/a.mp3"], "gender": ["male"], "age": ["teens"],
                  "speaker_id": ["s1"], "split": ["train"], "language": ["en"]}
                 ).to_csv(root / "manifest.csv", index=False)
    return root


def test_work_copy_links_the_audio_and_leaves_the_source_alone(tmp_path):
    source = _source(tmp_path / "src")
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    symlinks = cv.make_work_copy(source, tmp_path / "work" / "voice")
    copy = tmp_path / "work" / "voice"
    assert not symlinks
    assert os.path.samefile(copy / "clips" / "en" / "a.mp3", source / "clips" / "en" / "a.mp3")
    assert (copy / "manifest.csv").read_text() == (source / "manifest.csv").read_text()
    (copy / "manifest.csv").write_text("changed")  # a copy, not a link: the source keeps its own
    assert (source / "manifest.csv").read_text() != "changed"
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before


def test_work_copy_inside_the_dataset_is_refused(tmp_path):
    source = _source(tmp_path / "src")
    with pytest.raises(SystemExit, match="outside the dataset"):
        cv.make_work_copy(source, source / "work")
    assert not (source / "work").exists()


def test_work_copy_refuses_a_path_leaving_the_dataset(tmp_path):
    source = _source(tmp_path / "src")
    (tmp_path / "secret.mp3").write_bytes(b"x")
    pd.DataFrame({"path": ["../secret.mp3"], "split": ["train"]}).to_csv(
        source / "manifest.csv", index=False)
    with pytest.raises(SystemExit, match=r"manifest.csv:2: path '../secret.mp3'"):
        cv.make_work_copy(source, tmp_path / "work")


# --------------------------------------------------------------------------- scoring

# Six test clips, one speaker each:
#   key  lang  true    model   pitch
#   k1   en    male    male    male
#   k2   en    female  male    female
#   k3   en    female  female  female
#   k4   de    male    female  male
#   k5   de    male    male    female
#   k6   fr    female  female  male
CLIPS = [("k1", "en", "male", "male", "male"), ("k2", "en", "female", "male", "female"),
         ("k3", "en", "female", "female", "female"), ("k4", "de", "male", "female", "male"),
         ("k5", "de", "male", "male", "female"), ("k6", "fr", "female", "female", "male")]


def _gender_dataset(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(source folder with manifest.csv, work copy with Manifest/cv-valid-train.csv,
    predictions_gender.csv)."""
    source, data = tmp_path / "src", tmp_path / "data"
    source.mkdir()
    rows = [{"path": f"clips/{lang}/{key}.mp3", "gender": true, "age": "twenties",
             "speaker_id": f"s{key}", "split": "test", "language": lang}
            for key, lang, true, _, _ in CLIPS]
    pd.DataFrame(rows).to_csv(source / "manifest.csv", index=False)
    # train: 3 male, 1 female clips → majority male.
    (data / "Manifest").mkdir(parents=True)
    pd.DataFrame({"key": ["t1", "t2", "t3", "t4"], "audio_path": ["x"] * 4,
                  "speaker_id": ["a", "b", "c", "d"], "gender": ["male"] * 3 + ["female"],
                  "age": ["twenties", "twenties", "thirties", "fourties"],
                  "gender_code": [0, 0, 0, 1], "age_code": [1, 1, 2, 3],
                  "gender_age_code": [7, 7, 8, 3]}
                 ).to_csv(data / "Manifest" / "cv-valid-train.csv", index=False)
    p_female = {"male": 0.2, "female": 0.9}
    predictions = tmp_path / "predictions_gender.csv"
    pd.DataFrame({"key": [c[0] for c in CLIPS], "speaker_id": [f"s{c[0]}" for c in CLIPS],
                  "audio_path": [f"clips/{c[1]}/{c[0]}.mp3" for c in CLIPS],
                  "true": [c[2] for c in CLIPS], "predicted": [c[3] for c in CLIPS],
                  "p_male": [1 - p_female[c[3]] for c in CLIPS],
                  "p_female": [p_female[c[3]] for c in CLIPS],
                  "median_f0_hz": [100.0] * 6, "pitch_predicted": [c[4] for c in CLIPS]}
                 ).to_csv(predictions, index=False)
    return source, data, predictions


def test_per_language_uar_and_accuracy(tmp_path):
    source, _, predictions = _gender_dataset(tmp_path)
    clips = cv.clip_table(predictions, source / "manifest.csv", "gender")
    assert clips["language"].tolist() == ["en", "en", "en", "de", "de", "fr"]
    assert cv.largest_languages(clips, 2) == ["en", "de"]
    predicted = cv.predictors(clips, "gender", majority=0, ages=None)
    rows = {r["group"]: r for r in cv.breakdown(clips, "gender", "r", predicted, "language",
                                                ["en", "de", "fr", "xx"])}
    assert set(rows) == {"en", "de", "fr"}  # a language without clips has no row
    # en: male 1/1 right, female 1/2 right → UAR 0.75, accuracy 2/3; pitch: all right.
    assert rows["en"]["model_uar"] == pytest.approx(0.75)
    assert rows["en"]["model_accuracy"] == pytest.approx(2 / 3)
    assert rows["en"]["pitch_uar"] == pytest.approx(1.0)
    # de: only men, 1 of 2 right → UAR = male recall 0.5; fr: the one woman right.
    assert rows["de"]["model_uar"] == pytest.approx(0.5)
    assert rows["fr"]["model_uar"] == pytest.approx(1.0)
    assert rows["fr"]["pitch_accuracy"] == pytest.approx(0.0)
    assert rows["en"]["speakers"] == 3


def test_per_gender_rows_are_the_recall_of_each_gender(tmp_path):
    source, _, predictions = _gender_dataset(tmp_path)
    clips = cv.clip_table(predictions, source / "manifest.csv", "gender")
    predicted = cv.predictors(clips, "gender", majority=0, ages=None)
    rows = {r["group"]: r for r in cv.breakdown(clips, "gender", "r", predicted, "gender",
                                                labels.GENDERS)}
    # men k1, k4, k5: model right on k1, k5; majority (male) right on all.
    assert rows["male"]["model_accuracy"] == pytest.approx(2 / 3)
    assert rows["male"]["majority_accuracy"] == pytest.approx(1.0)
    assert rows["female"]["majority_accuracy"] == pytest.approx(0.0)


def test_summary_row_of_the_gender_task(tmp_path):
    source, data, predictions = _gender_dataset(tmp_path)
    row, groups = cv.evaluate_task(data, source, predictions, "gender", "r",
                                   cpu={"prep": 1.0, "test": 3.0})
    # model: men 2/3, women 2/3 → UAR 2/3, accuracy 4/6; pitch the same counts (k5, k6 wrong).
    assert row["model_uar"] == pytest.approx(2 / 3)
    assert row["model_accuracy"] == pytest.approx(4 / 6)
    assert row["pitch_uar"] == pytest.approx(2 / 3)
    # majority of train is male: recall 1 for men, 0 for women.
    assert row["majority_uar"] == pytest.approx(0.5)
    assert row["majority_accuracy"] == pytest.approx(0.5)
    # one clip per speaker: the speaker vote is the clip.
    assert row["model_speaker_uar"] == pytest.approx(2 / 3)
    low, high = row["model_uar_ci"]
    assert 0 <= low <= 2 / 3 <= high <= 1
    assert (row["clips"], row["speakers"]) == (6, 6)
    # model minus pitch, paired: the same UAR, so the difference is 0 on the full sample.
    assert row["model_minus_baseline"] == pytest.approx(0.0)
    low, high = row["model_minus_baseline_ci"]
    assert low <= 0 <= high
    cells = cv.summary_cells(row)
    assert cells[-2].startswith("+0.000 [") and cells[-1] == "1/3"
    text = cv.write_report(tmp_path / "report", [row], groups, title="t")
    assert "| r | gender | 6 | 6 |" in (tmp_path / "report" / "summary.md").read_text()
    assert text.startswith("t\n")
    languages = pd.read_csv(tmp_path / "report" / "languages.csv")
    assert languages["group"].tolist() == ["en", "de", "fr"]


def test_within_one_age_group():
    # |pred - true| = 1, 2, 0, 2 → 2 of 4 within one group.
    assert cv.within_one(np.array([0, 1, 2, 5]), np.array([1, 3, 2, 3]), "age") == 0.5
    # gender_age: the age part counts, the gender part does not.
    true = [labels.gender_age_code(0, 2), labels.gender_age_code(1, 0)]
    pred = [labels.gender_age_code(1, 3), labels.gender_age_code(1, 2)]
    assert cv.within_one(np.array(true), np.array(pred), "gender_age") == 0.5
    assert np.isnan(cv.within_one(np.array([0]), np.array([1]), "gender"))


def test_pitch_and_majority_age_baseline():
    train = pd.DataFrame({"gender_code": [0, 0, 0, 0, 1, 1, 1, -1],
                          "age_code": [1, 1, 2, -1, 3, 3, 1, 4]})
    # men: twenties twice, thirties once; women: fourties twice → {male: 1, female: 3}.
    ages = cv.age_by_gender(train)
    assert ages == {0: 1, 1: 3}
    assert cv.pitch_majority_predictions(np.array([0, 1, 1]), "age", ages).tolist() == [1, 3, 3]
    assert cv.pitch_majority_predictions(np.array([0, 1]), "gender_age", ages).tolist() == [
        labels.gender_age_code(0, 1), labels.gender_age_code(1, 3)]
    assert cv.majority_code(train["age_code"].to_numpy()) == 1


def test_age_task_scores_the_baseline_and_within_one():
    clips = pd.DataFrame({"speaker_id": ["a", "b", "c", "d"], "true_code": [0, 1, 3, 3],
                          "pred_code": [1, 1, 5, 3], "pitch_gender": [0, 1, 1, 0],
                          **{f"p_{n}": 1 / 6 for n in labels.AGES}})
    predicted = cv.predictors(clips, "age", majority=1, ages={0: 1, 1: 3})
    assert predicted["pitch+majority"].tolist() == [1, 3, 3, 1]
    assert "pitch" not in predicted
    row = cv.summary_row(clips, "age", "r", predicted, {"prep": None, "test": 1.0})
    # model: teens 0/1, twenties 1/1, fourties 1/2 → UAR 0.5; ±1: 1, 1, 0, 1 → 0.75.
    assert row["model_uar"] == pytest.approx(0.5)
    assert row["model_within_one"] == pytest.approx(0.75)
    # baseline: teens 0/1, twenties 0/1, fourties 1/2 → UAR 1/6; ±1: 1, 0, 1, 0 → 0.5.
    assert row["pitch+majority_uar"] == pytest.approx(1 / 6)
    assert row["pitch+majority_within_one"] == pytest.approx(0.5)
    cells = cv.summary_cells(row)
    assert cells[-1] == "reused/1"
    # paired against the baseline: 0.5 - 1/6 on the full sample.
    assert row["model_minus_baseline"] == pytest.approx(1 / 3)
    assert cells[cv.SUMMARY_COLUMNS.index("±1 acc (pitch+maj.)")] == "0.750 (0.500)"


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_cli_run_on_a_tiny_manifest_corpus(tmp_path):
    import synth

    source = tmp_path / "corpus"
    rows, seed = [], 0
    for split, count in (("train", 2), ("dev", 1), ("test", 1)):
        for gender in labels.GENDERS:
            for age in labels.AGES[:2]:
                for clip in range(count):
                    path = f"clips/{split}_{gender}_{age}_{clip}.wav"
                    synth.write_audio(source / path, synth.voice(gender, age, seed=seed))
                    rows.append({"path": path, "gender": gender, "age": age,
                                 "speaker_id": f"{split}{seed}", "split": split,
                                 "language": "en" if seed % 2 else "de"})
                    seed += 1
    pd.DataFrame(rows).to_csv(source / "manifest.csv", index=False)
    before = {p: p.stat().st_mtime_ns for p in source.rglob("*")}
    work = tmp_path / "work"
    assert cv.main(["--dataset_dir", str(source), "--work_dir", str(work)]) == 0  # shipped
    summary = pd.read_csv(work / "report" / "summary.csv").set_index("task")
    assert summary.loc["gender", "model"] == "gender.keras"
    assert summary.loc["gender", "clips"] == 4 and summary.loc["gender", "speakers"] == 4
    assert {"model_uar", "pitch_uar", "majority_uar"} <= set(summary.columns)
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*")} == before

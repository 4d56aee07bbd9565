"""The pure parts of bench/common_voice.py: recipe syntax, the work copy, baselines, tables.

Everything runs on a hand-made predictions CSV and manifests in tmp_path, with answers
worked out by hand in the comments; one slow test runs the CLIs on a tiny synthetic corpus.
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


def test_recipe_with_quoted_flags():
    recipe = cv.parse_recipe('aug:preset=paper,epochs=3,flags="--augment '
                             '--class_weight=balanced --batch_size=32",prep=\'--feature_type=mel\'')
    assert recipe == cv.Recipe("aug", "paper", 3,
                               ("--augment", "--class_weight=balanced", "--batch_size=32"),
                               ("--feature_type=mel",), ())
    assert recipe.data_tag == "paper_feature_type-mel"


def test_recipe_name_alone_takes_the_defaults():
    recipe = cv.parse_recipe("plain")
    assert (recipe.preset, recipe.epochs, recipe.train_flags) == ("voice", 8, ())
    assert recipe.data_tag == "voice"


@pytest.mark.parametrize("text, said", [
    ("a:speed=3", "unknown key 'speed'"),
    ("a:preset=mel", "preset='mel'"),
    ("a:epochs=two", "epochs='two'"),
    ("a:epochs=0", "epochs=0"),
    ("a b:epochs=1", "name 'a b'"),
    ("a:epochs=1,epochs=2", "given twice"),
    ("a:flags", "expected key=value"),
])
def test_bad_recipe_is_named(text, said):
    with pytest.raises(ValueError, match=said.replace("(", r"\(")):
        cv.parse_recipe(text)


def test_models_and_tasks():
    assert cv.parse_models(["gender=m/g.keras", "age=a.keras"]) == {
        "gender": Path("m/g.keras"), "age": Path("a.keras")}
    assert cv.parse_tasks("gender, age") == ["gender", "age"]
    with pytest.raises(ValueError, match="TASK=PATH"):
        cv.parse_models(["sex=m.keras"])
    with pytest.raises(ValueError, match="'gender,height'"):
        cv.parse_tasks("gender,height")


def test_command_line_refuses_a_bad_recipe(capsys):
    with pytest.raises(SystemExit):
        cv.parse_args(["--dataset_dir", "x", "--recipe", "a:preset=mel"])
    assert "preset='mel'" in capsys.readouterr().err


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
    predicted = cv.predictors(clips, "gender", majority=0, ages=None, ina=None)
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
    predicted = cv.predictors(clips, "gender", majority=0, ages=None, ina=None)
    rows = {r["group"]: r for r in cv.breakdown(clips, "gender", "r", predicted, "gender",
                                                labels.GENDERS)}
    # men k1, k4, k5: model right on k1, k5; majority (male) right on all.
    assert rows["male"]["model_accuracy"] == pytest.approx(2 / 3)
    assert rows["male"]["majority_accuracy"] == pytest.approx(1.0)
    assert rows["female"]["majority_accuracy"] == pytest.approx(0.0)


def test_summary_row_of_the_gender_task(tmp_path):
    source, data, predictions = _gender_dataset(tmp_path)
    row, groups = cv.evaluate_task(data, source, predictions, "gender", "r",
                                   cpu={"prep": 1.0, "train": 2.0, "test": 3.0},
                                   ina_python=None, work=tmp_path)
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
    cells = cv.summary_cells(row)
    assert cells[cv.SUMMARY_COLUMNS.index("ina UAR [95% CI]")] == "not run"
    assert cells[-1] == "1/2/3"
    text = cv.write_report(tmp_path / "report", [row], groups, title="t")
    assert "not run" in text
    languages = pd.read_csv(tmp_path / "report" / "languages.csv")
    assert languages["group"].tolist() == ["en", "de", "fr"]
    assert (tmp_path / "report" / "summary.md").read_text().count("| r | gender | 6 | 6 |") == 1


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
    predicted = cv.predictors(clips, "age", majority=1, ages={0: 1, 1: 3}, ina=None)
    assert predicted["pitch+majority"].tolist() == [1, 3, 3, 1]
    assert "pitch" not in predicted
    row = cv.summary_row(clips, "age", "r", predicted, {"prep": None, "train": "given",
                                                        "test": 1.0})
    # model: teens 0/1, twenties 1/1, fourties 1/2 → UAR 0.5; ±1: 1, 1, 0, 1 → 0.75.
    assert row["model_uar"] == pytest.approx(0.5)
    assert row["model_within_one"] == pytest.approx(0.75)
    # baseline: teens 0/1, twenties 0/1, fourties 1/2 → UAR 1/6; ±1: 1, 0, 1, 0 → 0.5.
    assert row["pitch+majority_uar"] == pytest.approx(1 / 6)
    assert row["pitch+majority_within_one"] == pytest.approx(0.5)
    cells = cv.summary_cells(row)
    assert cells[-1] == "reused/given/1"
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
    assert cv.main(["--dataset_dir", str(source), "--work_dir", str(work), "--tasks", "gender",
                    "--recipe", 'tiny:preset=voice,epochs=1,flags="--image_size=32 '
                                '--batch_size=4",prep="--image_size=32"']) == 0
    summary = pd.read_csv(work / "report" / "summary.csv")
    assert summary.loc[0, "clips"] == 4 and summary.loc[0, "speakers"] == 4
    assert {"model_uar", "pitch_uar", "majority_uar"} <= set(summary.columns)
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*")} == before


# --------------------------------------------------------------------------- the ina hook

FAKE_INA = '''
import numpy as np
class _Network:  # patch outputs (female, male) read from the "audio" file's text
    def predict(self, batch, **kwargs):
        return np.array(batch, dtype=float)
class _Gender:
    def __init__(self):
        self.nn = _Network()
class Segmenter:
    def __init__(self, detect_gender=True):
        self.gender = _Gender()
    def __call__(self, path):
        values = open(path).read().split()
        if values:  # no text: no speech, the gender network is never called
            out = self.gender.nn.predict([[float(v), 1 - float(v)] for v in values])
            out[:] = 0.5  # as ina does to non-finite patches, in place
        return []
'''


def test_ina_hook_means_the_patch_probabilities(tmp_path, monkeypatch):
    package = tmp_path / "fake" / "inaSpeechSegmenter"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_INA)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    (tmp_path / "a.mp3").write_text("0.2 0.4 0.6")
    (tmp_path / "b.mp3").write_text("")
    files = [str(tmp_path / "a.mp3"), str(tmp_path / "b.mp3")]
    cache = tmp_path / "ina.csv"
    female, _ = cv.ina_female_probability(Path(sys.executable), files, cache)
    assert female[files[0]] == pytest.approx(0.4)  # mean of 0.2, 0.4, 0.6
    assert female[files[1]] is None
    # cached: a second call runs nothing (this python does not exist)
    again, cpu = cv.ina_female_probability(tmp_path / "no-python", files, cache)
    assert again == female and cpu == 0.0


def test_ina_hook_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # no inaSpeechSegmenter there
    (tmp_path / "a.mp3").write_text("0.2")
    with pytest.raises(SystemExit, match="--ina_python .*ModuleNotFoundError"):
        cv.ina_female_probability(Path(sys.executable), [str(tmp_path / "a.mp3")],
                                  tmp_path / "ina.csv")


def test_ina_stopped_by_the_timeout_keeps_its_clips_and_the_column_says_so(tmp_path,
                                                                          monkeypatch):
    package = tmp_path / "fake" / "inaSpeechSegmenter"
    package.mkdir(parents=True)
    # the second clip hangs: the first one's line must survive the timeout
    (package / "__init__.py").write_text(FAKE_INA.replace(
        "values = open(path).read().split()",
        "values = open(path).read().split()\n        import time\n"
        "        if 'slow' in path: time.sleep(60)"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    (tmp_path / "a.mp3").write_text("0.8")
    (tmp_path / "slow.mp3").write_text("0.1")
    files = [str(tmp_path / "a.mp3"), str(tmp_path / "slow.mp3")]
    female, _ = cv.ina_female_probability(Path(sys.executable), files, tmp_path / "ina.csv",
                                          timeout=20)
    assert female == {files[0]: pytest.approx(0.8)}
    assert "a.mp3" in (tmp_path / "ina.csv").read_text()
    row = {"recipe": "r", "task": "gender", "clips": 2, "speakers": 2, "model_uar": 0.5,
           "model_uar_ci": (0.4, 0.6), "model_accuracy": 0.5, "model_accuracy_ci": (0.4, 0.6),
           "model_speaker_uar": 0.5, "majority_uar": 0.5, "ina_done": "1 of 2 clips"}
    cells = cv.summary_cells(row)
    assert cells[cv.SUMMARY_COLUMNS.index("ina UAR [95% CI]")] == "not run (1 of 2 clips)"

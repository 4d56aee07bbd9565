"""The test drivers (``agegender.evaluation``): shards and audio tables, the report files."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

from agegender.errors import ModelError
from agegender.evaluation import evaluate, evaluate_clips


def test_evaluate_writes_log_confusion_png_and_predictions(trained_gender, tmp_path):
    result = evaluate(trained_gender["dataset"], trained_gender["keras"], "gender",
                      results_dir=tmp_path)
    paths = {k: Path(v) for k, v in result["paths"].items()}
    assert paths["log"] == tmp_path / "gender" / "best_model_gender" / "test_log_gender.txt"
    log = paths["log"].read_text()
    for needle in ("accuracy:", "balanced accuracy (UAR):", "macro F1:",
                   "majority-class baseline:", "classification report:", "confusion matrix"):
        assert needle in log
    assert paths["confusion"].read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(paths["predictions"])
    assert len(table) == 12  # every test clip
    assert list(table.columns) == ["key", "speaker_id", "audio_path", "true", "predicted",
                                   "p_male", "p_female", "median_f0_hz", "pitch_predicted"]
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


def test_evaluate_reports_speakers_uncertainty_and_the_pitch_baseline(trained_gender,
                                                                      tmp_path):
    result = evaluate(trained_gender["dataset"], trained_gender["keras"], "gender",
                      results_dir=tmp_path, n_resamples=200)
    paths = {k: Path(v) for k, v in result["paths"].items()}
    log = paths["log"].read_text()
    # The raw layout has no speaker ids: the intervals say they are over clips.
    assert "percentile bootstrap over clips (speaker ids unknown)" in log
    assert "speakers per class: male unknown, female unknown" in log
    assert "pitch baseline: median F0 >" in log and "fitted for best UAR on" in log
    assert "train+dev clips" in log and "model vs pitch baseline" in log
    assert paths["per_speaker_figure"].read_bytes()[:4] == b"\x89PNG"
    speakers = pd.read_csv(paths["per_speaker"], keep_default_na=False)
    assert list(speakers["speaker_id"]) == ["(unknown)", "(unknown)"]  # pooled per class
    assert speakers["clips"].sum() == 12
    # Synthetic voices are 120 Hz male / 220 Hz female: the pitch rule gets them all.
    threshold = result["pitch"]["threshold"]["hz"]
    assert 125 < threshold < 205
    assert result["pitch"]["accuracy"] == 1.0
    table = pd.read_csv(paths["predictions"])
    np.testing.assert_allclose(table["median_f0_hz"].where(table["true"] == "male").dropna(),
                               120, rtol=0.08)
    assert table["audio_path"].str.startswith("cv-valid-test/").all()
    assert (Path(trained_gender["dataset"]) / "Pitch" / "median_f0.csv").is_file()
    low, high = result["ci"]["accuracy"]
    assert low <= result["accuracy"] <= high


def test_evaluate_clips_gives_the_same_report_from_audio(trained_gender, tmp_path):
    from agegender.preprocess import read_clean_manifest

    root = Path(trained_gender["dataset"])
    clips = read_clean_manifest(root, "test").head(8).copy()
    clips["speaker_id"] = [f"spk{i // 2}" for i in range(len(clips))]  # 2 clips a speaker
    clips.loc[len(clips)] = {**clips.iloc[0].to_dict(), "key": "gone",
                             "audio_path": "nowhere.wav"}
    shards = evaluate(root, trained_gender["keras"], "gender", results_dir=tmp_path / "s",
                      n_resamples=50)
    result = evaluate_clips(trained_gender["keras"], clips, root=root,
                            results_dir=tmp_path / "c", split="test", pitch_threshold=165.0,
                            n_resamples=50)
    assert result["n"] == 8  # the missing file is left out, not fatal
    assert "percentile bootstrap over speakers" in result["text"]
    assert "threshold given (165.0 Hz)" in result["text"]
    assert result["speaker_level"]["n_speakers"] == 4
    by_key = pd.read_csv(shards["paths"]["predictions"]).set_index("key")
    mine = pd.read_csv(result["paths"]["predictions"]).set_index("key")
    # Same clips, same probabilities as from the stored PNGs (PNG is lossless).
    np.testing.assert_allclose(mine["p_female"], by_key.loc[mine.index, "p_female"],
                               atol=1e-4)


def test_gender_report_without_audio_says_the_pitch_baseline_is_missing(tmp_path):
    from agegender.evaluation import _report

    result = _report(np.array([0, 1]), np.array([[.7, .3], [.4, .6]]), ["male", "female"],
                     task="gender", split="test", model_path="m", results_dir=tmp_path,
                     keys=["a", "b"], speakers=["s1", "s2"], audio_paths=["", ""],
                     f0_hz=np.array([np.nan, np.nan]),
                     threshold={"hz": 165.0, "source": "fixed", "unvoiced_code": 0},
                     n_resamples=20, scoring=None)
    assert result["pitch"] is None
    assert "pitch baseline: not available (no audio for these clips)" in result["text"]
    assert "median_f0_hz" not in pd.read_csv(result["paths"]["predictions"]).columns


def test_test_script_evaluates_a_manifest_straight_from_audio(trained_gender, tmp_path,
                                                               capsys):
    """``src/test.py --manifest``: a folder with only a labelled table and its audio."""
    import test as test_cli
    from synth import voice, write_audio

    table = tmp_path / "voices" / "manifest.csv"
    rows = ["path,gender,age,speaker,split"]
    for i in range(8):
        gender = ("male", "female")[i % 2]
        write_audio(tmp_path / "voices" / "clips" / f"c{i}.wav",
                    voice(gender, "twenties", seed=500 + i))
        # Rows without a split are evaluated; the train row fits the pitch threshold; the
        # age-only row has no gender label and takes no part.
        split = "train" if i < 2 else ""
        rows.append(f"clips/c{i}.wav,{gender},,spk{i // 2},{split}")
    write_audio(tmp_path / "voices" / "clips" / "a.wav", voice("male", "teens", seed=9))
    rows.append("clips/a.wav,,teens,spk9,")
    table.write_text("\n".join(rows) + "\n")
    status = test_cli.main(["--manifest", str(table), "--model_path", trained_gender["keras"],
                            "--results_dir", str(tmp_path / "results")])
    assert status == 0
    reports = tmp_path / "results" / "gender" / "best_model_gender"
    predictions = pd.read_csv(reports / "predictions_gender.csv")
    assert sorted(predictions["key"]) == [f"c{i}" for i in range(2, 8)]
    per_speaker = pd.read_csv(reports / "per_speaker_gender.csv")
    assert set(per_speaker["speaker_id"]) == {"spk1", "spk2", "spk3"}
    assert "fitted for best UAR on 2 voiced fit clips" in capsys.readouterr().out


def test_test_script_manifest_without_usable_rows_is_one_line(trained_gender, tmp_path):
    table = tmp_path / "manifest.csv"
    table.write_text("path,gender\nmissing.wav,male\n")
    done = subprocess.run([sys.executable, str(ROOT / "src" / "test.py"), "--manifest",
                           str(table), "--model_path", trained_gender["keras"]],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --manifest=")
    assert "Traceback" not in done.stderr


def test_reports_name_the_model_they_were_made_from(trained_gender, tmp_path, capfd, caplog):
    import json
    import logging

    from agegender.checkpoints import model_identity

    identity = model_identity(trained_gender["keras"])
    assert identity["epoch"] == trained_gender["best_epoch"]
    with caplog.at_level(logging.INFO, logger="agegender.evaluation"):
        result = evaluate(trained_gender["dataset"], trained_gender["keras"], "gender",
                          results_dir=tmp_path, n_resamples=20)
    log = Path(result["paths"]["log"]).read_text()
    assert f"model sha256: {identity['sha256']}" in log
    assert f"best epoch: {identity['epoch']}" in log
    assert f"model size: {identity['size']} bytes" in log
    sidecar = json.loads(Path(result["paths"]["predictions_model"]).read_text())
    assert Path(result["paths"]["predictions_model"]).name == "predictions_gender.csv.model.json"
    assert {k: sidecar[k] for k in identity} == identity
    assert (sidecar["task"], sidecar["split"]) == ("gender", "test")
    # The progress bar once at most (none when stderr is not a terminal), the summary once.
    err = capfd.readouterr().err
    assert err.count("evaluating test") <= 1, err
    assert sum("evaluated 12 test clips" in r.getMessage() for r in caplog.records) == 1


def test_confusion_matrix_title_names_the_model(trained_gender, tmp_path, monkeypatch):
    from agegender import figures
    from agegender.checkpoints import model_identity

    titles = []
    original = figures.confusion_matrix
    monkeypatch.setattr(figures, "confusion_matrix",
                        lambda *a, title="", **k: (titles.append(title), original(*a, title=title,
                                                                                  **k)))
    evaluate(trained_gender["dataset"], trained_gender["keras"], "gender", results_dir=tmp_path,
             n_resamples=20)
    identity = model_identity(trained_gender["keras"])
    (title,) = titles
    assert f"best_model_gender.keras (sha256 {identity['sha256'][:12]}, epoch " \
           f"{identity['epoch']})" in title


def test_report_probabilities_are_the_detectors_crop_averages(tmp_path):
    """A ``voice`` model and clips longer than one crop: ``evaluate_clips`` (test.py
    --manifest) reports exactly what ``AgeGenderDetector`` returns, for 3 crops and for 1."""
    import dataclasses

    import soundfile as sf
    from synth import voice

    from agegender import AgeGenderDetector
    from agegender.config import FeatureParams, ModelParams
    from agegender.model import build_model

    import keras

    keras.utils.set_random_seed(0)
    features = FeatureParams.preset("voice", image_size=32, image_width=16)
    model = build_model(ModelParams(image_size=32, image_width=16, num_classes=2, task="gender",
                                    class_names=("male", "female")),
                        features=dataclasses.asdict(features))
    # Untrained outputs sit at 0.5: large random output weights make crops disagree.
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights(
        [np.random.default_rng(0).normal(0, 30, kernel.shape).astype("float32"), bias])
    model_path = tmp_path / "voice.keras"
    model.save(model_path)
    rows = ["audio_path,gender,speaker_id"]
    for i in range(4):
        # 2 s = 50 columns at 25 a second: several crops of 16 columns.
        wave = np.concatenate([voice("female", "twenties", seed=10 + i, seconds=1.0),
                               voice("male", "sixties", seed=20 + i, seconds=1.0)])
        sf.write(tmp_path / f"c{i}.wav", wave, 16_000)
        rows.append(f"c{i}.wav,{('male', 'female')[i % 2]},s{i}")
    clips = pd.read_csv(io.StringIO("\n".join(rows)))
    for crops in (3, 1):
        result = evaluate_clips(model_path, clips, root=tmp_path, max_crops=crops,
                                results_dir=tmp_path / f"r{crops}", pitch_threshold=165.0,
                                n_resamples=20)
        reported = pd.read_csv(result["paths"]["predictions"])
        expected = AgeGenderDetector(model_path, max_crops=crops).predict(
            [str(tmp_path / f"c{i}.wav") for i in range(4)])
        np.testing.assert_allclose(reported["p_female"],
                                   [r["probabilities"]["female"] for r in expected], atol=2e-6)
        assert f"max_crops={crops}" in result["text"]
    three = pd.read_csv(tmp_path / "r3/gender/voice/predictions_gender.csv")["p_female"]
    one = pd.read_csv(tmp_path / "r1/gender/voice/predictions_gender.csv")["p_female"]
    assert np.abs(three - one).max() > 1e-5  # the crops changed the answer (CSV keeps 1e-6)

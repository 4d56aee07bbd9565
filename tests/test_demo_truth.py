"""The demo's last step prints each prediction beside its clip's true label."""

from __future__ import annotations

import pandas as pd

from agegender.demo import truth


def make_corpus(tmp_path):
    pd.DataFrame({"filename": ["cv-valid-test/sample-000000.mp3",
                               "cv-valid-test/sample-000001.mp3"],
                  "gender": ["female", "male"], "age": ["twenties", "sixties"]}
                 ).to_csv(tmp_path / "cv-valid-test.csv", index=False)
    # the same name in another split, another speaker: must not be confused with the test clip
    pd.DataFrame({"filename": ["cv-valid-train/sample-000000.mp3"], "gender": ["male"],
                  "age": ["teens"]}).to_csv(tmp_path / "cv-valid-train.csv", index=False)


def test_prints_true_label_and_right_or_wrong(tmp_path, capsys):
    make_corpus(tmp_path)
    clips = tmp_path / "cv-valid-test" / "cv-valid-test"
    predictions = tmp_path / "p.csv"
    pd.DataFrame({"file": [str(clips / "sample-000000.mp3"), str(clips / "sample-000001.mp3"),
                           "elsewhere/x.mp3"],
                  "label": ["female", "female", "male"], "probability": [0.9, 0.6, 0.7]}
                 ).to_csv(predictions, index=False)
    assert truth.main([f"--dataset_dir={tmp_path}", f"--predictions={predictions}",
                       "--cls_task=gender"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{clips / 'sample-000000.mp3'}: female  true: female (right)",
                     f"{clips / 'sample-000001.mp3'}: female  true: male (wrong)",
                     "elsewhere/x.mp3: male  true: unknown",
                     "1 of 2 right"]


def test_age_and_gender_age_truth(tmp_path):
    make_corpus(tmp_path)
    assert truth.true_labels(tmp_path, "age")["cv-valid-test/sample-000001.mp3"] == "sixties"
    assert truth.true_labels(tmp_path, "gender_age")["cv-valid-train/sample-000000.mp3"] == \
        "male-teens"


def test_no_corpus_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("file,label\n")
    assert truth.main([f"--dataset_dir={tmp_path}", f"--predictions={tmp_path / 'p.csv'}",
                       "--cls_task=gender"]) == 1
    assert "no cv-valid-*.csv" in capsys.readouterr().err


def test_demo_script_prints_the_truth_for_both_tasks():
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "scripts" / "demo.sh").read_text()
    assert "-m agegender.demo.truth" in script and "for task in gender age; do" in script
    assert '--predictions="results/$task/best_model_$task/demo_inference_$task.csv"' in script

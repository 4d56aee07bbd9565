"""Tests of agegender.leakage: no speaker and no audio file in two splits (issues 17, 21)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import synth

import preprocess_dataset
from agegender import leakage, preprocess
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import DatasetError
from agegender.layouts import read_clips

FEATURES = FeatureParams(image_size=32)


def _manifest(root: Path, rows: list[dict]) -> Path:
    """``root/manifest.csv`` from dicts, and a short WAV for every distinct path."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).fillna("").to_csv(root / "manifest.csv", index=False)
    for i, path in enumerate(dict.fromkeys(row["path"] for row in rows)):
        if not (root / path).exists():
            synth.write_audio(root / path, synth.voice("male", "twenties", seed=i, seconds=0.2))
    return root


def _speakers(per_split: dict[str, list[str]]) -> list[dict]:
    """Two clips per speaker, the speaker's split as given."""
    return [{"path": f"{speaker}/c{clip}.wav", "gender": ("male", "female")[n % 2],
             "speaker_id": speaker, "split": split}
            for split, speakers in per_split.items() for n, speaker in enumerate(speakers)
            for clip in range(2)]


def _clean(root: Path, results: Path, **options) -> dict:
    return preprocess.preprocess(root, params=PreprocessParams(
        dataset_type="manifest", num_workers=1, **options), features=FEATURES,
        results_dir=results, stages=("clean",))


# -- A: a speaker in two splits ---------------------------------------------------------------

def test_speaker_in_train_and_test_is_refused_naming_speaker_splits_and_rows(tmp_path):
    rows = _speakers({"train": ["a", "b"], "dev": ["c", "d"], "test": ["e", "f"]})
    rows[2]["split"] = "test"  # b's first clip: manifest row 4
    root = _manifest(tmp_path / "d", rows)
    with pytest.raises(DatasetError) as raised:
        _clean(root, tmp_path / "r")
    message = str(raised.value)
    assert "\n" not in message
    assert "speaker 'b'" in message
    assert "train (manifest.csv row 5)" in message and "test (manifest.csv row 4)" in message
    assert "--allow_speaker_overlap" in message
    assert not (root / "Manifest").exists()  # nothing written before the refusal


def test_speaker_in_two_splits_plus_empty_split_rows_is_refused(tmp_path):
    rows = _speakers({"train": ["a", "b"], "dev": ["c", "d"], "test": ["e", "f"]})
    rows[2]["split"] = "test"
    rows.append({"path": "b/c9.wav", "gender": "female", "speaker_id": "b", "split": ""})
    root = _manifest(tmp_path / "d", rows)
    with pytest.raises(DatasetError, match="speaker 'b' is in train .* and test"):
        _clean(root, tmp_path / "r")


def test_allowed_overlap_goes_on_and_is_in_the_reports(tmp_path, caplog):
    rows = _speakers({"train": ["a", "b"], "dev": ["c", "d"], "test": ["e", "f"]})
    rows[2]["split"] = "test"
    root = _manifest(tmp_path / "d", rows)
    summary = _clean(root, tmp_path / "r", allow_speaker_overlap=True)
    assert summary["kept"] == 12
    allowed = [w for w in summary["warnings"] if "allowed by --allow_speaker_overlap" in w]
    assert len(allowed) == 1 and "speaker 'b'" in allowed[0]
    report = pd.read_csv(preprocess.report_dir(tmp_path / "r", root) / "preprocess_report.csv")
    assert report["reason"].str.contains("speaker 'b' is in train").sum() == 1
    assert leakage.report_line(root).startswith("speaker leakage: ALLOWED")
    assert "speaker 'b'" in leakage.report_line(root)


def test_disjoint_speakers_are_recorded_as_checked(tmp_path):
    root = _manifest(tmp_path / "d", _speakers({"train": ["a", "b"], "dev": ["c", "d"],
                                                "test": ["e", "f"]}))
    _clean(root, tmp_path / "r")
    assert json.loads(leakage.record_path(root).read_text())["speakers"] == "checked"
    assert leakage.report_line(root).startswith("speaker leakage: none")


def test_layout_without_speakers_says_once_that_leakage_cannot_be_checked(tmp_path, caplog):
    root = synth.make_raw_corpus(tmp_path / "raw", per_group={"train": 1, "test": 1},
                                 seconds=0.2)
    preprocess.preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1),
                          features=FEATURES, results_dir=tmp_path / "r", stages=("clean",))
    said = [r for r in caplog.records if "cannot be checked" in r.getMessage()]
    assert len(said) == 1
    assert "cannot be checked" in leakage.report_line(root)


def test_test_log_carries_the_leakage_line(tmp_path):
    """evaluation's test log gets the line of the dataset's leakage record."""
    from agegender.evaluation import _with_leakage_line

    rows = _speakers({"train": ["a", "b"], "test": ["e", "f"]})
    rows[0]["split"] = "test"
    root = _manifest(tmp_path / "d", rows)
    _clean(root, tmp_path / "r", allow_speaker_overlap=True)
    log_path = tmp_path / "test_log.txt"
    log_path.write_text("accuracy 0.5\n")
    result = _with_leakage_line({"text": "accuracy 0.5\n", "paths": {"log": str(log_path)}},
                                root)
    lines = log_path.read_text().splitlines()
    assert lines[0] == "accuracy 0.5" and lines[1].startswith("speaker leakage: ALLOWED")
    assert result["text"] == log_path.read_text()


def test_cli_flag_reaches_the_params(tmp_path, capsys):
    rows = _speakers({"train": ["a", "b"], "dev": ["c", "d"], "test": ["e", "f"]})
    rows[0]["split"] = "dev"
    root = _manifest(tmp_path / "d", rows)
    common = [f"--dataset_dir={root}", "--dataset_type=manifest", "--stage=clean",
              f"--results_dir={tmp_path / 'r'}"]
    assert preprocess_dataset.main(common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speaker 'a'" in err[0]
    assert preprocess_dataset.main([*common, "--allow_speaker_overlap"]) == 0


# -- B: one audio file in two splits ----------------------------------------------------------

def test_one_file_in_train_and_test_is_refused_naming_both_rows(tmp_path):
    rows = _speakers({"train": ["a", "b"], "dev": ["c", "d"], "test": ["e", "f"]})
    rows.append({"path": "a/c0.wav", "gender": "male", "speaker_id": "", "split": "test"})
    root = _manifest(tmp_path / "d", rows)
    with pytest.raises(DatasetError) as raised:
        _clean(root, tmp_path / "r", allow_speaker_overlap=True)  # a file is never allowed
    message = str(raised.value)
    assert "audio file a/c0.wav is listed in train (manifest.csv row 2)" in message
    assert "test (manifest.csv row 14)" in message and "\n" not in message


def test_same_file_under_another_path_is_found_by_real_path(tmp_path):
    rows = _speakers({"train": ["a", "b"], "test": ["e", "f"]})
    rows.append({"path": "e/../a/./c1.wav", "gender": "male", "speaker_id": "x",
                 "split": "test"})
    root = _manifest(tmp_path / "d", rows)
    os.symlink(root / "b" / "c0.wav", root / "link.wav")
    rows.append({"path": "link.wav", "gender": "female", "speaker_id": "y", "split": "test"})
    _manifest(root, rows)
    lines = leakage.file_overlap(read_clips(root, "manifest").clips, root)
    assert len(lines) == 2
    assert any("a/c1.wav is listed in train" in line for line in lines)
    assert any("b/c0.wav is listed in train" in line for line in lines)


def test_many_rows_of_few_files_name_the_first_and_count_the_rest(tmp_path):
    splits = ("train", "dev", "test")
    rows = [{"path": f"f{i % 5}.wav", "gender": "male", "split": splits[i % 3]}
            for i in range(3000)]
    root = _manifest(tmp_path / "d", rows)
    with pytest.raises(DatasetError, match=r"f0.wav is listed in train .*\(4 more files in "
                                           r"two splits\)"):
        _clean(root, tmp_path / "r")


# -- C: a row with more cells than the header -------------------------------------------------

def test_unquoted_comma_in_the_first_row_names_the_row(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "manifest.csv").write_text("path,gender,speaker\n"
                                       "my,clip.wav,male,s1\nother.wav,female,s2\n")
    with pytest.raises(DatasetError) as raised:
        read_clips(root, "manifest")
    message = str(raised.value)
    assert "manifest.csv: row 2 has 4 cells, the header 3" in message
    assert "unquoted comma" in message and "\n" not in message

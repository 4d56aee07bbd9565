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


# The checks on in-memory tables, message by message: gaps found by mutation testing
# (docs/mutation.md), each test fails on a mutant of agegender.leakage that the tests above
# let through.


def _clips(rows: list[tuple]) -> pd.DataFrame:
    """(split, audio_path, speaker_id, source_row[, source_file]) → the cleaned-clips table."""
    return pd.DataFrame([{"split": r[0], "audio_path": r[1], "speaker_id": r[2],
                          "source_row": r[3], "source_file": r[4] if len(r) > 4 else
                          "/data/manifest.csv"} for r in rows])


def test_speaker_message_names_every_split_in_order_and_counts_the_rows(tmp_path):
    clips = _clips([("test", "t.wav", "s1", 9), ("train", "a.wav", "s1", 2),
                    ("train", "b.wav", "s1", 3), ("train", "c.wav", "s1", 4),
                    ("train", "d.wav", "s1", 5), ("train", "e.wav", "s1", 6),
                    ("dev", "f.wav", "s1", 7), ("dev", "g.wav", "s1", 8)])
    assert leakage.speaker_overlap(clips) == [
        "speaker 's1' is in train (manifest.csv rows 2, 3, 4 (+2 more)), "
        "dev (manifest.csv rows 7, 8) and test (manifest.csv row 9)"]
    # Exactly _ROWS_SHOWN rows: all named, nothing "more".
    three = _clips([("train", f"{n}.wav", "s3", n) for n in (2, 3, 4)]
                   + [("dev", "x.wav", "s3", 5)])
    assert leakage.speaker_overlap(three) == [
        "speaker 's3' is in train (manifest.csv rows 2, 3, 4) and dev (manifest.csv row 5)"]
    # Rows of two tables: each named, in the order they come.
    two = _clips([("train", "a.wav", "s2", 5, "/x/b.csv"), ("train", "b.wav", "s2", 2, "/x/a.csv"),
                  ("test", "c.wav", "s2", 3, "/x/a.csv")])
    assert leakage.speaker_overlap(two) == [
        "speaker 's2' is in train (b.csv row 5; a.csv row 2) and test (a.csv row 3)"]


def test_speakers_are_named_in_the_order_of_their_first_row(tmp_path):
    clips = _clips([("train", "1.wav", "zed", 2), ("train", "2.wav", "amy", 3),
                    ("test", "3.wav", "amy", 4), ("test", "4.wav", "zed", 5),
                    ("dev", "5.wav", "bob", 6)])
    lines = leakage.speaker_overlap(clips)
    assert [line.split("'")[1] for line in lines] == ["zed", "amy"]
    with pytest.raises(DatasetError) as refused:  # refused by default
        leakage.check_splits(clips, tmp_path)
    assert str(refused.value) == (
        f"{lines[0]} (1 more speakers in two splits): a speaker in two splits makes the test "
        "score a memory test; put all their rows in one split (or --split_by_speaker), or "
        "pass --allow_speaker_overlap to go on knowingly")
    one = clips[clips["speaker_id"] != "amy"]
    with pytest.raises(DatasetError, match=r"row 5\): a speaker in two splits"):
        leakage.check_splits(one, tmp_path)


def test_allowed_overlap_is_logged_with_the_folder_and_recorded(tmp_path, caplog):
    clips = _clips([("train", "1.wav", "zed", 2), ("test", "2.wav", "zed", 3)])
    with caplog.at_level("WARNING", logger="agegender.leakage"):
        record = leakage.check_splits(clips, tmp_path, allow_speaker_overlap=True)
    line = leakage.speaker_overlap(clips)[0]
    assert record == {"speakers": "allowed", "overlapping": [line], "files": "checked"}
    assert caplog.messages == [f"{tmp_path}: {line} (allowed by --allow_speaker_overlap)"]


def test_clips_without_a_speaker_id_are_no_speaker(tmp_path):
    clips = _clips([("train", "1.wav", "", 2), ("test", "2.wav", "", 3),
                    ("train", "3.wav", "a", 4), ("test", "4.wav", "b", 5)])
    assert leakage.speaker_overlap(clips) == []
    assert leakage.check_splits(clips, tmp_path) == {"speakers": "checked", "overlapping": [],
                                                     "files": "checked"}


def test_no_speaker_ids_at_all_is_said_and_recorded(tmp_path, caplog):
    clips = _clips([("train", "1.wav", "", 2), ("test", "2.wav", "", 3)])
    with caplog.at_level("WARNING", logger="agegender.leakage"):
        record = leakage.check_splits(clips, tmp_path)
    assert record == {"speakers": "unchecked", "overlapping": [], "files": "checked"}
    assert caplog.messages == [
        f"{tmp_path}: the dataset names no speakers (no speaker, speaker_id or client_id "
        "column): whether a speaker is in two splits cannot be checked"]


def test_file_message_names_the_file_the_splits_and_the_count(tmp_path):
    clips = _clips([("train", "x.wav", "a", 2), ("test", "x.wav", "b", 3),
                    ("dev", "y.wav", "c", 4), ("test", "y.wav", "d", 5)])
    with pytest.raises(DatasetError) as refused:
        leakage.check_splits(clips, tmp_path, allow_speaker_overlap=True)
    assert str(refused.value) == (
        "audio file x.wav is listed in train (manifest.csv row 2) and test (manifest.csv row "
        "3) (1 more files in two splits): a clip in two splits is scored on what the model "
        "was trained on; keep each file in one split")


def test_report_lines_of_each_record(tmp_path):
    for record, line in [
            ({"speakers": "unchecked"}, "speaker leakage: cannot be checked (the dataset names "
             "no speakers); the score may include speakers heard in training"),
            ({"speakers": "allowed", "overlapping": []},
             "speaker leakage: ALLOWED (--allow_speaker_overlap): 0 speaker(s) in two splits"),
            ({"speakers": "allowed", "overlapping": ["speaker 'a' is in x and y", "z"]},
             "speaker leakage: ALLOWED (--allow_speaker_overlap): 2 speaker(s) in two splits; "
             "first: speaker 'a' is in x and y")]:
        leakage.write_record(tmp_path, record)
        assert leakage.report_line(tmp_path) == line
    assert leakage.record_path(tmp_path) == tmp_path / "Manifest" / "leakage.json"

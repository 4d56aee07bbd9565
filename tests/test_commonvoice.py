"""Tests of agegender.commonvoice: the three layouts, cleaning, label codes, path safety."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synth

from agegender import commonvoice, labels
from agegender.commonvoice import CLEAN_COLUMNS, CLIP_COLUMNS, clean_clips, read_clips
from agegender.errors import DatasetError, ParameterError

OUTSIDE = "path outside dataset"


def touch_clip(path: Path) -> Path:
    """A tiny valid WAV (the parser only checks that files exist)."""
    return synth.write_audio(path, synth.tone(300.0, seconds=0.05))


def empty_raw_corpus(root: Path) -> Path:
    """A raw layout whose three CSVs have a header and no rows."""
    for split in ("train", "dev", "test"):
        (root / f"cv-valid-{split}" / f"cv-valid-{split}").mkdir(parents=True)
        synth.write_csv(root / f"cv-valid-{split}.csv", [])
    return root


# -- raw layout -------------------------------------------------------------------------------

@pytest.mark.parametrize("nested", [True, False])
def test_raw_layout_finds_audio_nested_or_one_level_up(tmp_path: Path, nested: bool) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05, nested=nested)
    clips = read_clips(root, "raw")
    assert list(clips.columns) == list(CLIP_COLUMNS)
    assert clips["split"].value_counts().to_dict() == {"train": 12, "dev": 12, "test": 12}
    assert (clips["problem"] == "").all()
    first = clips.iloc[0]
    assert first["key"] == "sample-000000"
    expected = ("cv-valid-train/cv-valid-train/sample-000000.wav" if nested
                else "cv-valid-train/sample-000000.wav")
    assert first["audio_path"] == expected
    assert (root / first["audio_path"]).is_file()
    assert first["source_file"] == str(root / "cv-valid-train.csv")
    assert first["source_row"] == 2
    assert first["gender_raw"] == "male" and first["age_raw"] == "teens"
    kept, dropped = clean_clips(clips)
    assert len(kept) == 36 and dropped.empty


def test_raw_layout_missing_csv_is_a_warning_while_one_split_exists(tmp_path: Path,
                                                                     caplog) -> None:
    """Changed with issue 10: a missing split table is a warning naming it (test-only
    folders are legitimate); no table at all is still a DatasetError naming them."""
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1}, seconds=0.05)
    clips = read_clips(root, "raw")
    assert set(clips["split"]) == {"train", "dev"}
    assert "cv-valid-test.csv" in caplog.text
    assert clips.attrs["missing_tables"] == [f"{root / 'cv-valid-test.csv'}: not found"]
    for split in ("train", "dev"):
        (root / f"cv-valid-{split}.csv").unlink()
    with pytest.raises(DatasetError, match="cv-valid-test.csv"):
        read_clips(root, "raw")


def test_missing_dataset_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere"):
        read_clips(tmp_path / "nowhere", "raw")


# -- clean layout -----------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [True, False])
def test_clean_layout_with_and_without_split_prefix(tmp_path: Path, prefix: bool) -> None:
    root = synth.make_clean_corpus(tmp_path, prefix=prefix, seconds=0.05)
    clips = read_clips(root, "clean")
    assert clips["split"].value_counts().to_dict() == {"train": 12, "dev": 12, "test": 12}
    assert (clips["problem"] == "").all(), clips["problem"].unique()
    row = clips[clips["split"] == "dev"].iloc[3]
    assert row["audio_path"] == "Audio/cv-valid-dev/dev-0003.wav"
    assert row["key"] == "dev-0003"
    assert row["source_file"] == str(root / "Audio" / "cv-valid-dev.csv")
    assert clean_clips(clips)[0].shape[0] == 36


# -- cv layout --------------------------------------------------------------------------------

def test_cv_layout_reads_split_tsvs_and_modern_gender_spellings(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=2, seconds=0.05)
    clips = read_clips(root, "cv")
    assert clips["split"].value_counts().to_dict() == {"train": 16, "dev": 2, "test": 2}
    assert (clips["problem"] == "").all()
    assert set(clips["gender_raw"]) == {"male_masculine", "female_feminine"}
    assert clips.iloc[0]["audio_path"] == "clips/common_voice_en_00000.mp3"
    assert clips.iloc[0]["speaker_id"] == "client000"
    kept, dropped = clean_clips(clips)
    assert dropped.empty
    assert set(kept["gender"]) == {"male", "female"}
    by_speaker = kept.drop_duplicates("speaker_id").set_index("speaker_id")
    assert by_speaker.loc["client000", "gender"] == "male"
    assert by_speaker.loc["client001", "gender"] == "female"
    assert by_speaker.loc["client001", "gender_code"] == 1


def test_cv_unquoted_sentence_with_quote_and_empty_cells(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=1, seconds=0.05)
    rows = [
        synth.cv_row("a", "quote.mp3", age="twenties", gender="female_feminine",
                     sentence='He said "stop and left'),
        synth.cv_row("b", "empty_age.mp3", age="", gender="male_masculine"),
        synth.cv_row("c", "empty_gender.mp3", age="thirties", gender=""),
        synth.cv_row("d", "after.mp3", age="sixties", gender="male_masculine",
                     sentence='a "quoted" word'),
    ]
    for row in rows:
        touch_clip(root / "clips" / row[1])
    synth.write_tsv(root / "dev.tsv", synth.CV_HEADER, rows)
    clips = read_clips(root, "cv")
    dev = clips[clips["split"] == "dev"].set_index("key")
    assert list(dev.index) == ["quote", "empty_age", "empty_gender", "after"]
    assert dev.loc["quote", "age_raw"] == "twenties"
    assert dev.loc["quote", "gender_raw"] == "female_feminine"
    assert dev.loc["empty_age", "age_raw"] == ""
    assert dev.loc["empty_gender", "gender_raw"] == ""
    assert dev.loc["after", "age_raw"] == "sixties"  # the quote did not swallow later lines
    kept, dropped = clean_clips(clips)
    kept_dev = kept[kept["split"] == "dev"].set_index("key")
    # Changed with issue 10: a row missing one label serves the task of the other.
    assert list(kept_dev.index) == ["quote", "empty_age", "empty_gender", "after"]
    assert kept_dev.loc["quote", "gender_age_code"] == 1
    assert dropped.empty
    assert tuple(kept_dev.loc["empty_age", ["gender", "age"]]) == ("male", "")
    assert tuple(kept_dev.loc["empty_age", ["gender_code", "age_code", "gender_age_code"]]
                 ) == (0, -1, -1)
    assert tuple(kept_dev.loc["empty_gender", ["gender", "age"]]) == ("", "thirties")
    assert tuple(kept_dev.loc["empty_gender", ["gender_code", "age_code", "gender_age_code"]]
                 ) == (-1, 2, -1)


def _speaker_split(tmp_path: Path, seed: int) -> pd.DataFrame:
    return read_clips(tmp_path, "cv", split_by_speaker=True, seed=seed)


def test_split_by_speaker_is_disjoint_80_10_10_and_seeded(tmp_path: Path) -> None:
    synth.make_cv_corpus(tmp_path, speakers=30, clips_per_speaker=2, seconds=0.02)
    clips = _speaker_split(tmp_path, seed=7)
    assert len(clips) == 60
    assert (clips["source_file"] == str(tmp_path / "validated.tsv")).all()
    speakers = {split: set(clips.loc[clips["split"] == split, "speaker_id"])
                for split in ("train", "dev", "test")}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert {split: len(s) for split, s in speakers.items()} == {"train": 24, "dev": 3, "test": 3}
    # Every clip of a speaker stays with the speaker.
    assert (clips.groupby("speaker_id")["split"].nunique() == 1).all()
    again = _speaker_split(tmp_path, seed=7)
    pd.testing.assert_frame_equal(clips, again)
    other = _speaker_split(tmp_path, seed=8)
    assert not clips.sort_values("key")["split"].reset_index(drop=True).equals(
        other.sort_values("key")["split"].reset_index(drop=True))


def test_split_by_speaker_keeps_the_source_row_numbers(tmp_path: Path) -> None:
    """source_row must point at the row's line in validated.tsv (header = line 1)."""
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=2, seconds=0.02)
    lines = (root / "validated.tsv").read_text().splitlines()
    line_of = {line.split("\t")[1]: number for number, line in enumerate(lines, start=1)}
    clips = read_clips(root, "cv", split_by_speaker=True)
    for row in clips.itertuples(index=False):
        assert row.source_row == line_of[Path(row.audio_path).name], row


def test_split_by_speaker_needs_validated_tsv(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=1, seconds=0.02)
    (root / "validated.tsv").unlink()
    read_clips(root, "cv")  # the split files are enough without the speaker split
    with pytest.raises(DatasetError, match="validated.tsv"):
        read_clips(root, "cv", split_by_speaker=True)


# -- cleaning ---------------------------------------------------------------------------------

def test_cleaning_counts_and_reasons(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05)
    audio = root / "cv-valid-train" / "cv-valid-train"
    for name in ("nogender", "seventies", "other", "dup"):
        touch_clip(audio / f"{name}.wav")
    synth.append_csv(root / "cv-valid-train.csv", [
        synth.v1_row("cv-valid-train/nogender.wav", age="twenties", gender=""),
        synth.v1_row("cv-valid-train/seventies.wav", age="seventies", gender="female"),
        synth.v1_row("cv-valid-train/other.wav", age="thirties", gender="other"),
        synth.v1_row("cv-valid-train/absent.wav", age="thirties", gender="male"),
        synth.v1_row("cv-valid-train/dup.wav", age="fifties", gender="female"),
        synth.v1_row("cv-valid-train/dup.wav", age="fifties", gender="female"),
        synth.v1_row("cv-valid-train/sample-000003.wav", age="fourties", gender="male"),
    ])
    synth.append_csv(root / "cv-valid-train.csv", [
        synth.v1_row("cv-valid-train/nogender.wav", age="seventies", gender="other")])
    clips = read_clips(root, "raw")
    assert len(clips) == 36 + 8
    kept, dropped = clean_clips(clips)
    # Changed with issue 10: rows 14-16 miss one label only and are kept for the other task.
    assert len(kept) == 36 + 4 and len(dropped) == 4
    assert list(kept.columns) == [*CLIP_COLUMNS, *CLEAN_COLUMNS]
    assert "reason" in dropped.columns
    reasons = dict(zip(dropped["source_row"], dropped["reason"], strict=True))
    assert reasons == {
        17: "missing file",
        19: "duplicate clip key in split",
        20: "duplicate clip key in split",
        21: "no usable label: gender 'other' not male/female, "
            "age 'seventies' not one of the 6 groups",
    }
    partial = kept.set_index("source_row")
    assert tuple(partial.loc[14, ["gender_code", "age_code"]]) == (-1, 1)
    assert tuple(partial.loc[15, ["gender_code", "age_code"]]) == (1, -1)
    assert tuple(partial.loc[16, ["gender_code", "age_code"]]) == (-1, 2)
    assert (partial.loc[[14, 15, 16], "gender_age_code"] == -1).all()
    # The first of the duplicates is kept, the later ones dropped.
    assert (kept["key"] == "dup").sum() == 1
    assert kept.loc[kept["key"] == "dup", "source_row"].item() == 18
    # The same key in another split is not a duplicate.
    assert (kept["key"] == "sample-000003").sum() == 3


def test_duplicate_of_a_dropped_row_is_kept(tmp_path: Path) -> None:
    """When the first row of a key is unusable, a later usable row of it is not a duplicate."""
    root = empty_raw_corpus(tmp_path)
    touch_clip(root / "cv-valid-train" / "cv-valid-train" / "twice.wav")
    # Changed with issue 10: the first row needs both labels bad to be unusable.
    synth.append_csv(root / "cv-valid-train.csv", [
        synth.v1_row("cv-valid-train/twice.wav", age="", gender=""),
        synth.v1_row("cv-valid-train/twice.wav", age="twenties", gender="female"),
    ])
    kept, dropped = clean_clips(read_clips(root, "raw"))
    assert list(kept["source_row"]) == [3]
    assert list(dropped["reason"]) == [
        "no usable label: gender '' not male/female, age '' not one of the 6 groups"]


def test_group_counts_before_and_after(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05)
    touch_clip(root / "cv-valid-train" / "cv-valid-train" / "old.wav")
    synth.append_csv(root / "cv-valid-train.csv", [
        synth.v1_row("cv-valid-train/old.wav", age="seventies", gender="female"),
        synth.v1_row("cv-valid-train/gone.wav", age="twenties", gender="male"),
    ])
    clips = read_clips(root, "raw")
    kept, _ = clean_clips(clips)
    counts = commonvoice.group_counts(clips, kept)
    assert list(counts.columns) == ["split", "group", "before", "after"]
    train = counts[counts["split"] == "train"].set_index("group")
    assert train.loc["male-twenties", "before"] == 2
    assert train.loc["male-twenties", "after"] == 1
    assert train.loc["female-seventies", "before"] == 1
    # Changed with issue 10: the clip is kept as gender-only.
    assert train.loc["female-seventies", "after"] == 1
    assert counts["before"].sum() == 38 and counts["after"].sum() == 37
    assert set(labels.GENDER_AGES) <= set(counts.loc[counts["split"] == "dev", "group"])


# -- label codes ------------------------------------------------------------------------------

EXPECTED_AGE = {"teens": 0, "twenties": 1, "thirties": 2, "fourties": 3, "fifties": 4,
                "sixties": 5}


def test_label_codes(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05)
    kept, _ = clean_clips(read_clips(root, "raw"))
    assert len(kept) == 36
    for row in kept.itertuples(index=False):
        assert row.gender_code == {"male": 0, "female": 1}[row.gender]
        assert row.age_code == EXPECTED_AGE[row.age]
        assert row.gender_age_code == EXPECTED_AGE[row.age] + (0 if row.gender == "female" else 6)
    codes = kept.drop_duplicates(["gender", "age"]).set_index(["gender", "age"])
    assert codes.loc[("female", "teens"), "gender_age_code"] == 0
    assert codes.loc[("female", "sixties"), "gender_age_code"] == 5
    assert codes.loc[("male", "teens"), "gender_age_code"] == 6
    assert codes.loc[("male", "sixties"), "gender_age_code"] == 11
    assert labels.class_names("gender_age")[7] == "male-twenties"
    assert labels.class_names("gender") == ("male", "female")
    assert labels.class_names("age")[3] == "fourties"


def test_unknown_task_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="'height'"):
        labels.class_names("height")


# -- paths that leave the dataset folder ------------------------------------------------------

ESCAPES = ["../../etc/passwd", "/etc/passwd", "cv-valid-train/../../x.mp3",
           "cv-valid-train/link.mp3"]


@pytest.fixture
def escaping_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A raw corpus whose train CSV has rows pointing outside it; returns (root, outside)."""
    root = empty_raw_corpus(tmp_path / "dataset")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = touch_clip(outside / "secret.wav")
    # Files the escaping rows would reach if they were followed.
    touch_clip(tmp_path / "x.mp3")
    os.symlink(secret, root / "cv-valid-train" / "cv-valid-train" / "link.mp3")
    touch_clip(root / "cv-valid-train" / "cv-valid-train" / "fine.wav")
    synth.append_csv(root / "cv-valid-train.csv",
                     [synth.v1_row(cell, age="twenties", gender="male") for cell in ESCAPES]
                     + [synth.v1_row("cv-valid-train/fine.wav", age="twenties", gender="male")])
    return root, outside


def test_rows_escaping_the_dataset_are_rejected(escaping_corpus) -> None:
    root, _ = escaping_corpus
    clips = read_clips(root, "raw")
    problems = dict(zip(clips["source_row"], clips["problem"], strict=True))
    # Changed with issue 10: the symlink's message says what it is and names the flag.
    assert problems == {2: OUTSIDE, 3: OUTSIDE, 4: OUTSIDE, 5: commonvoice.SYMLINK_OUTSIDE,
                        6: ""}
    assert "--follow_symlinks" in problems[5] and problems[5].startswith(OUTSIDE + ":")
    kept, dropped = clean_clips(clips)
    assert list(kept["key"]) == ["fine"]
    assert dropped["reason"].str.startswith(OUTSIDE).sum() == 4


def test_clean_layout_escapes_are_rejected(tmp_path: Path) -> None:
    """An absolute cell must not be turned into a relative one by the split prefix."""
    root = synth.make_clean_corpus(tmp_path / "dataset", per_group={"train": 1, "dev": 1,
                                                                    "test": 1}, seconds=0.02)
    touch_clip(tmp_path / "x.mp3")
    synth.append_csv(root / "Audio" / "cv-valid-train.csv", [
        synth.v1_row("/etc/passwd", age="twenties", gender="male"),
        synth.v1_row("../../../x.mp3", age="twenties", gender="male"),
        synth.v1_row("cv-valid-train/../../../x.mp3", age="twenties", gender="male"),
    ])
    clips = read_clips(root, "clean")
    assert list(clips.loc[clips["source_row"] >= 14, "problem"]) == [OUTSIDE] * 3


def test_cv_layout_escapes_are_rejected(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path / "dataset", speakers=10, clips_per_speaker=1,
                                seconds=0.02)
    touch_clip(tmp_path / "x.mp3")
    synth.write_tsv(root / "test.tsv", synth.CV_HEADER, [
        synth.cv_row("a", "../../x.mp3", age="twenties", gender="male_masculine"),
        synth.cv_row("b", "/etc/passwd", age="twenties", gender="male_masculine"),
    ])
    clips = read_clips(root, "cv")
    assert list(clips.loc[clips["split"] == "test", "problem"]) == [OUTSIDE, OUTSIDE]


# -- bad label files and parameters -----------------------------------------------------------

@pytest.mark.parametrize("layout, column", [("raw", "gender"), ("raw", "filename"),
                                            ("clean", "age"), ("cv", "client_id"),
                                            ("cv", "path")])
def test_missing_required_column_names_file_and_column(tmp_path: Path, layout: str,
                                                       column: str) -> None:
    if layout == "raw":
        root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                     seconds=0.02)
        table_path = root / "cv-valid-dev.csv"
    elif layout == "clean":
        root = synth.make_clean_corpus(tmp_path, seconds=0.02)
        table_path = root / "Audio" / "cv-valid-dev.csv"
    else:
        root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=1, seconds=0.02)
        table_path = root / "dev.tsv"
    sep = "\t" if layout == "cv" else ","
    table = pd.read_csv(table_path, sep=sep, dtype=str, keep_default_na=False)
    table.drop(columns=[column]).to_csv(table_path, sep=sep, index=False)
    with pytest.raises(DatasetError) as raised:
        read_clips(root, layout)
    message = str(raised.value)
    assert str(table_path) in message
    assert repr(column) in message


def test_unparseable_csv_is_a_dataset_error(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.02)
    (root / "cv-valid-test.csv").write_bytes(b"filename,age,gender\n\xff\xfe\x00bad,\x80\n")
    with pytest.raises(DatasetError, match="cv-valid-test.csv"):
        read_clips(root, "raw")


def test_unknown_dataset_type_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="'kaggle'"):
        read_clips(tmp_path, "kaggle")
    assert issubclass(ParameterError, ValueError)


def test_clean_clips_of_empty_table(tmp_path: Path) -> None:
    clips = read_clips(empty_raw_corpus(tmp_path), "raw")
    assert clips.empty
    kept, dropped = clean_clips(clips)
    assert kept.empty and dropped.empty
    assert np.array_equal(kept.columns, [*CLIP_COLUMNS, *CLEAN_COLUMNS])


# -- issue 10: task-aware cleaning, manifests, speakers, symlinks, test-only folders -----------

def write_manifest(root: Path, rows: list[dict], *, name: str = "manifest.csv",
                   clips: bool = True) -> Path:
    """Writes ``root/name`` from dicts (columns = union of keys, in order) and, when
    ``clips``, a tiny WAV for every row's path inside ``root``."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pd.DataFrame(rows, columns=columns).fillna("")
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / name, sep="\t" if name.endswith(".tsv") else ",", index=False)
    if clips:
        for row in rows:
            cell = row.get("path", row.get("filename", ""))
            target = Path(os.path.normpath(root / cell))
            if cell and str(target).startswith(str(root)) and not target.exists():
                touch_clip(target)
    return root / name


def test_gender_only_and_age_only_rows_serve_their_task() -> None:
    clips = pd.DataFrame({
        "split": "train", "key": ["both", "gonly", "aonly", "none"],
        "audio_path": ["a.wav", "b.wav", "c.wav", "d.wav"], "speaker_id": "",
        "gender_raw": ["female", "male", "other", ""],
        "age_raw": ["twenties", "seventies", "41", "n/a"],
        "source_file": "t.csv", "source_row": [2, 3, 4, 5], "problem": "",
    }, columns=list(CLIP_COLUMNS))
    kept, dropped = clean_clips(clips)
    codes = kept.set_index("key")[["gender", "age", "gender_code", "age_code",
                                   "gender_age_code"]]
    assert codes.loc["both"].tolist() == ["female", "twenties", 1, 1, 1]
    assert codes.loc["gonly"].tolist() == ["male", "", 0, -1, -1]
    assert codes.loc["aonly"].tolist() == ["", "fourties", -1, 3, -1]
    assert list(dropped["key"]) == ["none"]
    assert dropped["reason"].item().startswith("no usable label:")
    counts = commonvoice.task_counts(kept)
    assert counts["gender"]["examples"] == 2 and counts["age"]["examples"] == 2
    assert counts["gender_age"]["examples"] == 1
    assert counts["gender"]["classes"] == {"male": 1, "female": 1}
    assert counts["age"]["classes"]["fourties"] == 1


@pytest.mark.parametrize("cell, group", [("13", "teens"), ("19", "teens"), ("20", "twenties"),
                                         ("34", "thirties"), ("45.0", "fourties"),
                                         ("59", "fifties"), ("69", "sixties"),
                                         ("Sixties", "sixties"), ("12", ""), ("70", ""),
                                         ("", ""), ("old", "")])
def test_ages_in_years_map_to_groups(cell: str, group: str) -> None:
    assert (labels.normalise_age(cell) or "") == group


def test_manifest_with_years_speakers_and_splits(tmp_path: Path) -> None:
    rows = [{"path": f"audio/s{i}.wav", "gender": "male" if i % 2 else "female",
             "age": str(20 + i), "speaker": f"spk{i}", "split": split}
            for i, split in enumerate(["train", "train", "dev", "test", "Test "])]
    rows.append({"path": "audio/noage.wav", "gender": "female", "age": "",
                 "speaker": "spk9", "split": "train"})
    write_manifest(tmp_path, rows)
    clips = read_clips(tmp_path, "manifest")
    assert list(clips.columns) == list(CLIP_COLUMNS)
    assert clips.groupby("split").size().to_dict() == {"train": 3, "dev": 1, "test": 2}
    kept, dropped = clean_clips(clips)
    assert dropped.empty
    by_key = kept.set_index("key")
    assert by_key.loc["s0", "age"] == "twenties" and by_key.loc["s4", "age"] == "twenties"
    assert by_key.loc["s3", "speaker_id"] == "spk3"
    assert by_key.loc["s3", "audio_path"] == "audio/s3.wav"
    assert by_key.loc["noage", "age_code"] == -1 and by_key.loc["noage", "gender_code"] == 1
    assert clips["source_file"].iloc[0] == str(tmp_path / "manifest.csv")


@pytest.mark.parametrize("column", ["speaker", "speaker_id", "client_id"])
def test_speaker_column_under_each_name(tmp_path: Path, column: str) -> None:
    write_manifest(tmp_path / "m", [{"path": "a.wav", "gender": "male", column: "S1",
                                     "split": "test"}])
    assert read_clips(tmp_path / "m", "manifest")["speaker_id"].tolist() == ["S1"]
    root = empty_raw_corpus(tmp_path / "raw")
    touch_clip(root / "cv-valid-dev" / "cv-valid-dev" / "a.wav")
    table = pd.DataFrame({"filename": ["cv-valid-dev/a.wav"], "age": ["teens"],
                          "gender": ["male"], column: ["S2"]})
    table.to_csv(root / "cv-valid-dev.csv", index=False)
    clips = read_clips(root, "raw")
    assert clips.loc[clips["split"] == "dev", "speaker_id"].tolist() == ["S2"]


def test_manifest_tsv_and_filename_column(tmp_path: Path) -> None:
    write_manifest(tmp_path, [{"filename": "x/a.wav", "gender": "female_feminine",
                               "split": "dev"}], name="manifest.tsv")
    clips = read_clips(tmp_path, "manifest")
    assert clips["audio_path"].tolist() == ["x/a.wav"] and clips["problem"].tolist() == [""]


def test_manifest_bad_split_value_names_file_row_and_value(tmp_path: Path) -> None:
    source = write_manifest(tmp_path, [{"path": "a.wav", "gender": "male", "split": "train"},
                                       {"path": "b.wav", "gender": "male", "split": "valid"}])
    with pytest.raises(DatasetError) as raised:
        read_clips(tmp_path, "manifest")
    message = str(raised.value)
    assert str(source) in message and "row 3" in message and "'valid'" in message
    assert "\n" not in message


@pytest.mark.parametrize("rows, match", [
    ([{"file": "a.wav", "gender": "male"}], "'path'"),
    ([{"path": "a.wav", "label": "male"}], "'gender' or an 'age'"),
])
def test_manifest_missing_columns(tmp_path: Path, rows: list[dict], match: str) -> None:
    write_manifest(tmp_path, rows, clips=False)
    with pytest.raises(DatasetError, match=match):
        read_clips(tmp_path, "manifest")


def test_manifest_missing_or_twice(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"manifest.csv: file not found \(nor manifest.tsv\)"):
        read_clips(tmp_path, "manifest")
    write_manifest(tmp_path, [{"path": "a.wav", "gender": "male"}])
    write_manifest(tmp_path, [{"path": "a.wav", "gender": "male"}], name="manifest.tsv")
    with pytest.raises(DatasetError, match="both"):
        read_clips(tmp_path, "manifest")


def test_manifest_repeated_stems_get_unique_stable_keys(tmp_path: Path) -> None:
    rows = [{"path": f"{folder}/clip.wav", "gender": "male", "split": "test"}
            for folder in ("alice", "bob")]
    rows += [{"path": "carol/other.wav", "gender": "female", "split": "test"},
             {"path": "carol/other.wav", "gender": "female", "split": "test"}]
    write_manifest(tmp_path, rows)
    clips = read_clips(tmp_path, "manifest")
    keys = clips["key"].tolist()
    assert keys[0] != keys[1] and all(re.fullmatch(r"clip-[0-9a-f]{8}", k) for k in keys[:2])
    assert keys[2:] == ["other", "other"]  # the same file twice: one key, a duplicate
    assert read_clips(tmp_path, "manifest")["key"].tolist() == keys
    kept, dropped = clean_clips(clips)
    assert len(kept) == 3 and dropped["reason"].tolist() == ["duplicate clip key in split"]


def _speaker_rows(genders: list[str], clips: int = 2) -> list[dict]:
    return [{"path": f"s{i:02d}/c{j}.wav", "gender": gender, "age": labels.AGES[i % 6],
             "speaker_id": f"s{i:02d}"} for i, gender in enumerate(genders)
            for j in range(clips)]


@pytest.mark.parametrize("seed", range(6))
def test_stratified_speaker_split_holds_both_genders_in_dev_and_test(tmp_path: Path,
                                                                     seed: int) -> None:
    genders = ["male"] * 17 + ["female"] * 3
    write_manifest(tmp_path, _speaker_rows(genders))
    clips = read_clips(tmp_path, "manifest", seed=seed)
    assert (clips.groupby("speaker_id")["split"].nunique() == 1).all()
    speakers = clips.drop_duplicates("speaker_id")
    for split in ("dev", "test"):
        held = speakers[speakers["split"] == split]
        assert set(held["gender_raw"]) == {"male", "female"}, (split, held)
    assert (speakers["split"] == "train").sum() >= 14
    assert set(speakers.loc[speakers["split"] == "train", "gender_raw"]) == {"male", "female"}


def test_empty_split_cells_follow_the_speaker(tmp_path: Path) -> None:
    rows = _speaker_rows(["male", "female"] * 10)
    for row in rows:
        row["split"] = ""
    rows[0]["split"] = "test"  # s00's other clip must follow it into test
    write_manifest(tmp_path, rows)
    clips = read_clips(tmp_path, "manifest")
    assert (clips.groupby("speaker_id")["split"].nunique() == 1).all()
    assert set(clips.loc[clips["speaker_id"] == "s00", "split"]) == {"test"}
    assert set(clips["split"]) == {"train", "dev", "test"}


def test_split_by_speaker_for_raw_rebuilds_from_all_tables(tmp_path: Path) -> None:
    root = empty_raw_corpus(tmp_path)
    for split in ("train", "dev", "test"):
        rows = [r for r in _speaker_rows(["male", "female"] * 10)
                if int(r["speaker_id"][1:]) % 3 == ("train", "dev", "test").index(split)]
        table = pd.DataFrame({"filename": [f"cv-valid-{split}/{r['path'].replace('/', '_')}"
                                           for r in rows],
                              "age": [r["age"] for r in rows],
                              "gender": [r["gender"] for r in rows],
                              "client_id": [r["speaker_id"] for r in rows]})
        table.to_csv(root / f"cv-valid-{split}.csv", index=False)
    clips = read_clips(root, "raw", split_by_speaker=True, seed=3)
    assert len(clips) == 40
    assert (clips.groupby("speaker_id")["split"].nunique() == 1).all()
    per_split = clips.drop_duplicates("speaker_id")["split"].value_counts().to_dict()
    assert per_split == {"train": 16, "dev": 2, "test": 2}
    pd.testing.assert_frame_equal(clips, read_clips(root, "raw", split_by_speaker=True, seed=3))


@pytest.mark.parametrize("layout", ["raw", "clean", "manifest"])
def test_split_by_speaker_without_speakers_is_one_line_error(tmp_path: Path,
                                                             layout: str) -> None:
    if layout == "raw":
        root = synth.make_raw_corpus(tmp_path, per_group={"train": 1}, seconds=0.02)
        where = "cv-valid-train.csv"
    elif layout == "clean":
        root = synth.make_clean_corpus(tmp_path, per_group={"dev": 1}, seconds=0.02)
        where = "cv-valid-dev.csv"
    else:
        root = tmp_path
        write_manifest(root, [{"path": "a.wav", "gender": "male"}])
        where = "manifest.csv"
    with pytest.raises(DatasetError) as raised:
        read_clips(root, layout, split_by_speaker=True)
    message = str(raised.value)
    assert where in message and "speaker" in message and "\n" not in message


@pytest.fixture
def symlinked_manifest(tmp_path: Path) -> Path:
    """A manifest whose clips are symlinks into another folder, plus a ``..`` escape."""
    outside = tmp_path / "store"
    root = tmp_path / "dataset"
    (root / "links").mkdir(parents=True)
    for name in ("a", "b"):
        os.symlink(touch_clip(outside / f"{name}.wav"), root / "links" / f"{name}.wav")
    os.symlink(outside, root / "store_link")  # a symlinked folder too
    touch_clip(root / "inside.wav")
    write_manifest(root, [
        {"path": "links/a.wav", "gender": "male", "split": "test"},
        {"path": "store_link/b.wav", "gender": "female", "split": "test"},
        {"path": "../store/a.wav", "gender": "male", "split": "test"},
        {"path": "links/../../store/b.wav", "gender": "male", "split": "test"},
        {"path": str(outside / "a.wav"), "gender": "male", "split": "test"},
        {"path": "inside.wav", "gender": "female", "split": "test"},
    ], clips=False)
    return root


def test_symlink_outside_refused_without_the_flag(symlinked_manifest: Path) -> None:
    clips = read_clips(symlinked_manifest, "manifest")
    problems = clips["problem"].tolist()
    assert problems == [commonvoice.SYMLINK_OUTSIDE] * 2 + [OUTSIDE] * 3 + [""]
    assert "--follow_symlinks" in problems[0]


def test_symlink_outside_accepted_with_the_flag(symlinked_manifest: Path) -> None:
    clips = read_clips(symlinked_manifest, "manifest", follow_symlinks=True)
    assert clips["problem"].tolist() == ["", ""] + [OUTSIDE] * 3 + [""]
    assert clips["audio_path"].tolist()[:2] == ["links/a.wav", "store_link/b.wav"]
    kept, _ = clean_clips(clips)
    assert kept["key"].tolist() == ["a", "b", "inside"]


def test_read_manifest_public_entry(symlinked_manifest: Path) -> None:
    kept, dropped = commonvoice.read_user_manifest(symlinked_manifest / "manifest.csv",
                                              follow_symlinks=True)
    assert list(kept.columns) == [*CLIP_COLUMNS, *CLEAN_COLUMNS]
    assert kept["audio_path"].tolist() == [str(symlinked_manifest / p) for p in
                                           ("links/a.wav", "store_link/b.wav", "inside.wav")]
    assert all(Path(p).is_file() for p in kept["audio_path"])
    assert kept["gender_code"].tolist() == [0, 1, 1] and (kept["age_code"] == -1).all()
    assert dropped["reason"].str.startswith(OUTSIDE).sum() == 3
    strict, refused = commonvoice.read_user_manifest(symlinked_manifest / "manifest.csv")
    assert strict["key"].tolist() == ["inside"] and len(refused) == 5


def test_test_only_manifest_and_clean_folder(tmp_path: Path, caplog) -> None:
    write_manifest(tmp_path / "m", [{"path": "a.wav", "gender": "male", "split": "test"}])
    clips = read_clips(tmp_path / "m", "manifest")
    assert clips["split"].tolist() == ["test"]
    assert len(clips.attrs["missing_tables"]) == 2
    root = synth.make_clean_corpus(tmp_path / "c", per_group={"test": 1}, seconds=0.02)
    clips = read_clips(root, "clean")
    assert set(clips["split"]) == {"test"} and len(clips) == 12
    assert "cv-valid-train.csv" in caplog.text and "cv-valid-dev.csv" in caplog.text


def test_split_warnings_flag_tiny_splits() -> None:
    counts = {"gender": {"examples": 3, "classes": {"male": 3, "female": 0}, "speakers": 1},
              "age": {"examples": 0, "classes": {}, "speakers": 0}}
    lines = commonvoice.split_warnings("test", counts, has_speakers=True)
    assert lines[0].startswith("test/gender: 3 examples; tiny: 1 speaker(s)")
    assert "male 3, female 0" in lines[0]
    assert lines[1] == "test/age: no labelled examples"
    nothing = {"gender": {"examples": 0, "classes": {}, "speakers": 0},
               "age": {"examples": 0, "classes": {}, "speakers": 0}}
    assert commonvoice.split_warnings("train", nothing, has_speakers=True) == [
        "train: empty (no labelled examples for any task)"]
    healthy = {"gender": {"examples": 20, "classes": {"male": 10, "female": 10},
                          "speakers": 4}}
    assert commonvoice.split_warnings("dev", healthy, has_speakers=True) == []

def test_guess_layout_of_each_layout(tmp_path):
    from synth import make_clean_corpus, make_cv_corpus, make_raw_corpus

    from agegender.commonvoice import guess_layout

    assert guess_layout(make_raw_corpus(tmp_path / "raw", per_group={"train": 1})) == "raw"
    assert guess_layout(make_clean_corpus(tmp_path / "clean", per_group={"train": 1})) == "clean"
    assert guess_layout(make_cv_corpus(tmp_path / "cv", speakers=3, clips_per_speaker=1)) == "cv"
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "manifest.csv").write_text("audio_path,gender,age\n")
    assert guess_layout(tmp_path / "manifest") == "manifest"
    (tmp_path / "empty").mkdir()
    assert guess_layout(tmp_path / "empty") is None


@pytest.mark.parametrize(("made", "asked"), [("raw", "clean"), ("clean", "raw"), ("cv", "raw"),
                                             ("raw", "cv")])
def test_wrong_dataset_type_names_the_layout_the_folder_has(tmp_path, made, asked):
    from synth import make_clean_corpus, make_cv_corpus, make_raw_corpus

    from agegender.commonvoice import read_clips

    makers = {"raw": lambda p: make_raw_corpus(p, per_group={"train": 1}),
              "clean": lambda p: make_clean_corpus(p, per_group={"train": 1}),
              "cv": lambda p: make_cv_corpus(p, speakers=3, clips_per_speaker=1)}
    root = makers[made](tmp_path / "corpus")
    with pytest.raises(DatasetError) as caught:
        read_clips(root, asked)
    message = str(caught.value)
    assert "\n" not in message and "file not found" in message
    assert f"looks like the {made} layout: run " in message
    assert message.endswith(f"--dataset_type={made}")


def test_no_known_layout_lists_the_layouts(tmp_path):
    from agegender.commonvoice import read_clips

    with pytest.raises(DatasetError, match=r"cv-valid-train.csv: file not found .*no known "
                                           r"layout there \(raw: cv-valid-train.csv"):
        read_clips(tmp_path, "raw")

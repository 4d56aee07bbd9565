"""Tests of agegender.layouts: the four layouts read into one clip table, bad label
files, guessing the layout."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import synth
from dataset_tables import empty_raw_corpus, touch_clip, write_manifest

from agegender.commonvoice import clean_clips
from agegender.errors import DatasetError, ParameterError
from agegender.layouts import CLIP_COLUMNS, read_clips


@pytest.mark.parametrize("nested", [True, False])
def test_raw_layout_finds_audio_nested_or_one_level_up(tmp_path: Path, nested: bool) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05, nested=nested)
    clips = read_clips(root, "raw").clips
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
    read = read_clips(root, "raw")
    assert set(read.clips["split"]) == {"train", "dev"}
    assert "cv-valid-test.csv" in caplog.text
    assert read.missing_tables == (f"{root / 'cv-valid-test.csv'}: not found",)
    for split in ("train", "dev"):
        (root / f"cv-valid-{split}.csv").unlink()
    with pytest.raises(DatasetError, match="cv-valid-test.csv"):
        read_clips(root, "raw")


def test_missing_dataset_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere"):
        read_clips(tmp_path / "nowhere", "raw")


@pytest.mark.parametrize("prefix", [True, False])
def test_clean_layout_with_and_without_split_prefix(tmp_path: Path, prefix: bool) -> None:
    root = synth.make_clean_corpus(tmp_path, prefix=prefix, seconds=0.05)
    clips = read_clips(root, "clean").clips
    assert clips["split"].value_counts().to_dict() == {"train": 12, "dev": 12, "test": 12}
    assert (clips["problem"] == "").all(), clips["problem"].unique()
    row = clips[clips["split"] == "dev"].iloc[3]
    assert row["audio_path"] == "Audio/cv-valid-dev/dev-0003.wav"
    assert row["key"] == "dev-0003"
    assert row["source_file"] == str(root / "Audio" / "cv-valid-dev.csv")
    assert clean_clips(clips)[0].shape[0] == 36


def test_cv_layout_reads_split_tsvs_and_modern_gender_spellings(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=2, seconds=0.05)
    clips = read_clips(root, "cv").clips
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
    clips = read_clips(root, "cv").clips
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


def test_manifest_with_years_speakers_and_splits(tmp_path: Path) -> None:
    rows = [{"path": f"audio/s{i}.wav", "gender": "male" if i % 2 else "female",
             "age": str(20 + i), "speaker": f"spk{i}", "split": split}
            for i, split in enumerate(["train", "train", "dev", "test", "Test "])]
    rows.append({"path": "audio/noage.wav", "gender": "female", "age": "",
                 "speaker": "spk9", "split": "train"})
    write_manifest(tmp_path, rows)
    clips = read_clips(tmp_path, "manifest").clips
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
    assert read_clips(tmp_path / "m", "manifest").clips["speaker_id"].tolist() == ["S1"]
    root = empty_raw_corpus(tmp_path / "raw")
    touch_clip(root / "cv-valid-dev" / "cv-valid-dev" / "a.wav")
    table = pd.DataFrame({"filename": ["cv-valid-dev/a.wav"], "age": ["teens"],
                          "gender": ["male"], column: ["S2"]})
    table.to_csv(root / "cv-valid-dev.csv", index=False)
    clips = read_clips(root, "raw").clips
    assert clips.loc[clips["split"] == "dev", "speaker_id"].tolist() == ["S2"]


def test_manifest_tsv_and_filename_column(tmp_path: Path) -> None:
    write_manifest(tmp_path, [{"filename": "x/a.wav", "gender": "female_feminine",
                               "split": "dev"}], name="manifest.tsv")
    clips = read_clips(tmp_path, "manifest").clips
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
    clips = read_clips(tmp_path, "manifest").clips
    keys = clips["key"].tolist()
    assert keys[0] != keys[1] and all(re.fullmatch(r"clip-[0-9a-f]{8}", k) for k in keys[:2])
    assert keys[2:] == ["other", "other"]  # the same file twice: one key, a duplicate
    assert read_clips(tmp_path, "manifest").clips["key"].tolist() == keys
    kept, dropped = clean_clips(clips)
    assert len(kept) == 3 and dropped["reason"].tolist() == ["duplicate clip key in split"]


def test_test_only_manifest_and_clean_folder(tmp_path: Path, caplog) -> None:
    write_manifest(tmp_path / "m", [{"path": "a.wav", "gender": "male", "split": "test"}])
    read = read_clips(tmp_path / "m", "manifest")
    assert read.clips["split"].tolist() == ["test"]
    assert [line.rsplit("=", 1)[1] for line in read.missing_tables] == ["train", "dev"]
    root = synth.make_clean_corpus(tmp_path / "c", per_group={"test": 1}, seconds=0.02)
    clips = read_clips(root, "clean").clips
    assert set(clips["split"]) == {"test"} and len(clips) == 12
    assert "cv-valid-train.csv" in caplog.text and "cv-valid-dev.csv" in caplog.text


def test_guess_layout_of_each_layout(tmp_path):
    from synth import make_clean_corpus, make_cv_corpus, make_raw_corpus

    from agegender.layouts import guess_layout

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

    with pytest.raises(DatasetError, match=r"cv-valid-train.csv: file not found .*no known "
                                           r"layout there \(raw: cv-valid-train.csv"):
        read_clips(tmp_path, "raw")

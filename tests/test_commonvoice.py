"""Tests of agegender.commonvoice: cleaning, label codes, counts and warnings, a user's
manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synth
from dataset_tables import empty_raw_corpus, make_symlinked_manifest, touch_clip

from agegender import commonvoice, labels
from agegender.commonvoice import CLEAN_COLUMNS, clean_clips
from agegender.errors import ParameterError
from agegender.layouts import CLIP_COLUMNS, read_clips

OUTSIDE = "path outside dataset"


@pytest.fixture
def symlinked_manifest(tmp_path: Path) -> Path:
    """``dataset_tables.make_symlinked_manifest``."""
    return make_symlinked_manifest(tmp_path)


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
    clips = read_clips(root, "raw").clips
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
    kept, dropped = clean_clips(read_clips(root, "raw").clips)
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
    clips = read_clips(root, "raw").clips
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


EXPECTED_AGE = {"teens": 0, "twenties": 1, "thirties": 2, "fourties": 3, "fifties": 4,
                "sixties": 5}


def test_label_codes(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path, per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=0.05)
    kept, _ = clean_clips(read_clips(root, "raw").clips)
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


def test_clean_clips_of_empty_table(tmp_path: Path) -> None:
    clips = read_clips(empty_raw_corpus(tmp_path), "raw").clips
    assert clips.empty
    kept, dropped = clean_clips(clips)
    assert kept.empty and dropped.empty
    assert np.array_equal(kept.columns, [*CLIP_COLUMNS, *CLEAN_COLUMNS])


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


def test_read_user_manifest_public_entry(symlinked_manifest: Path) -> None:
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

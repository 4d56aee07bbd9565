"""Tests of agegender.speaker_split: no speaker in two splits, stratified, seeded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import synth
from dataset_tables import empty_raw_corpus, write_manifest

from agegender import labels
from agegender.errors import DatasetError
from agegender.layouts import read_clips


def _speaker_split(tmp_path: Path, seed: int) -> pd.DataFrame:
    return read_clips(tmp_path, "cv", split_by_speaker=True, seed=seed).clips


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
    clips = read_clips(root, "cv", split_by_speaker=True).clips
    for row in clips.itertuples(index=False):
        assert row.source_row == line_of[Path(row.audio_path).name], row


def test_split_by_speaker_needs_validated_tsv(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path, speakers=10, clips_per_speaker=1, seconds=0.02)
    (root / "validated.tsv").unlink()
    read_clips(root, "cv")  # the split files are enough without the speaker split
    with pytest.raises(DatasetError, match="validated.tsv"):
        read_clips(root, "cv", split_by_speaker=True)


def _speaker_rows(genders: list[str], clips: int = 2) -> list[dict]:
    return [{"path": f"s{i:02d}/c{j}.wav", "gender": gender, "age": labels.AGES[i % 6],
             "speaker_id": f"s{i:02d}"} for i, gender in enumerate(genders)
            for j in range(clips)]


@pytest.mark.parametrize("seed", range(6))
def test_stratified_speaker_split_holds_both_genders_in_dev_and_test(tmp_path: Path,
                                                                     seed: int) -> None:
    genders = ["male"] * 17 + ["female"] * 3
    write_manifest(tmp_path, _speaker_rows(genders))
    clips = read_clips(tmp_path, "manifest", seed=seed).clips
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
    clips = read_clips(tmp_path, "manifest").clips
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
    clips = read_clips(root, "raw", split_by_speaker=True, seed=3).clips
    assert len(clips) == 40
    assert (clips.groupby("speaker_id")["split"].nunique() == 1).all()
    per_split = clips.drop_duplicates("speaker_id")["split"].value_counts().to_dict()
    assert per_split == {"train": 16, "dev": 2, "test": 2}
    pd.testing.assert_frame_equal(clips, read_clips(root, "raw", split_by_speaker=True, seed=3).clips)


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

"""Tests of agegender.dataset_paths through every layout: rows whose path leaves the
dataset folder (``..``, absolute, symlinks) are rejected, never opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import synth
from dataset_tables import empty_raw_corpus, make_symlinked_manifest, touch_clip

from agegender.commonvoice import clean_clips
from agegender.dataset_paths import SYMLINK_OUTSIDE
from agegender.layouts import read_clips

OUTSIDE = "path outside dataset"


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
    clips = read_clips(root, "raw").clips
    problems = dict(zip(clips["source_row"], clips["problem"], strict=True))
    # Changed with issue 10: the symlink's message says what it is and names the flag.
    assert problems == {2: OUTSIDE, 3: OUTSIDE, 4: OUTSIDE, 5: SYMLINK_OUTSIDE,
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
    clips = read_clips(root, "clean").clips
    assert list(clips.loc[clips["source_row"] >= 14, "problem"]) == [OUTSIDE] * 3


def test_cv_layout_escapes_are_rejected(tmp_path: Path) -> None:
    root = synth.make_cv_corpus(tmp_path / "dataset", speakers=10, clips_per_speaker=1,
                                seconds=0.02)
    touch_clip(tmp_path / "x.mp3")
    synth.write_tsv(root / "test.tsv", synth.CV_HEADER, [
        synth.cv_row("a", "../../x.mp3", age="twenties", gender="male_masculine"),
        synth.cv_row("b", "/etc/passwd", age="twenties", gender="male_masculine"),
    ])
    clips = read_clips(root, "cv").clips
    assert list(clips.loc[clips["split"] == "test", "problem"]) == [OUTSIDE, OUTSIDE]


@pytest.fixture
def symlinked_manifest(tmp_path: Path) -> Path:
    """``dataset_tables.make_symlinked_manifest``."""
    return make_symlinked_manifest(tmp_path)


def test_symlink_outside_refused_without_the_flag(symlinked_manifest: Path) -> None:
    clips = read_clips(symlinked_manifest, "manifest").clips
    problems = clips["problem"].tolist()
    assert problems == [SYMLINK_OUTSIDE] * 2 + [OUTSIDE] * 3 + [""]
    assert "--follow_symlinks" in problems[0]


def test_symlink_outside_accepted_with_the_flag(symlinked_manifest: Path) -> None:
    clips = read_clips(symlinked_manifest, "manifest", follow_symlinks=True).clips
    assert clips["problem"].tolist() == ["", ""] + [OUTSIDE] * 3 + [""]
    assert clips["audio_path"].tolist()[:2] == ["links/a.wav", "store_link/b.wav"]
    kept, _ = clean_clips(clips)
    assert kept["key"].tolist() == ["a", "b", "inside"]

"""The pure parts of bench/voices_curve.py: the clip table and the nested speaker sets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("voices_curve", _BENCH / "voices_curve.py")
voices_curve = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(voices_curve)


def _demo(root: Path, per_gender: int = 5) -> Path:
    """clips.csv + cv-valid-*.csv as the demo generator writes them, 2 clips a speaker."""
    clips, labels = [], {"train": [], "dev": [], "test": []}
    for split, count in (("train", per_gender), ("dev", 1), ("test", 1)):
        for gender in ("female", "male"):
            for number in range(count):
                speaker = f"{split}-{gender}-{number}"
                for clip in range(2):
                    name = f"cv-valid-{split}/{speaker}-{clip}.mp3"
                    clips.append({"filename": name, "split": split, "speaker_id": speaker,
                                  "sentence": "x"})
                    labels[split].append({"filename": name, "gender": gender, "age": "teens"})
    labels["train"].append({"filename": "cv-valid-train/bad.mp3", "gender": "other", "age": ""})
    clips.append({"filename": "cv-valid-train/bad.mp3", "split": "train", "speaker_id": "z",
                  "sentence": "x"})
    root.mkdir(parents=True)
    pd.DataFrame(clips).to_csv(root / "clips.csv", index=False)
    for split, rows in labels.items():
        pd.DataFrame(rows).to_csv(root / f"cv-valid-{split}.csv", index=False)
    return root


def test_speaker_table_keeps_labelled_clips_with_their_speaker(tmp_path):
    table = voices_curve.speaker_table(_demo(tmp_path / "demo"))
    assert len(table) == 2 * (10 + 2 + 2)  # the "other" clip is left out
    assert list(table.columns) == ["path", "gender", "speaker", "split"]
    row = table[table["path"] == "cv-valid-dev/dev-male-0-1.mp3"].iloc[0]
    assert (row["gender"], row["speaker"], row["split"]) == ("male", "dev-male-0", "dev")


def test_nested_speakers_are_balanced_and_nested(tmp_path):
    table = voices_curve.speaker_table(_demo(tmp_path / "demo"))
    sets = voices_curve.nested_speakers(table, [2, 4, 10], seed=3)
    for size, names in sets.items():
        assert len(names) == size
        assert sum("female" in name for name in names) == size // 2
        assert all(name.startswith("train-") for name in names)
    assert set(sets[2]) <= set(sets[4]) <= set(sets[10])
    with pytest.raises(SystemExit, match="12 needs 6 training speakers"):
        voices_curve.nested_speakers(table, [12], seed=3)


def test_audio_file_finds_the_nested_kaggle_layout(tmp_path):
    nested = tmp_path / "cv-valid-dev" / "cv-valid-dev" / "a.mp3"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"x")
    assert voices_curve.audio_file(tmp_path, "cv-valid-dev/a.mp3") == nested
    assert voices_curve.audio_file(tmp_path, "cv-valid-dev/b.mp3") == (
        tmp_path / "cv-valid-dev" / "b.mp3")


@pytest.mark.parametrize("work", ["demo", "demo/curve", "."])
def test_work_dir_inside_or_around_the_corpus_is_refused(tmp_path, work):
    demo = _demo(tmp_path / "demo")
    before = sorted(p.name for p in demo.iterdir())
    with pytest.raises(SystemExit, match="must lie outside --demo_dir"):
        voices_curve.main(["--demo_dir", str(demo), "--work_dir", str(tmp_path / work)])
    assert sorted(p.name for p in demo.iterdir()) == before

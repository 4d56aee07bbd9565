"""bench/paired_compare.py on predictions CSVs written here, as src/test.py writes them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("paired_compare", _BENCH / "paired_compare.py")
paired_compare = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(paired_compare)

TRUTH = ["male", "male", "female", "female", "male", "female"]
SPEAKERS = ["a", "a", "b", "c", "d", "e"]


def _write(path: Path, predicted: list[str], pitch: list[str] | None = None) -> Path:
    table = pd.DataFrame({"key": [f"clip{i}" for i in range(len(TRUTH))],
                          "speaker_id": SPEAKERS, "true": TRUTH, "predicted": predicted,
                          "pitch_predicted": pitch or TRUTH})
    table.to_csv(path, index=False)
    return path


def test_a_model_against_another_and_against_the_pitch_column(tmp_path, capsys):
    perfect = _write(tmp_path / "a.csv", TRUTH, pitch=["female"] * 6)
    # Wrong on speaker d (a man): men's recall 2/3, UAR 5/6.
    worse = _write(tmp_path / "b.csv", ["male", "male", "female", "female", "female", "female"])
    paired_compare.main(["--against", str(worse), str(perfect)])
    row = capsys.readouterr().out.splitlines()[3].split()
    assert row[1:5] == ["6", "5", "1.000", "0.833"]
    assert row[5] == "+0.167"
    paired_compare.main(["--against", "pitch", str(perfect)])
    out = capsys.readouterr().out
    assert out.startswith(f"against: pitch rule ({perfect})")
    assert out.splitlines()[3].split()[3:6] == ["1.000", "0.500", "+0.500"]


def test_other_clips_or_other_truth_are_refused_by_name(tmp_path):
    first = _write(tmp_path / "a.csv", TRUTH)
    fewer = tmp_path / "fewer.csv"
    pd.read_csv(first).iloc[:5].to_csv(fewer, index=False)
    with pytest.raises(SystemExit, match="hold different clips .5 and 6; 1 in one only"):
        paired_compare.main(["--against", str(first), str(fewer)])
    relabelled = tmp_path / "relabelled.csv"
    table = pd.read_csv(first)
    table.loc[2, "true"] = "male"
    table.to_csv(relabelled, index=False)
    with pytest.raises(SystemExit, match="disagree on the truth of clip 'clip2'"):
        paired_compare.main(["--against", str(first), str(relabelled)])
    bare = tmp_path / "bare.csv"
    table.drop(columns=["speaker_id"]).to_csv(bare, index=False)
    with pytest.raises(SystemExit, match=r"bare.csv: no column\(s\) \['speaker_id'\]"):
        paired_compare.main(["--against", str(first), str(bare)])

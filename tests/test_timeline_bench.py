"""bench/timeline_bench.py's scoring on recordings and segments written here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("timeline_bench", _BENCH / "timeline_bench.py")
timeline_bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(timeline_bench)

NAMES = ["male", "female"]


def _recording(folder: Path, name: str, seconds: float, truth: list[tuple]) -> dict:
    wav = folder / f"{name}.wav"
    sf.write(wav, np.zeros(int(seconds * 16_000), np.float32), 16_000)
    csv = folder / f"{name}.truth.csv"
    pd.DataFrame(truth, columns=["gender", "start", "end"]).to_csv(csv, index=False)
    return {"wav": str(wav), "truth": str(csv), "background": "clean"}


def test_every_system_is_scored_on_the_seconds_all_of_them_label(tmp_path):
    # 10 s: a man speaks 0-4 s, a woman 5-9 s.
    rec = _recording(tmp_path, "rec0", 10.0, [("male", 0.0, 4.0), ("female", 5.0, 9.0)])
    wav = rec["wav"]
    outputs = {
        # Labels all speech, wrong on 1 s of the woman's (8-9 s).
        "ours": {"gender": {wav: [["male", 0.0, 4.0], ["female", 5.0, 8.0],
                                  ["male", 8.0, 9.0]]}},
        # Keeps only 1-3 s and 5-7 s (misses half the speech), never wrong there.
        "ina": {"gender": {wav: [["male", 1.0, 3.0], ["female", 5.0, 7.0]]}},
        "pitch": None,  # a system that did not run is left out
    }
    plain = timeline_bench.evaluate([rec], outputs, "gender", NAMES, "gender")
    # Over all speech: ours 1 s wrong of 8 (12.5 %); ina misses 4 s of 8, wrong on none.
    assert plain[0][3:9] == ["0.0", "0.0", "12.5", "50.0", "0.0", "0.0"]
    common = timeline_bench.common_ground([rec], outputs, "gender", NAMES, "gender")
    # Common ground is 1-3 s and 5-7 s: 4 s, half the speech; ours is right on all of it.
    assert common[0] == ["rec0.wav", "0.1", "50", "0.0", "0.0"]
    assert common[-1] == ["all", "0.1", "50", "0.0", "0.0"]


def test_pooled_common_ground_weighs_recordings_by_their_common_time(tmp_path):
    first = _recording(tmp_path, "a", 6.0, [("female", 0.0, 6.0)])
    second = _recording(tmp_path, "b", 3.0, [("male", 0.0, 3.0)])
    outputs = {
        "ours": {"gender": {first["wav"]: [["female", 0.0, 6.0]],
                            second["wav"]: [["female", 0.0, 3.0]]}},  # all wrong on b
        "ina": {"gender": {first["wav"]: [["female", 0.0, 6.0]],
                           second["wav"]: [["male", 0.0, 1.5]]}},
    }
    rows = timeline_bench.common_ground([first, second], outputs, "gender", NAMES, "gender")
    assert rows[0][3:] == ["0.0", "0.0"]
    assert rows[1][2:] == ["50", "100.0", "0.0"]
    # Pooled: 7.5 s in common, ours wrong on 1.5 s of them (20 %), ina on none.
    assert rows[2] == ["all", "0.1", "83", "20.0", "0.0"]

"""bench/classifier_probe.py on a tiny manifest folder of synthetic speakers in tmp_path.

Men at ~120 Hz and women at ~220 Hz (``agegender.synthetic.voice``): the statistics'
logistic separates them, so the table's numbers can be checked, not only its shape.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agegender.synthetic import voice

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))  # the bench imports its siblings (common, voice_stats_probe)
_SPEC = importlib.util.spec_from_file_location("classifier_probe", _BENCH / "classifier_probe.py")
probe = importlib.util.module_from_spec(_SPEC)
sys.modules["classifier_probe"] = probe  # dataclasses look their module up there
_SPEC.loader.exec_module(probe)

SPEAKERS = 6  # per gender
CLIPS = 2  # per speaker
RATE = 16_000
HEADER = ["path", "gender", "age", "speaker_id", "split", "language"]


def _corpus(root: Path) -> Path:
    """12 speakers x 2 clips (train/dev, speaker-disjoint), one test speaker per gender, a
    row pointing outside the folder and an unreadable clip."""
    (root / "clips").mkdir(parents=True)
    rows, seed = [], 0
    for gender in ("male", "female"):
        for speaker in range(SPEAKERS + 1):
            split = "test" if speaker == SPEAKERS else ("dev" if speaker % 3 == 2 else "train")
            for clip in range(CLIPS):
                name = f"clips/{gender}{speaker}_{clip}.wav"
                sf.write(root / name, voice(gender, "thirties", seed=seed, rate=RATE), RATE)
                rows.append([name, gender, "thirties", f"{gender}{speaker}", split, "xx"])
                seed += 1
    (root / "clips" / "broken.wav").write_bytes(b"not audio at all")
    rows += [["../x.wav", "male", "thirties", "outsider", "train", "xx"],
             ["clips/broken.wav", "female", "thirties", "broken", "train", "xx"]]
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root


def _table(text: str, *, test: bool) -> dict[str, list[str]]:
    """{row name: its cells} of the cross-validation table, or of the test table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("model") and ("test UAR" in line) == test) + 2
    rows = {}
    for line in lines[start:]:
        if not line.strip() or not line[0].isalpha() or line.startswith("CPU"):
            break
        name, rest = re.match(r"(\S+(?: C=\S+| \d\S*)?)\s{2,}(.*)", line).groups()
        rows[name] = re.split(r"\s{2,}", rest.strip())
    return rows


def _uar(cell: str) -> tuple[float, float, float]:
    point, low, high = map(float, re.match(r"([+-]?[\d.]+) \[([+-]?[\d.]+), ([+-]?[\d.]+)\]",
                                           cell).groups())
    return point, low, high


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _corpus(tmp_path_factory.mktemp("probe") / "corpus")


def test_cross_validation_table_on_separable_speakers(corpus, tmp_path, capsys):
    probe.main(["--dataset_dir", str(corpus), "--models", "svm C=1,hgb,clean 0.2,gmm,stack",
                "--cache", str(tmp_path / "stats.npz"),
                "--frames_cache", str(tmp_path / "frames.npz"), "--workers", "2"])
    out, err = capsys.readouterr()
    assert "'../x.wav': path outside dataset" in err
    # 12 train/dev speakers x 2 clips; the outsider and the broken clip are not in the pool.
    assert "on train + dev: 24 clips, 12 speakers (12 male, 12 female clips)" in out
    rows = _table(out, test=False)
    assert list(rows) == ["logistic C=1", "svm C=1", "hgb", "clean 0.2", "gmm", "stack"]
    uars = {name: _uar(cells[0]) for name, cells in rows.items()}
    for point, low, high in uars.values():
        assert 0.0 <= low <= point <= high <= 1.0
    # The pitch statistics alone tell ~120 Hz from ~220 Hz on unseen speakers.
    assert uars["logistic C=1"][0] >= 0.9
    assert uars["stack"][0] >= 0.9
    # Every harmonic tone has the same timbre, but its cepstrum shows the harmonic spacing.
    assert uars["gmm"][0] >= 0.8
    # The paired column is this row's UAR minus the reference's, as printed (to rounding).
    reference = uars["logistic C=1"][0]
    for name, cells in rows.items():
        difference, low, high = _uar(cells[1])
        assert difference == pytest.approx(uars[name][0] - reference, abs=1.5e-3)
        assert low <= difference <= high
        assert cells[2] == "24"
        assert float(cells[3]) >= 0.0
    assert rows["logistic C=1"][1] == "+0.000 [+0.000, +0.000]"

    with np.load(tmp_path / "frames.npz") as stored:
        lengths = dict(zip(stored["cells"].tolist(), stored["lengths"].tolist()))
        assert stored["frames"].shape == (sum(v for v in lengths.values() if v > 0),
                                          probe.FRAME_DIMS)
    assert lengths["clips/broken.wav"] == -1
    assert "../x.wav" not in lengths  # refused by its path: checked anew on every run
    # A 1-s clip at 10-ms hops: ~100 frames, all loud (a steady tone).
    assert all(90 <= lengths[f"clips/male{s}_0.wav"] <= 110 for s in range(SPEAKERS))


def test_test_split_table_and_frames_skipped_without_frame_rows(corpus, tmp_path, capsys):
    probe.main(["--dataset_dir", str(corpus), "--models", "logistic C=0.1", "--test",
                "--cache", str(tmp_path / "stats.npz"),
                "--frames_cache", str(tmp_path / "frames.npz"), "--workers", "1"])
    out = capsys.readouterr().out
    assert not (tmp_path / "frames.npz").exists()  # no frame row: no frame extraction
    assert "scored on test (4 clips, 2 speakers (2 male, 2 female clips))" in out
    rows = _table(out, test=True)
    assert list(rows) == ["logistic C=1", "logistic C=0.1"]
    assert _uar(rows["logistic C=1"][0])[0] == 1.0


def test_missing_column_and_unknown_model_are_named(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,gender,age,split\nclips/a.wav,male,teens,train\n")
    with pytest.raises(SystemExit, match=r"manifest.csv: no column\(s\) \['speaker_id'\]"):
        probe.main(["--dataset_dir", str(tmp_path), "--cache", str(tmp_path / "s.npz")])
    with pytest.raises(SystemExit, match="unknown \\['forest'\\]"):
        probe.main(["--dataset_dir", str(tmp_path), "--models", "forest"])


def test_frames_cache_is_read_back_and_extended(tmp_path, capsys):
    root = tmp_path / "corpus"
    (root / "clips").mkdir(parents=True)
    for k, gender in enumerate(("male", "female")):
        sf.write(root / "clips" / f"{k}.wav", voice(gender, "teens", seed=k, rate=RATE), RATE)
    cache = tmp_path / "frames.npz"
    first = probe.clip_frames(root, ["clips/0.wav", "clips/1.wav"], cache, 1)
    assert [f.shape[1] for f in first] == [probe.FRAME_DIMS] * 2
    for k in range(2):
        (root / "clips" / f"{k}.wav").unlink()  # from now on only the cache knows them
    capsys.readouterr()
    again = probe.clip_frames(root, ["clips/1.wav", "clips/0.wav", "clips/2.wav"], cache, 1)
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[1], first[0])
    assert again[2] is None
    assert "'clips/2.wav': missing file" in capsys.readouterr().err
    sf.write(root / "clips" / "2.wav", voice("male", "teens", seed=2, rate=RATE), RATE)
    last = probe.clip_frames(root, ["clips/2.wav", "clips/0.wav"], cache, 1)
    assert last[0].shape[1] == probe.FRAME_DIMS  # read now that it exists
    np.testing.assert_array_equal(last[1], first[0])  # the cache kept the deleted clip's
    with np.load(cache) as stored:
        assert sorted(stored["cells"].tolist()) == ["clips/0.wav", "clips/1.wav", "clips/2.wav"]


def test_label_cleaning_flags_a_clip_whose_label_contradicts_its_voice():
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(20)], 3)  # 20 speakers x 3 clips
    labels = np.repeat(np.arange(20) % 2, 3)
    statistics = rng.normal(size=(60, 45)) + 3.0 * labels[:, None]  # two far-apart clouds
    labels[7] = 1 - labels[7]  # one clip of speaker s2 (class 0) is labelled 1
    pool = probe.Pool(task="gender", statistics=statistics, labels=labels, speakers=speakers,
                      splits=np.full(60, "train"), frames=None, n_classes=2)
    probability = probe.own_label_probability(pool, np.arange(60))
    assert probability[7] < 0.05
    assert np.delete(probability, 7).min() > 0.5


def test_statistics_cache_reads_a_clip_that_appears_later(tmp_path, capsys):
    import voice_stats_probe

    root = tmp_path / "corpus"
    (root / "clips").mkdir(parents=True)
    sf.write(root / "clips" / "0.wav", voice("female", "teens", seed=0, rate=RATE), RATE)
    cache = tmp_path / "stats.npz"
    first = voice_stats_probe.clip_statistics(root, ["clips/0.wav", "clips/1.wav"], cache, 1)
    assert np.isfinite(first[0]).all() and np.isnan(first[1]).all()
    assert "'clips/1.wav': missing file" in capsys.readouterr().err
    sf.write(root / "clips" / "1.wav", voice("male", "teens", seed=1, rate=RATE), RATE)
    again = voice_stats_probe.clip_statistics(root, ["clips/0.wav", "clips/1.wav"], cache, 1)
    np.testing.assert_array_equal(again[0], first[0])
    assert np.isfinite(again[1]).all()  # refused once by its path, read once it is there
    assert again[1][0] < again[0][0]  # a man's median F0 below a woman's

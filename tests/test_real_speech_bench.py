"""The pure parts of bench/real_speech.py: evidence parsing, speaker folds, bootstrap, clip choice.

No network, no Debian packages: everything runs on fake texts and tiny files in tmp_path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "real_speech.py"
_SPEC = importlib.util.spec_from_file_location("real_speech", _PATH)
real_speech = importlib.util.module_from_spec(_SPEC)
sys.modules["real_speech"] = real_speech
_SPEC.loader.exec_module(real_speech)

FAKE_COPYRIGHT = """Files: *
Copyright: 2003-2010, Jane Doe
Comment: The CREDITS file:
 Recorded by:
 Jane Doe (http://example.org)
"""

FAKE_SCRIPT = """
dialogId("lvl-m-one", "font_small", "I told you.")
dialogStr("Říkala jsem ti to.")

dialogId("lvl-v-two", "font_big", "I thought it was a stone.")
dialogStr("Myslel jsem, že je to kámen.")

dialogId("lvl-v-three", "font_big", "Do it yourself.")
dialogStr("Musíš to zvládnout sama.")

dialogId("lvl-m-four", "font_small", "Glad to see you.")
dialogStr("Jsem ráda, že tě vidím.")
"""


def test_asterisk_voice_gender_reads_the_folder_convention():
    assert real_speech.asterisk_voice_gender("en_US_f_Allison") == "female"
    assert real_speech.asterisk_voice_gender("it_IT_m_Carlo") == "male"
    with pytest.raises(real_speech.EvidenceError, match="Allison"):
        real_speech.asterisk_voice_gender("Allison")


def test_find_quote_gives_line_number_and_text():
    assert real_speech.find_quote(FAKE_COPYRIGHT, r"^\s*Jane Doe \(") == (
        5, "Jane Doe (http://example.org)")
    with pytest.raises(real_speech.EvidenceError):
        real_speech.find_quote(FAKE_COPYRIGHT, "John")


def test_czech_self_references_count_only_first_person_forms():
    small = real_speech.czech_self_references(FAKE_SCRIPT, "m")
    big = real_speech.czech_self_references(FAKE_SCRIPT, "v")
    assert [(line, gender) for line, gender, _ in small] == [(3, "female"), (12, "female")]
    # "zvládnout sama" speaks of the listener, not of the big fish: not counted.
    assert [(line, gender) for line, gender, _ in big] == [(6, "male")]
    assert real_speech.unanimous_gender(small) == "female"
    assert real_speech.unanimous_gender(big) == "male"
    with pytest.raises(real_speech.EvidenceError):
        real_speech.unanimous_gender(small + big)
    with pytest.raises(real_speech.EvidenceError):
        real_speech.unanimous_gender([])


def _speakers(females: int, males: int) -> list[dict]:
    rows = [{"speaker": f"f{i}", "gender": "female", "channel": "8k" if i % 2 else "wb"}
            for i in range(females)]
    return rows + [{"speaker": f"m{i}", "gender": "male", "channel": "8k" if i % 2 else "wb"}
                   for i in range(males)]


@pytest.mark.parametrize(("females", "males", "k"), [(6, 4, 2), (6, 4, 3), (3, 3, 3), (5, 2, 2)])
def test_speaker_folds_are_disjoint_cover_everyone_and_hold_both_genders(females, males, k):
    speakers = _speakers(females, males)
    folds = real_speech.speaker_folds(speakers, k, seed=1)
    assert len(folds) == k
    tested = [name for fold in folds for name in fold]
    assert sorted(tested) == sorted(r["speaker"] for r in speakers)  # each tested exactly once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    gender = {r["speaker"]: r["gender"] for r in speakers}
    for fold in folds:
        assert {gender[n] for n in fold} == {"female", "male"}
    assert folds == real_speech.speaker_folds(speakers, k, seed=1)  # seeded


def test_speaker_folds_rejects_bad_k():
    with pytest.raises(ValueError, match="k=1"):
        real_speech.speaker_folds(_speakers(2, 2), 1, seed=0)
    with pytest.raises(ValueError, match="k=5"):
        real_speech.speaker_folds(_speakers(2, 2), 5, seed=0)


def test_choose_dev_takes_one_per_gender_and_keeps_a_lone_speaker():
    train = _speakers(3, 2)
    dev = real_speech.choose_dev(train, seed=0)
    assert len(dev) == 2 and {d[0] for d in dev} == {"f", "m"}
    assert real_speech.choose_dev(_speakers(2, 1), seed=0)[0].startswith("f")
    assert len(real_speech.choose_dev(_speakers(2, 1), seed=0)) == 1


def test_asterisk_silence_files_are_not_clips():
    voice = Path("usr/share/asterisk/sounds/en_US_f_Allison")
    assert real_speech.is_asterisk_silence(voice / "silence" / "4.wav")
    assert not real_speech.is_asterisk_silence(voice / "digits" / "4.wav")
    assert not real_speech.is_asterisk_silence(voice / "silence-please.wav")


def test_fold_composition_counts_training_voices_by_gender_and_channel():
    table = [{**row, "clips": "60"} for row in _speakers(3, 2)]
    line = real_speech.fold_composition(table, test=["f0", "m0"], dev=["f1"])
    assert line == ("trains on 1 female voices (1 wb; 60 clips) and "
                    "1 male voices (1 8k; 60 clips)")
    assert "0 male voices (none; 0 clips)" in real_speech.fold_composition(
        table, test=["m0"], dev=["m1"])


def test_choose_dev_takes_the_speaker_with_the_fewest_clips():
    train = [{**row, "clips": clips} for row, clips in zip(_speakers(2, 2), (60, 60, 60, 12),
                                                            strict=True)]
    for seed in range(5):  # the 12-clip man whatever the seed; a woman by the seed
        assert "m1" in real_speech.choose_dev(train, seed=seed)
    assert {d for seed in range(10) for d in real_speech.choose_dev(train, seed=seed)
            if d.startswith("f")} == {"f0", "f1"}


def _fake_fold(folder: Path, rows: list[tuple[str, str, str, float, str]]) -> Path:
    """A ``predictions_gender.csv`` as src/test.py writes it: (speaker, true, predicted,
    median F0, pitch baseline's label)."""
    import pandas as pd

    out = folder / "results" / "gender"
    out.mkdir(parents=True)
    pd.DataFrame([{"key": f"k{i}", "speaker_id": s, "true": t, "predicted": p,
                   "median_f0_hz": f0, "pitch_predicted": pp}
                  for i, (s, t, p, f0, pp) in enumerate(rows)]).to_csv(
        out / "predictions_gender.csv", index=False)
    return folder


def test_scoring_per_speaker_and_summary_with_the_products_bootstrap(tmp_path):
    import pandas as pd

    fold0 = _fake_fold(tmp_path / "f0", [("a", "female", "female", 220.0, "female"),
                                         ("a", "female", "male", 150.0, "male"),
                                         ("b", "male", "male", 110.0, "male")])
    fold1 = _fake_fold(tmp_path / "f1", [("c", "male", "female", 180.0, "male"),
                                         ("c", "male", "female", float("nan"), "male")])
    clips = pd.concat([real_speech.fold_predictions(fold0, 0),
                       real_speech.fold_predictions(fold1, 1)], ignore_index=True)
    # The fixed rule: > 165 Hz female, unvoiced (nan) male.
    assert clips["pitch_165"].tolist() == [1, 0, 0, 1, 0]
    speakers = {n: {"gender": g, "channel": "x"} for n, g in
                (("a", "female"), ("b", "male"), ("c", "male"))}
    rows = {r["speaker"]: r for r in real_speech.speaker_rows(clips, speakers)}
    assert rows["a"]["cnn"] == 0.5 and rows["b"]["cnn"] == 1.0 and rows["c"]["cnn"] == 0.0
    assert rows["c"]["pitch_fitted"] == 1.0 and rows["c"]["pitch_165"] == 0.5
    assert rows["a"]["median_f0_hz"] == 185.0 and rows["c"]["median_f0_hz"] == 180.0
    summary = real_speech.summarize(clips, seed=0)
    overall = {s["model"]: s for s in summary if s["fold"] == "all"}
    assert overall["CNN"]["accuracy"] == 2 / 5 and overall["CNN"]["speakers"] == 3
    # UAR: female 1/2, male 1/3.
    assert overall["CNN"]["uar"] == (1 / 2 + 1 / 3) / 2
    low, high = overall["CNN"]["accuracy_ci"]
    assert 0.0 <= low <= 2 / 5 <= high <= 1.0
    text = real_speech.report(list(rows.values()), summary, tmp_path / "out", title="t")
    assert "pitch 165 Hz" in text and (tmp_path / "out" / "report.md").is_file()


def test_choose_clips_filters_durations_and_caps(tmp_path):
    durations = {f"c{i}.wav": d for i, d in enumerate([0.5, 1.2, 3, 14.9, 16, 2, 4, 5])}
    files = [tmp_path / name for name in durations]
    chosen, rate = real_speech.choose_clips(
        files, cap=3, seed=0, seconds=lambda p: (durations[p.name], 8000))
    assert rate == 8000 and len(chosen) == 3
    assert all(1.0 <= durations[p.name] <= 15.0 for p in chosen)
    assert chosen == real_speech.choose_clips(
        files, cap=3, seed=0, seconds=lambda p: (durations[p.name], 8000))[0]


def test_write_fold_sets_splits_with_hard_links(tmp_path):
    dataset = tmp_path / "dataset"
    rows = []
    for speaker, gender in (("a", "female"), ("b", "male"), ("c", "female")):
        path = f"audio/{speaker}/{speaker}__x.wav"
        (dataset / path).parent.mkdir(parents=True)
        (dataset / path).write_bytes(b"RIFF")
        rows.append({"path": path, "gender": gender, "speaker": speaker})
    real_speech.write_csv(dataset / "manifest.csv", real_speech.MANIFEST_COLUMNS, rows)
    folder = real_speech.write_fold(tmp_path, 0, test=["a"], dev=["b"], tag="t")
    manifest = real_speech.read_csv(folder / "manifest.csv")
    assert {r["speaker"]: r["split"] for r in manifest} == {"a": "test", "b": "dev", "c": "train"}
    linked = folder / "audio/a/a__x.wav"
    assert linked.stat().st_ino == (dataset / "audio/a/a__x.wav").stat().st_ino

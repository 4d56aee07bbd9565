"""Tests of the synthetic demo corpus (agegender.demo and src/make_demo_dataset.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from agegender import demo
from agegender.errors import DatasetError, ParameterError
from agegender.labels import AGES, GENDERS

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)"
)

# Smallest corpus the rules allow: 3 speakers per gender x age group, one in each split.
SMALL = demo.DemoParams(num_speakers=36, sentences_per_speaker=1, seed=7)
HEADER = "filename,text,up_votes,down_votes,age,gender,accent,duration,client_id"
CSV_NAMES = [demo.corpus_csv_name(s) for s in demo.SPLITS] + ["speakers.csv", "clips.csv"]


def build(out: Path, params: demo.DemoParams = SMALL, **kwargs) -> demo.DemoSummary:
    return demo.make_demo_dataset(out, params, num_workers=2, progress=False, **kwargs)


def read_csv(path: Path) -> pd.DataFrame:
    # Empty cells must stay "" (not NaN) to compare with the label vocabularies.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def median_f0(audio: np.ndarray, sample_rate: int) -> float:
    """Median F0 (Hz) of a clip, estimated with YIN at 16 kHz."""
    import librosa

    audio16 = librosa.resample(audio, orig_sr=sample_rate, target_sr=16000)
    return float(np.median(librosa.yin(audio16, fmin=60, fmax=400, sr=16000)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, demo.DemoSummary]:
    out = tmp_path_factory.mktemp("demo") / "DemoVoice"
    return out, build(out)


def test_layout_header_and_nesting(corpus):
    out, summary = corpus
    assert sorted(p.name for p in out.iterdir()) == sorted(
        CSV_NAMES + [f"cv-valid-{s}" for s in demo.SPLITS]
    )
    for split in demo.SPLITS:
        csv_path = out / f"cv-valid-{split}.csv"
        assert csv_path.read_text().splitlines()[0] == HEADER
        table = read_csv(csv_path)
        assert len(table) == summary.clips_per_split[split]
        # Numbering restarts in each split and follows the row order.
        assert list(table.filename) == [
            f"cv-valid-{split}/sample-{i:06d}.mp3" for i in range(len(table))
        ]
        assert (table.duration == "").all()
        assert table.up_votes.astype(int).between(0, 20).all()
        assert table.down_votes.astype(int).between(0, 20).all()
        assert set(table.accent) <= {accent for accent, _, _ in demo.ACCENTS}
        audio_dir = out / f"cv-valid-{split}" / f"cv-valid-{split}"
        on_disk = sorted(p.name for p in audio_dir.iterdir())
        assert on_disk == sorted(name.split("/")[1] for name in table.filename)
        # Nothing but the nested folder one level up (no stray temp files either).
        assert [p.name for p in (out / f"cv-valid-{split}").iterdir()] == [f"cv-valid-{split}"]


def test_labels_spelled_right_and_balanced(corpus):
    out, summary = corpus
    for split in demo.SPLITS:
        table = read_csv(out / f"cv-valid-{split}.csv")
        assert set(table.gender) <= set(GENDERS) | {"", "other"}
        assert set(table.age) <= set(AGES) | {"", "other"}
        clean = table[table.gender.isin(GENDERS) & table.age.isin(AGES)]
        counts = clean.groupby(["gender", "age"]).size()
        assert len(counts) == 12, "every gender x age group appears in every split"
        assert counts.nunique() == 1, f"unbalanced {split}: {counts.to_dict()}"
        unlabelled = len(table) - len(clean)
        assert unlabelled == summary.unlabelled_per_split[split] >= 1
        assert unlabelled / len(table) <= 0.1
    assert "fourties" in set(read_csv(out / "cv-valid-train.csv").age)


def test_unlabelled_rows_come_from_extra_speakers(corpus):
    out, _ = corpus
    speakers = read_csv(out / "speakers.csv").set_index("speaker_id")
    clips = read_csv(out / "clips.csv").set_index("filename")
    for split in demo.SPLITS:
        table = read_csv(out / f"cv-valid-{split}.csv")
        who = speakers.loc[clips.loc[table.filename, "speaker_id"]]
        listed = list(zip(table.gender, table.age))
        true = list(zip(who.gender, who.age))
        # Balanced speakers are listed truthfully; extra ones have a hidden label.
        for (lg, la), (tg, ta), sid in zip(listed, true, who.index):
            if sid.startswith("spk"):
                assert (lg, la) == (tg, ta)
            else:
                assert (lg, la) != (tg, ta) and (lg in ("", "other") or la == "")
        balanced_clips = (who.index.str.startswith("spk")).sum()
        assert balanced_clips == 12 * SMALL.group_speakers_per_split[split]


def test_speakers_disjoint_and_clips_traceable(corpus):
    out, _ = corpus
    speakers = read_csv(out / "speakers.csv")
    clips = read_csv(out / "clips.csv")
    assert speakers.speaker_id.is_unique
    assert list(clips.columns) == ["filename", "split", "speaker_id", "sentence"]
    merged = clips.merge(speakers, on="speaker_id", suffixes=("", "_speaker"))
    assert len(merged) == len(clips)
    assert (merged.split == merged.split_speaker).all()
    by_split = {s: set(merged.speaker_id[merged.split == s]) for s in demo.SPLITS}
    assert not by_split["train"] & by_split["dev"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["dev"] & by_split["test"]
    # The corpus text is the spoken sentence in Common Voice's lower-case, unpunctuated form.
    corpus_rows = pd.concat(read_csv(out / f"cv-valid-{s}.csv") for s in demo.SPLITS)
    text = corpus_rows.set_index("filename").text
    assert sorted(text.index) == sorted(clips.filename)
    for row in clips.itertuples():
        assert text[row.filename] == demo.corpus_text(row.sentence)
        assert row.sentence in demo.SENTENCES
    # Every voice parameter is recorded.
    assert {f.name for f in dataclasses.fields(demo.VoiceParams)} <= set(speakers.columns)
    # The corpus tables name each clip's speaker as Common Voice does (client_id).
    assert corpus_rows.set_index("filename").client_id.to_dict() == \
        clips.set_index("filename").speaker_id.to_dict()


def test_raw_reader_takes_the_demo_speakers(corpus):
    """Was: the raw reader found no speaker column, so the demo's test report had none."""
    from agegender.layouts import read_clips

    out, _ = corpus
    read = read_clips(out, "raw").clips
    clips = read_csv(out / "clips.csv")
    truth = {(split, Path(name).stem): speaker
             for split, name, speaker in zip(clips.split, clips.filename, clips.speaker_id)}
    assert len(read) == len(truth)
    assert {(row.split, row.key): row.speaker_id for row in read.itertuples()} == truth


def test_same_seed_gives_identical_files(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    build(again)
    for name in CSV_NAMES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    for mp3 in sorted(out.glob("cv-valid-*/cv-valid-*/*.mp3")):
        assert (again / mp3.relative_to(out)).read_bytes() == mp3.read_bytes(), mp3.name
    other = dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    assert not demo.speakers_table(demo.speaker_voices(other)).equals(
        demo.speakers_table(demo.speaker_voices(SMALL))
    )


def test_audio_is_mono_48k_and_1_to_5_s(corpus):
    import soundfile as sf

    out, _ = corpus
    files = sorted(out.glob("cv-valid-*/cv-valid-*/*.mp3"))
    assert len(files) == SMALL.num_clips
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        assert rate == 48000
        assert audio.ndim == 1, "mono"
        assert 1.0 <= len(audio) / rate <= 5.0, path
        assert 0.05 < np.max(np.abs(audio)) <= 1.0, "audible and not clipped"


def test_voice_carries_gender(corpus):
    import soundfile as sf

    out, _ = corpus
    speakers = read_csv(out / "speakers.csv").set_index("speaker_id")
    clips = read_csv(out / "clips.csv")
    f0 = {"male": {}, "female": {}}
    for row in clips.itertuples():
        audio, rate = sf.read(demo.clip_path(out, row.filename), dtype="float32")
        voice = speakers.loc[row.speaker_id]
        f0[voice.gender].setdefault(voice.age, []).append(median_f0(audio, rate))
    male = np.median([x for values in f0["male"].values() for x in values])
    female = np.median([x for values in f0["female"].values() for x in values])
    assert 95 < male < 140 and 180 < female < 250, (male, female)
    assert female > 1.4 * male
    # Within every age group too, so the age axis cannot stand in for gender.
    for age in AGES:
        assert np.median(f0["female"][age]) > 1.25 * np.median(f0["male"][age]), age


@pytest.mark.parametrize("espeak_voice", sorted({v for _, v, _ in demo.ACCENTS}))
def test_every_espeak_voice_takes_our_variant(espeak_voice):
    # espeak-ng ignores "+variant" after some names (en-gb): the voice would stay male.
    voice = dataclasses.replace(
        demo.speaker_voices(SMALL)[0],
        espeak_voice=espeak_voice,
        pitch_base_hz=200,
        pitch_top_hz=260,
        formant_percent=118,
    )
    audio = demo.synthesize(voice, demo.SENTENCES[0], sample_rate=16000, seed=1)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert median_f0(audio, 16000) > 190


def test_refuses_foreign_folder_and_leaves_it_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    (out / "cv-valid-train.csv").write_text("not ours\n")
    with pytest.raises(DatasetError, match="--overwrite") as err:
        build(out)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["cv-valid-train.csv", "notes.txt"]
    assert (out / "notes.txt").read_text() == "precious"
    assert (out / "cv-valid-train.csv").read_text() == "not ours\n"


def test_overwrite_replaces_only_our_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    summary = build(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "precious"
    assert read_csv(out / "cv-valid-dev.csv").shape[0] == summary.clips_per_split["dev"]


def test_rerun_resumes_and_other_settings_are_refused(corpus, tmp_path):
    out, _ = corpus
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    missing = copy / "cv-valid-test" / "cv-valid-test" / "sample-000002.mp3"
    missing.unlink()
    (copy / "cv-valid-test.csv").unlink()  # as if interrupted before the corpus CSVs
    summary = build(copy)
    assert (summary.synthesized, summary.skipped) == (1, SMALL.num_clips - 1)
    assert missing.read_bytes() == (out / missing.relative_to(copy)).read_bytes()
    assert (copy / "cv-valid-test.csv").read_bytes() == (out / "cv-valid-test.csv").read_bytes()

    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    with pytest.raises(DatasetError, match="other settings"):
        build(copy, dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before


def test_missing_espeak_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match="apt-get install espeak-ng"):
        build(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_speakers": 40}, "num_speakers=40"),
        ({"num_speakers": 24}, "num_speakers=24"),
        ({"num_speakers": 0}, "num_speakers=0"),
        ({"sentences_per_speaker": 0}, "sentences_per_speaker=0"),
        ({"sentences_per_speaker": len(demo.SENTENCES) + 1}, "sentences_per_speaker="),
        ({"seed": -1}, "seed=-1"),
        ({"sample_rate": 44000}, "sample_rate=44000"),
        ({"extra_unlabelled_fraction": 0.9}, "extra_unlabelled_fraction=0.9"),
    ],
)
def test_bad_params_name_the_argument(kwargs, name):
    with pytest.raises(ParameterError, match=re.escape(name)):
        demo.DemoParams(**kwargs)


def test_derived_sizes_of_default_corpus():
    params = demo.DemoParams()
    assert params.group_speakers_per_split == {"train": 8, "dev": 1, "test": 1}
    assert params.balanced_clips_per_split == {"train": 384, "dev": 48, "test": 48}
    extra = sum(params.extra_clips_per_split.values())
    assert 0.03 <= extra / params.num_clips <= 0.07


def load_cli():
    spec = importlib.util.spec_from_file_location("make_demo_dataset", SRC / "make_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reports_bad_argument_in_one_line(tmp_path, capsys):
    cli = load_cli()
    status = cli.main(["--out", str(tmp_path / "x"), "--num_speakers", "13"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "num_speakers=13" in err[0]
    assert not (tmp_path / "x").exists()
    assert cli.main(["--out", str(tmp_path / "x"), "--num_workers", "0"]) == 2
    assert "num_workers=0" in capsys.readouterr().err


def test_cli_resumes_corpus_and_prints_counts(corpus, tmp_path, capsys):
    out, summary = corpus
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cli = load_cli()
    status = cli.main(
        ["--out", str(copy), "--num_speakers", "36", "--sentences_per_speaker", "1",
         "--seed", "7", "--num_workers", "2"]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert str(copy.resolve()) in printed
    for split in demo.SPLITS:
        count = summary.clips_per_split[split]
        assert re.search(rf"cv-valid-{split}\.csv\s+{count} clips", printed)
    assert f"kept {SMALL.num_clips}" in printed

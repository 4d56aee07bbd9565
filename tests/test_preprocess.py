"""Tests of agegender.preprocess and the CLI src/preprocess_dataset.py, end to end on a tiny
raw-layout MP3 corpus holding every kind of bad and awkward clip."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import synth
import tensorflow as tf

import preprocess_dataset
from agegender import preprocess
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import DatasetError, ParameterError
from agegender.features import read_png
from agegender.pipeline import split_folder, split_index
from agegender.tfrecords import INDEX_NAME, feature_spec

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "preprocess_dataset.py"
FEATURES = FeatureParams()
SPLITS = ("train", "dev", "test")
OUTPUT_DIRS = ("Manifest", "Spectrograms", "TFRecord", "Audio")  # Audio: the clean layout (links)

# Clips added to the train split of the template corpus, all labelled female-fifties.
SKIPPED = {  # dropped by the spectrogram stage: key -> start of the reported reason
    "empty": "empty file (0 bytes)",
    "corrupt": "corrupt or not an audio file",
    "text": "corrupt or not an audio file",
    # Issue 9: no voice to analyse; they were kept as one-colour images before.
    "silent": "silent",
    "short10ms": "too short",
}
AWKWARD = ("stereo", "rate8k")  # odd but good: must be kept
DROPPED = {  # dropped by the clean stage: key -> reason
    "missing": "missing file",
}
# Kept with one label (issue 10 changed this: they were dropped): key -> (gender, age) codes.
PARTIAL = {"seventies": (1, -1), "other": (-1, 2)}


def params(**overrides) -> PreprocessParams:
    return PreprocessParams(**{"dataset_type": "raw", "num_workers": 1, "shard_size": 10,
                               **overrides})


def make_problem_corpus(root: Path) -> Path:
    """36 good MP3 clips (12 groups × 3 splits) plus the clips of SKIPPED, AWKWARD, DROPPED."""
    synth.make_raw_corpus(root, per_group={"train": 1, "dev": 1, "test": 1}, fmt="MP3",
                          seconds=0.5)
    audio = root / "cv-valid-train" / "cv-valid-train"
    wave = synth.voice("female", "fifties", seed=77, seconds=0.5)
    synth.write_audio(audio / "stereo.mp3", np.stack([wave, 0.5 * wave[::-1]], axis=1))
    synth.write_audio(audio / "rate8k.mp3",
                      synth.voice("female", "fifties", seed=78, seconds=0.5, rate=8000), 8000)
    synth.write_audio(audio / "silent.mp3", np.zeros(8000, np.float32))
    synth.write_audio(audio / "short10ms.mp3", wave[:160])
    (audio / "empty.mp3").write_bytes(b"")
    (audio / "corrupt.mp3").write_bytes(np.random.default_rng(5).bytes(4000))
    (audio / "text.mp3").write_text("this is a text file, not an MP3\n" * 20)
    synth.write_audio(audio / "seventies.mp3", wave)
    synth.write_audio(audio / "other.mp3", wave)
    rows = [synth.v1_row(f"cv-valid-train/{key}.mp3", age="fifties", gender="female")
            for key in (*SKIPPED, *AWKWARD, "missing")]
    rows.append(synth.v1_row("cv-valid-train/seventies.mp3", age="seventies", gender="female"))
    rows.append(synth.v1_row("cv-valid-train/other.mp3", age="thirties", gender="other"))
    synth.append_csv(root / "cv-valid-train.csv", rows)
    return root


def digests(root: Path, *, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` outside the ``exclude`` folders."""
    out = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in exclude or not path.is_file():
            continue
        out[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def file_ids(root: Path, pattern: str) -> dict[str, tuple[int, int]]:
    """{relative path: (inode, mtime_ns)} of the files matching ``pattern`` under ``root``."""
    return {path.relative_to(root).as_posix(): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in sorted(root.rglob(pattern)) if path.is_file()}


def stored(root: Path) -> dict[str, dict[str, dict]]:
    """{split: {key: parsed example}} of every shard listed in the split indexes."""
    out = {}
    for split in SPLITS:
        folder = split_folder(root, split)
        index = json.loads((folder / INDEX_NAME).read_text())
        records = tf.data.TFRecordDataset([str(folder / name) for name in index["shards"]])
        examples = {}
        for record in records:
            parsed = {k: v.numpy() for k, v in
                      tf.io.parse_single_example(record, feature_spec()).items()}
            examples[parsed["clip/key"].decode()] = parsed
        out[split] = examples
    return out


def copy_corpus(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The untouched corpus; tests copy it before writing into it."""
    return make_problem_corpus(tmp_path_factory.mktemp("template") / "corpus")


@pytest.fixture(scope="module")
def processed(template: Path, tmp_path_factory) -> dict:
    """The template copied and preprocessed once with every stage."""
    base = tmp_path_factory.mktemp("processed")
    root = copy_corpus(template, base / "corpus")
    before = digests(root)
    summary = preprocess.preprocess(root, params=params(), features=FEATURES,
                                    results_dir=base / "results")
    return {"root": root, "results": preprocess.report_dir(base / "results", root),
            "summary": summary, "before": before}


@pytest.fixture
def corpus(template: Path, tmp_path: Path) -> Path:
    """A fresh, unprocessed copy of the template."""
    return copy_corpus(template, tmp_path / "corpus")


@pytest.fixture
def processed_copy(processed: dict, tmp_path: Path) -> Path:
    """A copy of the preprocessed corpus a test may run preprocessing on again."""
    return copy_corpus(processed["root"], tmp_path / "corpus")


# -- one full run -----------------------------------------------------------------------------

def test_summary_counts(processed: dict) -> None:
    summary = processed["summary"]
    assert summary["kept"] == 36 + len(SKIPPED) + len(AWKWARD) + len(PARTIAL)
    assert summary["dropped"] == len(DROPPED)
    assert summary["dropped_by_reason"] == {"missing file": 1}
    assert summary["missing_labels"] == {"gender": 1, "age": 1}
    assert summary["bad_clips"] == len(SKIPPED)
    train = 12 + len(AWKWARD) + len(PARTIAL)
    assert summary["examples"] == {"train": train, "dev": 12, "test": 12}
    assert summary["labelled"]["train"] == {"gender": train - 1, "age": train - 1,
                                            "gender_age": train - 2}
    assert summary["labelled"]["dev"] == {"gender": 12, "age": 12, "gender_age": 12}


def test_bad_clips_are_listed_in_the_report_with_their_reason(processed: dict) -> None:
    report = pd.read_csv(processed["results"] / "preprocess_report.csv", dtype=str,
                         keep_default_na=False)
    assert list(report.columns) == ["stage", "split", "key", "path", "reason"]
    assert len(report) == len(SKIPPED) + len(DROPPED)
    assert (report["split"] == "train").all()
    rows = report.set_index("key")
    for key, reason in SKIPPED.items():
        assert rows.loc[key, "stage"] == "spectrograms"
        assert rows.loc[key, "reason"].startswith(reason), rows.loc[key, "reason"]
        assert rows.loc[key, "path"] == f"cv-valid-train/cv-valid-train/{key}.mp3"
    for key, reason in DROPPED.items():
        assert rows.loc[key, "stage"] == "clean"
        assert rows.loc[key, "reason"] == reason


def test_good_clips_are_in_the_shards_and_bad_ones_are_not(processed: dict) -> None:
    root = processed["root"]
    examples = stored(root)
    for split in SPLITS:
        manifest = preprocess.read_clean_manifest(root, split)
        expected = set(manifest["key"]) - set(SKIPPED)
        assert set(examples[split]) == expected
        for key, example in examples[split].items():
            row = manifest.set_index("key").loc[key]
            assert example["label/gender_age"] == row["gender_age_code"]
            png = preprocess.png_path(root, split, key).read_bytes()
            assert example["image/png"] == png
            assert read_png(png).shape == (64, 64, 3)
    assert set(AWKWARD) <= set(examples["train"])
    assert not set(SKIPPED) & set(examples["train"])
    assert not set(DROPPED) & {key for split in SPLITS for key in examples[split]}
    for key in SKIPPED:
        assert not preprocess.png_path(root, "train", key).exists()
    for key, (gender, age) in PARTIAL.items():
        example = examples["train"][key]
        assert (example["label/gender"], example["label/age"]) == (gender, age)
        assert example["label/gender_age"] == -1
    female_fifties = [e for e in examples["train"].values() if e["label/gender_age"] == 4]
    assert len(female_fifties) == 1 + len(AWKWARD)


def test_dataset_summary_before_and_after(processed: dict) -> None:
    results = processed["results"]
    counts = pd.read_csv(results / "dataset_summary.csv", keep_default_na=False)
    assert list(counts.columns) == ["split", "group", "before", "after"]
    train = counts[counts["split"] == "train"].set_index("group")
    # 1 regular + 3 skipped + 4 awkward + 1 missing are female-fifties before cleaning.
    assert train.loc["female-fifties", "before"] == 9
    assert train.loc["female-fifties", "after"] == 8
    assert train.loc["female-seventies", "before"] == 1
    # Changed with issue 10: both are kept for the task whose label they have.
    assert train.loc["female-seventies", "after"] == 1
    assert train.loc["other-thirties", "after"] == 1
    assert train.loc["male-teens", "before"] == train.loc["male-teens", "after"] == 1
    dev = counts[counts["split"] == "dev"]
    assert (dev["before"] == 1).all() and (dev["after"] == 1).all() and len(dev) == 12
    png = (results / "dataset_summary.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_source_tree_is_byte_identical_afterwards(processed: dict) -> None:
    root = processed["root"]
    before = processed["before"]
    assert len(before) == 3 + 36 + 9  # 3 CSVs, 36 clips, 9 extra train files
    after = digests(root, exclude=OUTPUT_DIRS)
    assert after == before  # nothing changed, moved, deleted or added in the source
    outputs = {Path(path).parts[0] for path in digests(root)} - {Path(p).parts[0] for p in before}
    assert outputs == set(OUTPUT_DIRS)


def test_manifests_list_the_clean_clips(processed: dict) -> None:
    manifest = preprocess.read_clean_manifest(processed["root"], "train")
    assert list(manifest.columns) == ["key", "audio_path", "speaker_id", "gender", "age",
                                      "gender_code", "age_code", "gender_age_code"]
    assert len(manifest) == 12 + len(SKIPPED) + len(AWKWARD) + len(PARTIAL)
    partial = manifest.set_index("key").loc[list(PARTIAL)]
    assert partial["gender"].tolist() == ["female", ""]
    assert partial["age"].tolist() == ["", "thirties"]
    assert (manifest["audio_path"].str.startswith("cv-valid-train/cv-valid-train/")).all()


# -- re-runs ----------------------------------------------------------------------------------

def test_second_run_redoes_nothing(processed_copy: Path, tmp_path: Path) -> None:
    pngs = file_ids(processed_copy, "*.png")
    shards = file_ids(processed_copy / "TFRecord", "*")
    assert len(pngs) == 36 + len(AWKWARD) + len(PARTIAL) and len(shards) == 3 + 2 + 2 + 2
    summary = preprocess.preprocess(processed_copy, params=params(), features=FEATURES,
                                    results_dir=tmp_path / "results")
    assert file_ids(processed_copy, "*.png") == pngs
    assert file_ids(processed_copy / "TFRecord", "*") == shards
    assert summary["examples"] == {"train": 12 + len(AWKWARD) + len(PARTIAL), "dev": 12,
                                   "test": 12}
    report = pd.read_csv(summary["report"])
    assert set(report["key"]) == set(SKIPPED) | set(DROPPED)


def test_overwrite_redoes_everything_identically(processed_copy: Path, tmp_path: Path) -> None:
    pngs = file_ids(processed_copy, "*.png")
    shards = file_ids(processed_copy / "TFRecord", "*.tfrecord")
    contents = digests(processed_copy, exclude=("cv-valid-train", "cv-valid-dev",
                                                "cv-valid-test"))
    preprocess.preprocess(processed_copy, params=params(overwrite=True), features=FEATURES,
                          results_dir=tmp_path / "results")
    new_pngs = file_ids(processed_copy, "*.png")
    new_shards = file_ids(processed_copy / "TFRecord", "*.tfrecord")
    assert new_pngs.keys() == pngs.keys() and new_shards.keys() == shards.keys()
    assert all(new_pngs[p][0] != pngs[p][0] for p in pngs)
    assert all(new_shards[p][0] != shards[p][0] for p in shards)
    assert digests(processed_copy, exclude=("cv-valid-train", "cv-valid-dev",
                                            "cv-valid-test")) == contents


def test_stages_one_at_a_time_give_the_same_result(processed: dict, corpus: Path,
                                                   tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = preprocess.preprocess(corpus, params=params(), features=FEATURES,
                                  results_dir=results, stages=("clean",))
    assert first["kept"] == 45 and "examples" not in first
    assert not (corpus / "Spectrograms").exists()
    preprocess.preprocess(corpus, params=params(), features=FEATURES, results_dir=results,
                          stages=("spectrograms",))
    assert not (corpus / "TFRecord").exists()
    last = preprocess.preprocess(corpus, params=params(), features=FEATURES,
                                 results_dir=results, stages=("tfrecords",))
    assert last["examples"] == processed["summary"]["examples"]
    assert digests(corpus) == digests(processed["root"])


def test_staged_runs_keep_the_report_of_earlier_stages(corpus: Path, tmp_path: Path) -> None:
    """After clean, spectrograms and tfrecords run one at a time, the report still lists the
    clips every stage left out, as a single full run's does."""
    results = tmp_path / "results"
    for stage in preprocess.STAGES:
        preprocess.preprocess(corpus, params=params(), features=FEATURES, results_dir=results,
                              stages=(stage,))
    report = pd.read_csv(preprocess.report_dir(results, corpus) / "preprocess_report.csv")
    assert set(report["key"]) == set(SKIPPED) | set(DROPPED)


def test_unknown_stage_is_a_parameter_error(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="'shuffle'"):
        preprocess.preprocess(corpus, params=params(), features=FEATURES,
                              results_dir=tmp_path / "results", stages=("shuffle",))


def test_spectrograms_before_clean_is_a_dataset_error(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--stage=clean"):
        preprocess.preprocess(corpus, params=params(), features=FEATURES,
                              results_dir=tmp_path / "results", stages=("spectrograms",))


def test_changed_features_need_overwrite(processed_copy: Path, tmp_path: Path) -> None:
    pngs = file_ids(processed_copy, "*.png")
    mel = FeatureParams(feature_type="mel")
    with pytest.raises(ParameterError, match="feature_type") as raised:
        preprocess.preprocess(processed_copy, params=params(), features=mel,
                              results_dir=tmp_path / "results")
    assert "--overwrite" in str(raised.value)
    assert file_ids(processed_copy, "*.png") == pngs
    preprocess.preprocess(processed_copy, params=params(overwrite=True), features=mel,
                          results_dir=tmp_path / "results")
    record = json.loads((processed_copy / "Spectrograms" / "features.json").read_text())
    assert record["feature_type"] == "mel"
    assert split_index(processed_copy, "dev")["features"]["feature_type"] == "mel"


def test_tfrecords_stage_refuses_settings_unlike_the_pngs(processed_copy: Path,
                                                          tmp_path: Path) -> None:
    """PNGs made at 64 px must not be sharded under an index that claims 32 px."""
    with pytest.raises(ParameterError, match="image_size"):
        preprocess.preprocess(processed_copy, params=params(),
                              features=FeatureParams(image_size=32),
                              results_dir=tmp_path / "results", stages=("tfrecords",))


def test_relabelled_clip_is_rewritten_in_the_shards(processed_copy: Path,
                                                    tmp_path: Path) -> None:
    """A re-run after a label fix in the CSV must not keep the old label in the shards."""
    table_path = processed_copy / "cv-valid-dev.csv"
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    assert table.loc[0, "gender"] == "male"
    table.loc[0, "gender"] = "female"
    table.to_csv(table_path, index=False)
    preprocess.preprocess(processed_copy, params=params(), features=FEATURES,
                          results_dir=tmp_path / "results")
    key = Path(table.loc[0, "filename"]).stem
    manifest = preprocess.read_clean_manifest(processed_copy, "dev").set_index("key")
    assert manifest.loc[key, "gender_code"] == 1
    assert stored(processed_copy)["dev"][key]["label/gender"] == 1


def test_two_workers_give_the_same_pngs(processed: dict, corpus: Path, tmp_path: Path) -> None:
    summary = preprocess.preprocess(corpus, params=params(num_workers=2), features=FEATURES,
                                    results_dir=tmp_path / "results")
    assert summary["bad_clips"] == len(SKIPPED)
    assert digests(corpus / "Spectrograms") == digests(processed["root"] / "Spectrograms")
    report = pd.read_csv(summary["report"])
    assert set(report.loc[report["stage"] == "spectrograms", "key"]) == set(SKIPPED)


def test_rows_outside_the_dataset_are_never_opened(tmp_path: Path, monkeypatch) -> None:
    root = synth.make_raw_corpus(tmp_path / "dataset",
                                 per_group={"train": 1, "dev": 1, "test": 1}, seconds=0.3)
    outside = tmp_path / "outside"
    secret = synth.write_audio(outside / "secret.wav", synth.tone(500.0, seconds=0.3))
    synth.write_audio(tmp_path / "x.mp3", synth.tone(500.0, seconds=0.3))
    os.symlink(secret, root / "cv-valid-train" / "cv-valid-train" / "link.wav")
    escapes = ["../../etc/passwd", "/etc/passwd", "cv-valid-train/../../x.mp3",
               "cv-valid-train/link.wav"]
    synth.append_csv(root / "cv-valid-train.csv",
                     [synth.v1_row(cell, age="twenties", gender="male") for cell in escapes])
    opened: list[str] = []
    real_soundfile = soundfile.SoundFile

    def recording(file, *args, **kwargs):
        opened.append(os.path.realpath(file))
        return real_soundfile(file, *args, **kwargs)

    monkeypatch.setattr(soundfile, "SoundFile", recording)
    summary = preprocess.preprocess(root, params=params(), features=FEATURES,
                                    results_dir=tmp_path / "results")
    assert len(opened) == 36
    root_real = os.path.realpath(root)
    assert all(path.startswith(root_real + os.sep) for path in opened)
    assert summary["dropped_by_reason"] == {"path outside dataset": 4}
    report = pd.read_csv(summary["report"])
    assert report["reason"].str.startswith("path outside dataset").sum() == 4
    assert "link" not in set(stored(root)["train"])


# -- the command line -------------------------------------------------------------------------

def _cli_args(root: Path, results: Path, *more: str) -> list[str]:
    return [f"--dataset_dir={root}", "--dataset_type=raw", "--num_workers=1",
            "--shard_size=10", f"--results_dir={results}", *more]


def test_cli_main_runs_and_overwrites(corpus: Path, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert preprocess_dataset.main(_cli_args(corpus, results, "--overwrite=False")) == 0
    out = capsys.readouterr().out
    assert "preprocessing done" in out and f"bad_clips: {len(SKIPPED)}" in out
    assert split_index(corpus, "train")["num_examples"] == 12 + len(AWKWARD) + len(PARTIAL)
    pngs = file_ids(corpus, "*.png")
    # The same flags again (dataset dir as a separate argument) redo nothing ...
    assert preprocess_dataset.main(["--dataset_dir", str(corpus), *_cli_args(corpus, results)[1:]
                                    ]) == 0
    assert file_ids(corpus, "*.png") == pngs
    # ... --overwrite redoes every PNG.
    assert preprocess_dataset.main(_cli_args(corpus, results, "--overwrite")) == 0
    assert all(file_ids(corpus, "*.png")[p][0] != pngs[p][0] for p in pngs)


@pytest.mark.parametrize("flag, value", [([], False), (["--overwrite"], True),
                                         (["--overwrite=True"], True),
                                         (["--overwrite=False"], False),
                                         (["--overwrite=false"], False),
                                         (["--overwrite", "True"], True)])
def test_cli_overwrite_flag_spellings(flag: list[str], value: bool) -> None:
    args = preprocess_dataset.parse_args(["--dataset_dir=d", *flag])
    assert args.overwrite is value


def test_cli_bad_bool_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        preprocess_dataset.parse_args(["--dataset_dir=d", "--overwrite=maybe"])
    assert raised.value.code == 2
    assert "'maybe'" in capsys.readouterr().err


def test_cli_unknown_dataset_type(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        preprocess_dataset.main([f"--dataset_dir={tmp_path}", "--dataset_type=kaggle"])
    assert raised.value.code != 0
    err = capsys.readouterr().err
    assert "--dataset_type" in err and "'kaggle'" in err and "raw" in err


def _drop_column(root: Path, column: str) -> Path:
    table_path = root / "cv-valid-dev.csv"
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    table.drop(columns=[column]).to_csv(table_path, index=False)
    return table_path


def test_cli_missing_column_is_one_error_line(corpus: Path, tmp_path: Path, capsys) -> None:
    table_path = _drop_column(corpus, "gender")
    status = preprocess_dataset.main(_cli_args(corpus, tmp_path / "results"))
    assert status == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert str(table_path) in lines[0] and "'gender'" in lines[0]


# Lines TensorFlow's C++ runtime prints while it is imported, whatever TF_CPP_MIN_LOG_LEVEL.
_NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|"
                         r"[IWE]\d{4} |To enable the following instructions)")


def _run_script(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_script_runs_with_shell_quoted_arguments(template: Path, tmp_path: Path) -> None:
    root = copy_corpus(template, tmp_path / "my corpus")  # a space, so quoting matters
    command = (f"{sys.executable} '{SCRIPT}' --dataset_dir='{root}/' --dataset_type='raw' "
               f"--num_workers=2 --shard_size 10 --results_dir='{tmp_path}/my results' "
               f"--overwrite=False")
    done = _run_script(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "preprocessing done" in done.stdout
    assert "Traceback" not in done.stderr
    assert split_index(root, "train")["num_examples"] == 12 + len(AWKWARD) + len(PARTIAL)
    assert (tmp_path / "my results" / "my corpus" / "preprocess_report.csv").is_file()


def test_script_missing_column_exits_2_with_one_error_line(template: Path,
                                                           tmp_path: Path) -> None:
    root = copy_corpus(template, tmp_path / "corpus")
    table_path = _drop_column(root, "age")
    done = _run_script(f"{sys.executable} {SCRIPT} --dataset_dir {root} --dataset_type raw "
                       f"--results_dir {tmp_path / 'results'}", tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line and not _NATIVE_LOG.match(line)]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert str(table_path) in lines[0] and "'age'" in lines[0]
    assert not (root / "Manifest").exists()


# -- issue 10: manifests, tiny splits, symlinks, test-only folders ----------------------------

def test_manifest_layout_end_to_end_with_tiny_split_warnings(tmp_path: Path, caplog,
                                                             capsys) -> None:
    """A manifest with years, speakers, one gender-only speaker and empty split cells:
    shards count labelled examples per task, and tiny dev/test splits are said loudly."""
    root = tmp_path / "mine"
    rows = []
    for speaker in range(10):
        gender = synth.GENDERS[speaker % 2]
        age = "" if speaker == 9 else str(15 + 5 * speaker)
        for clip in range(2):
            path = f"spk{speaker}/clip{clip}.wav"
            synth.write_audio(root / path, synth.voice(gender, "twenties", seed=speaker * 2 + clip,
                                                       seconds=0.2))
            rows.append([path, gender, age, f"spk{speaker}"])
    pd.DataFrame(rows, columns=["path", "gender", "age", "speaker_id"]).to_csv(
        root / "manifest.csv", index=False)
    before = digests(root)
    status = preprocess_dataset.main([f"--dataset_dir={root}", "--dataset_type=manifest",
                                      "--num_workers=1", "--shard_size=10",
                                      "--image_size=32", f"--results_dir={tmp_path / 'r'}"])
    assert status == 0
    out = capsys.readouterr().out
    assert digests(root, exclude=OUTPUT_DIRS) == before
    counts = {split: split_index(root, split)["task_counts"] for split in SPLITS}
    assert sum(c["gender"]["examples"] for c in counts.values()) == 20
    assert sum(c["age"]["examples"] for c in counts.values()) == 18
    speakers = {split: counts[split]["gender"]["speakers"] for split in SPLITS}
    # 10 % of 10 speakers is 1, grown to 2 so that dev and test each hold both genders.
    assert speakers == {"train": 6, "dev": 2, "test": 2}
    index = split_index(root, "test")
    assert index["tasks"] == [task for task in ("gender", "age", "gender_age")
                              if index["task_counts"][task]["examples"]]
    # One WARNING log line per tiny split/task, and the same lines in the printed summary.
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"
              and "tiny" in r.getMessage()]
    tiny_dev = "dev/gender: 4 examples; tiny: classes with < 5 clips: male 2, female 2"
    assert any(line.endswith(tiny_dev) for line in warned), warned
    assert any("test/gender" in line for line in warned)
    assert f"WARNING: {tiny_dev}" in out, out


def test_missing_labels_are_in_the_shards_as_minus_one(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path / "c", per_group={"dev": 1}, seconds=0.2)
    table = pd.read_csv(root / "cv-valid-dev.csv", dtype=str, keep_default_na=False)
    table.loc[:5, "age"] = ""  # six gender-only rows
    table.to_csv(root / "cv-valid-dev.csv", index=False)
    summary = preprocess.preprocess(root, params=params(), features=FeatureParams(image_size=32),
                                    results_dir=tmp_path / "results")
    assert summary["dropped"] == 0 and summary["labelled"]["dev"] == {
        "gender": 12, "age": 6, "gender_age": 6}
    assert summary["examples"] == {"train": 0, "dev": 12, "test": 0}
    # The missing tables and the empty splits are warnings, not errors.
    assert any("cv-valid-train.csv" in line for line in summary["warnings"])
    assert "train: empty (no labelled examples for any task)" in summary["warnings"]
    examples = stored(root)["dev"]
    assert sorted(int(e["label/age"]) for e in examples.values()).count(-1) == 6
    counts = split_index(root, "dev")["task_counts"]["age"]
    assert counts["examples"] == 6 and sum(counts["classes"].values()) == 6


def test_test_only_folder_preprocesses_and_evaluates(trained_gender, tmp_path: Path,
                                                     capsys) -> None:
    import test as test_cli  # noqa: PLC0415

    from conftest import TINY_IMAGE  # noqa: PLC0415

    root = synth.make_raw_corpus(tmp_path / "only_test", per_group={"test": 1}, seconds=0.3)
    assert not (root / "cv-valid-train.csv").exists()
    status = preprocess_dataset.main([f"--dataset_dir={root}", "--dataset_type=raw",
                                      "--num_workers=1", f"--image_size={TINY_IMAGE}",
                                      f"--results_dir={tmp_path / 'r'}"])
    assert status == 0
    out = capsys.readouterr().out
    assert "cv-valid-train.csv: not found" in out and "cv-valid-dev.csv: not found" in out
    status = test_cli.main([f"--dataset_dir={root}", f"--model_path={trained_gender['keras']}",
                            f"--results_dir={tmp_path / 'eval'}"])
    assert status == 0
    table = pd.read_csv(tmp_path / "eval" / "gender" / "best_model_gender" /
                        "predictions_gender.csv")
    assert len(table) == 12


def test_follow_symlinks_flag(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path / "dataset", per_group={"test": 1}, seconds=0.3)
    secret = synth.write_audio(tmp_path / "store" / "linked.wav",
                               synth.voice("male", "teens", seed=5, seconds=0.3))
    os.symlink(secret, root / "cv-valid-test" / "cv-valid-test" / "linked.wav")
    synth.append_csv(root / "cv-valid-test.csv", [
        synth.v1_row("cv-valid-test/linked.wav", age="teens", gender="male"),
        synth.v1_row("cv-valid-test/../../store/linked.wav", age="teens", gender="male")])
    refused = preprocess.preprocess(root, params=params(), features=FEATURES,
                                    results_dir=tmp_path / "r1", stages=("clean",))
    assert refused["kept"] == 12 and refused["dropped"] == 2
    report = pd.read_csv(refused["report"])
    assert report["reason"].str.contains("--follow_symlinks").sum() == 1
    args = preprocess_dataset.parse_args(["--dataset_dir=d", "--follow_symlinks"])
    assert args.follow_symlinks is True
    accepted = preprocess.preprocess(root, params=params(follow_symlinks=True),
                                     features=FEATURES, results_dir=tmp_path / "r2")
    assert accepted["kept"] == 13 and accepted["dropped_by_reason"] == {
        "path outside dataset": 1}
    assert "linked" in stored(root)["test"]


def test_each_dataset_keeps_its_own_reports(tmp_path: Path) -> None:
    """Was: preprocessing a second dataset replaced the first one's summary and report."""
    results = tmp_path / "results"
    for name, groups in (("first", {"train": 1, "dev": 1, "test": 1}),
                         ("second", {"train": 2, "dev": 1, "test": 1})):
        root = synth.make_raw_corpus(tmp_path / name, per_group=groups, seconds=0.3)
        summary = preprocess.preprocess(root, params=params(), features=FEATURES,
                                        results_dir=results, stages=("clean",))
        assert summary["report"] == str(results / name / "preprocess_report.csv")
    for name, train_clips in (("first", 12), ("second", 24)):
        counts = pd.read_csv(results / name / "dataset_summary.csv", keep_default_na=False)
        assert counts.loc[counts["split"] == "train", "after"].sum() == train_clips, name
        assert (results / name / "dataset_summary.png").is_file()
        assert (results / name / "preprocess_report.csv").is_file()
    assert preprocess.report_dir("results", "data/CommonVoice/") == Path("results/CommonVoice")


# -- issue 21 item 8: kept shards and unrecognised labels are said ---------------------------

def test_new_shard_size_on_finished_shards_says_they_are_kept(tmp_path: Path, capsys) -> None:
    root = synth.make_raw_corpus(tmp_path / "c", per_group={"test": 1}, seconds=0.2)
    common = [f"--dataset_dir={root}", "--dataset_type=raw", "--num_workers=1",
              "--image_size=32", f"--results_dir={tmp_path / 'r'}"]
    assert preprocess_dataset.main([*common, "--shard_size=10"]) == 0
    capsys.readouterr()
    assert preprocess_dataset.main([*common, "--shard_size=5"]) == 0
    out = capsys.readouterr().out
    assert ("WARNING: test: existing shards kept (2 shard(s) of up to 10 examples); "
            "--shard_size=5 would make 3: add --overwrite to re-shard") in out, out
    assert split_index(root, "test")["shard_counts"] == [10, 2]
    assert preprocess_dataset.main([*common, "--shard_size=5", "--overwrite"]) == 0
    assert "existing shards kept" not in capsys.readouterr().out
    assert split_index(root, "test")["shard_counts"] == [5, 5, 2]


def test_unrecognised_label_values_are_named_with_the_accepted_spellings(tmp_path: Path,
                                                                         capsys) -> None:
    root = synth.make_raw_corpus(tmp_path / "c", per_group={"test": 1}, seconds=0.2)
    table = pd.read_csv(root / "cv-valid-test.csv", dtype=str, keep_default_na=False)
    table["gender"] = ["F", "M"] * 5 + ["F", "x"]
    table.loc[0, "age"] = "old"
    table.to_csv(root / "cv-valid-test.csv", index=False)
    assert preprocess_dataset.main([f"--dataset_dir={root}", "--dataset_type=raw",
                                    "--stage=clean", f"--results_dir={tmp_path / 'r'}"]) == 0
    out = capsys.readouterr().out
    assert ("WARNING: gender: 12 cells not recognised: 'F' 6, 'M' 5, 'x' 1 (accepted: male, "
            "female, male_masculine, female_feminine; an empty cell is no label)") in out, out
    assert ("WARNING: age: 1 cells not recognised: 'old' 1 (accepted: teens, twenties, "
            "thirties, fourties, fifties, sixties, or years 13-69") in out

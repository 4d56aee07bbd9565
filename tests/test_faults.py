"""Issue 9: every fault ends in one clear line, never a traceback or a silent wrong answer.

One test per case of the issue, each reproducing the original failure on small data made in
``tmp_path``; the user's data is never altered and no crafted model file runs code.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import synth

import inference as inference_cli
import preprocess_dataset
import test as test_cli
import train as train_cli
from agegender import atomic, preprocess, tfrecords
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import (AudioError, DatasetError, ModelError, ParameterError)
from agegender.features import load_clip

IMAGE = 32
FEATURES = FeatureParams(image_size=IMAGE)
LONG_NAME = "v" * 241 + ".wav"  # 245 characters: fits a file name, not with ".tmp-<hex>-"


def params(**overrides) -> PreprocessParams:
    return PreprocessParams(**{"dataset_type": "raw", "num_workers": 1, "shard_size": 5,
                               **overrides})


def run_preprocess(root: Path, results: Path, **overrides) -> dict:
    return preprocess.preprocess(root, params=params(**overrides), features=FEATURES,
                                 results_dir=results)


def tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): atomic.sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def add_train_clips(root: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    """Adds clips (name -> (wave, rate)) labelled female-fifties to the train split."""
    audio = root / "cv-valid-train" / "cv-valid-train"
    for name, (wave, rate) in clips.items():
        sf.write(audio / name, wave, rate, subtype="FLOAT" if name.endswith(".wav") else None)
    synth.append_csv(root / "cv-valid-train.csv",
                     [synth.v1_row(f"cv-valid-train/{name}", age="fifties", gender="female")
                      for name in clips])


@pytest.fixture(scope="module")
def raw_template(tmp_path_factory) -> Path:
    """36 good 0.3-s WAV clips in the raw layout (12 per split)."""
    return synth.make_raw_corpus(tmp_path_factory.mktemp("faults") / "corpus",
                                 per_group={"train": 1, "dev": 1, "test": 1}, seconds=0.3)


@pytest.fixture
def raw(raw_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(raw_template, tmp_path / "corpus"))


@pytest.fixture(scope="module")
def shards_template(raw_template: Path, tmp_path_factory) -> Path:
    """``raw_template`` preprocessed at 32 px, 5 examples a shard."""
    root = Path(shutil.copytree(raw_template, tmp_path_factory.mktemp("shards") / "corpus"))
    run_preprocess(root, root.parent / "results")
    return root


@pytest.fixture
def shards(shards_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shards_template, tmp_path / "corpus", symlinks=True))


@pytest.fixture(scope="module")
def gender_model(tmp_path_factory) -> Path:
    """An untrained gender model for 32-px spectrogram images, saved as .keras + .h5."""
    from agegender.checkpoints import save_model_files
    from agegender.model import build_model
    from agegender.config import ModelParams

    out = tmp_path_factory.mktemp("model")
    model = build_model(ModelParams(image_size=IMAGE, num_classes=2, task="gender",
                                    class_names=("male", "female")),
                        features=dataclasses.asdict(FEATURES))
    save_model_files(model, out / "m.keras", out / "m.h5")
    return out / "m.keras"


def copy_model(model: Path, tmp_path: Path, suffix: str = ".keras") -> Path:
    source = model.with_suffix(suffix)
    target = tmp_path / source.name
    shutil.copy(source, target)
    if atomic.checksum_path(source).is_file():
        shutil.copy(atomic.checksum_path(source), atomic.checksum_path(target))
    return target


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- preprocessing ----------------------------------------------------------------------------

def test_temp_names_always_fit_the_name_limit() -> None:
    for name in (LONG_NAME, "x" * 255, "é" * 127 + ".png", "a." + "b" * 250):
        for keep in (True, False):
            tmp = atomic.temp_name(name, keep_suffix=keep)
            assert len(tmp.encode("utf-8")) <= 255 and tmp.startswith(".tmp-")
    assert atomic.temp_name("m.keras").endswith("-m.keras")
    assert atomic.temp_name("spec_data_000.tfrecord", keep_suffix=False).endswith(
        "spec_data_000.tfrecord.partial")


def test_clip_with_a_245_character_name_is_preprocessed(raw: Path, tmp_path: Path) -> None:
    """Was: OSError [Errno 36] File name too long killed the run, no report written."""
    add_train_clips(raw, {LONG_NAME: (synth.voice("female", "fifties", seed=9, seconds=0.3),
                                      16_000)})
    summary = run_preprocess(raw, tmp_path / "results")
    assert summary["bad_clips"] == 0 and summary["examples"]["train"] == 13
    assert Path(summary["report"]).is_file()
    pngs = list((raw / "Spectrograms" / "cv-valid-train").glob("v*.png"))
    assert len(pngs) == 1 and len(pngs[0].name.encode()) <= 240


def test_a_clip_whose_output_cannot_be_written_is_skipped_and_reported(
        raw: Path, tmp_path: Path, monkeypatch) -> None:
    """Any per-clip OSError is a skipped, counted, reported clip, never the end of the run."""
    real = atomic.write_bytes

    def failing(path, data):
        if "sample-000003" in str(path):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))
        return real(path, data)

    monkeypatch.setattr(preprocess.atomic, "write_bytes", failing)
    summary = run_preprocess(raw, tmp_path / "results")
    report = pd.read_csv(summary["report"])
    assert summary["bad_clips"] == 3  # sample-000003 of each split
    assert set(report["key"]) == {"sample-000003"}
    assert report["reason"].str.contains("File name too long").all()


@pytest.mark.parametrize(("name", "wave", "rate", "reason"), [
    ("one.wav", np.array([0.5], np.float32), 16_000, "too short"),
    ("nan.wav", np.full(4800, np.nan, np.float32), 16_000, "not finite"),
    ("hugerate.wav", np.full(100, 0.1, np.float32), 2**31 - 1, "implausible sample rate"),
    ("silent.wav", np.zeros(4800, np.float32), 16_000, "silent"),
])
def test_load_clip_rejects_clips_without_a_usable_signal(tmp_path, name, wave, rate, reason):
    """Was: a one-colour image predicted or stored without a word."""
    path = tmp_path / name
    sf.write(path, wave, 16_000, subtype="FLOAT")
    if rate != 16_000:  # soundfile refuses such a rate: patch the WAV header
        data = bytearray(path.read_bytes())
        data[24:28] = struct.pack("<I", rate)
        path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=reason):
        load_clip(path, FEATURES)


def test_unusable_signals_are_skipped_counted_and_reported(raw: Path, tmp_path: Path) -> None:
    """Was: one-colour images went into the TFRecords and were not reported."""
    add_train_clips(raw, {"one.wav": (np.array([0.5], np.float32), 16_000),
                          "nan.wav": (np.full(4800, np.nan, np.float32), 16_000),
                          "silent.wav": (np.zeros(4800, np.float32), 16_000)})
    summary = run_preprocess(raw, tmp_path / "results")
    assert summary["bad_clips"] == 3 and summary["examples"]["train"] == 12
    report = pd.read_csv(summary["report"], dtype=str,
                         keep_default_na=False).set_index("key")
    assert report.loc["one", "reason"].startswith("too short")
    assert report.loc["nan", "reason"].startswith("not finite")
    assert report.loc["silent", "reason"].startswith("silent")


def test_nul_byte_in_a_csv_path_rejects_the_row(raw: Path, tmp_path: Path) -> None:
    """Was: ValueError: embedded null byte traceback."""
    synth.append_csv(raw / "cv-valid-train.csv",
                     [synth.v1_row("cv-valid-train/bad\0name.wav", age="fifties",
                                   gender="female")])
    summary = run_preprocess(raw, tmp_path / "results", )
    assert summary["dropped_by_reason"] == {"bad path": 1}
    report = pd.read_csv(summary["report"])
    assert report["reason"].str.contains("NUL byte").sum() == 1


def test_disk_full_in_the_spectrogram_stage_is_one_line(raw: Path, tmp_path: Path,
                                                        monkeypatch, capsys) -> None:
    """Was: OSError [Errno 28] No space left on device, without a path."""
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    status = preprocess_dataset.main(["--dataset_dir", str(raw), "--dataset_type=raw",
                                      "--num_workers=1", "--image_size=32",
                                      "--results_dir", str(tmp_path / "results")])
    line = one_error_line(capsys)
    assert status == 2 and "disk full" in line and ".png" in line and "run the same" in line


def test_disk_full_in_the_tfrecord_stage_is_one_line(raw: Path, tmp_path: Path,
                                                     monkeypatch, capsys) -> None:
    """Was: a ResourceExhaustedError traceback (now shards are plain file I/O: ENOSPC)."""
    real_open = open

    class FullFile:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullFile(handle) if "w" in mode and "partial" in str(path) else handle

    monkeypatch.setattr(tfrecords, "open", fake_open, raising=False)
    status = preprocess_dataset.main(["--dataset_dir", str(raw), "--dataset_type=raw",
                                      "--num_workers=1", "--image_size=32",
                                      "--results_dir", str(tmp_path / "results")])
    line = one_error_line(capsys)
    assert status == 2 and "disk full" in line and "spec_data_000.tfrecord" in line
    assert not list((raw / "TFRecord").rglob(".tmp-*"))  # no half shard left behind


def test_killed_tfrecord_stage_leaves_nothing_a_glob_finds(shards: Path, tmp_path) -> None:
    """Was: .tmp-*-spec_data_NNN.tfrecord leftovers, never removed, matched by *.tfrecord."""
    folder = shards / "TFRecord" / "cv-valid-train"
    name = atomic.temp_name("spec_data_000.tfrecord", keep_suffix=False)
    (folder / name).write_bytes(b"half a shard")  # what a kill mid-write leaves
    old_style = folder / ".tmp-1a2b3c4d-spec_data_001.tfrecord"
    old_style.write_bytes(b"half a shard")  # and what it left before this fix
    assert not (folder / name).match("*.tfrecord")
    run_preprocess(shards, tmp_path / "results", overwrite=False)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-")) == []


def test_raw_run_leaves_the_clean_layout_for_the_next_command(raw: Path,
                                                              tmp_path: Path) -> None:
    """Was: --dataset_type=clean after raw stopped with 'Audio/cv-valid-train.csv: file not
    found'."""
    before = tree_digests(raw)
    first = run_preprocess(raw, tmp_path / "r1")
    audio = raw / "Audio"
    assert (audio / "cv-valid-test.csv").is_file()
    link = audio / "cv-valid-test" / "sample-000001.wav"
    source = raw / "cv-valid-test" / "cv-valid-test" / "sample-000001.wav"
    assert os.path.samefile(link, source)
    after = {k: v for k, v in tree_digests(raw).items()
             if k.split("/")[0] not in ("Audio", "Manifest", "Spectrograms", "TFRecord")}
    assert after == before  # the source is untouched
    manifest_raw = preprocess.read_clean_manifest(raw, "train")
    second = run_preprocess(raw, tmp_path / "r2", dataset_type="clean")
    manifest_clean = preprocess.read_clean_manifest(raw, "train")
    assert second["examples"] == first["examples"]
    assert manifest_clean["key"].tolist() == manifest_raw["key"].tolist()
    assert all(os.path.samefile(raw / a, raw / b) for a, b in
               zip(manifest_raw["audio_path"], manifest_clean["audio_path"], strict=True))


def test_clean_layout_never_overwrites_the_users_files(raw: Path, tmp_path: Path) -> None:
    audio = raw / "Audio"
    audio.mkdir()
    (audio / "cv-valid-train.csv").write_text("mine\n")
    summary = run_preprocess(raw, tmp_path / "results")
    assert (audio / "cv-valid-train.csv").read_text() == "mine\n"
    assert any("Audio/cv-valid-train.csv: exists and is not ours" in line
               for line in summary["warnings"])
    assert (audio / "cv-valid-dev.csv").is_file()  # other splits are still written


# -- shards -----------------------------------------------------------------------------------

def shard(root: Path, split: str = "test", number: int = 0) -> Path:
    return root / "TFRecord" / f"cv-valid-{split}" / tfrecords.shard_name(number)


def test_truncated_shard_is_named_with_its_record(shards: Path) -> None:
    """Was: DataLossError ... truncated record at 85289, not naming the shard."""
    from agegender.pipeline import make_dataset

    path = shard(shards)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 100])
    with pytest.raises(DatasetError, match=r"spec_data_000.tfrecord: record 4 .*truncated"):
        make_dataset(shards, "test", "gender", batch_size=4, training=False)


def test_bit_flipped_shard_is_named_with_its_record(shards: Path) -> None:
    from agegender.pipeline import make_dataset

    path = shard(shards, "train", 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"spec_data_001.tfrecord: record \d .*--skip_corrupt"):
        make_dataset(shards, "train", "gender", batch_size=4, training=True)


def test_corrupt_png_inside_a_valid_record_is_named(shards: Path) -> None:
    """Was: InvalidArgumentError ... Invalid PNG."""
    from agegender.pipeline import make_dataset

    path = shard(shards)
    scan = tfrecords.scan_shard(path)
    offset, length, *_ = scan.good[2]
    records = tfrecords.read_records(path, [(o, n) for o, n, *_ in scan.good])
    values = tfrecords.decode_example(records[2])
    png = bytearray(values["image/png"])
    png[len(png) // 2] ^= 0xFF  # the record's CRC is recomputed: only the PNG is bad
    values["image/png"] = bytes(png)
    records[2] = tfrecords.encode_example(values)
    path.write_bytes(b"".join(tfrecords.tfrecord_frame(r) for r in records))
    with pytest.raises(DatasetError, match=r"spec_data_000.tfrecord: record 2 .*corrupt PNG"):
        make_dataset(shards, "test", "gender", batch_size=4, training=False)


def test_skip_corrupt_goes_on_and_counts_what_it_skipped(shards: Path, caplog) -> None:
    from agegender.pipeline import make_dataset

    path = shard(shards)  # 5 records, the last truncated
    path.write_bytes(path.read_bytes()[:-100])
    data, index = make_dataset(shards, "test", "gender", batch_size=4, training=False,
                               with_keys=True, skip_corrupt=True)
    keys = [k.decode() for _, _, batch, _ in data for k in batch.numpy()]
    assert len(keys) == 11 and len(set(keys)) == 11
    assert index["corrupt"] == {"records": 1, "shards": [str(path)]}
    assert "skipping 1 corrupt record(s)" in caplog.text


def test_test_cli_skip_corrupt_flag(shards: Path, gender_model: Path, tmp_path: Path,
                                    capsys) -> None:
    path = shard(shards)
    path.write_bytes(path.read_bytes()[:-100])
    argv = ["--dataset_dir", str(shards), "--model_path", str(gender_model),
            "--results_dir", str(tmp_path / "results")]
    assert test_cli.main(argv) == 2
    assert "--skip_corrupt" in one_error_line(capsys)
    assert test_cli.main([*argv, "--skip_corrupt"]) == 0
    out = capsys.readouterr().out
    assert "clips: 11" in out and "skipped corrupt records" in out and "1 record(s)" in out


def test_train_cli_names_a_corrupt_shard(shards: Path, tmp_path: Path, capsys) -> None:
    path = shard(shards, "train", 0)
    path.write_bytes(path.read_bytes()[:-100])
    status = train_cli.main(["--dataset_dir", str(shards), "--cls_task=gender",
                             "--image_size=32", "--num_epochs=1", "--batch_size=8",
                             "--models_dir", str(tmp_path / "m"),
                             "--results_dir", str(tmp_path / "r")])
    assert status == 2 and "spec_data_000.tfrecord: record 4" in one_error_line(capsys)


def test_model_of_other_features_is_refused_on_the_shards(shards: Path, tmp_path: Path,
                                                          capsys) -> None:
    """Was: a mel model ran on spectrogram shards without a word."""
    from agegender.checkpoints import save_model_files
    from agegender.config import ModelParams
    from agegender.model import build_model

    mel = dataclasses.asdict(FeatureParams(image_size=IMAGE, feature_type="mel"))
    model = build_model(ModelParams(image_size=IMAGE, num_classes=2, task="gender",
                                    class_names=("male", "female")), features=mel)
    save_model_files(model, tmp_path / "mel.keras", tmp_path / "mel.h5")
    status = test_cli.main(["--dataset_dir", str(shards), "--model_path",
                            str(tmp_path / "mel.keras"), "--results_dir", str(tmp_path / "r")])
    line = one_error_line(capsys)
    assert status == 2 and "feature_type 'mel' vs 'spectrogram'" in line


# -- models -----------------------------------------------------------------------------------

def test_checkpoints_get_a_sha256_sidecar(gender_model: Path) -> None:
    for suffix in (".keras", ".h5"):
        path = gender_model.with_suffix(suffix)
        assert atomic.read_checksums(path) == [atomic.sha256_file(path)]


def flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x04
    path.write_bytes(bytes(data))


def test_bit_flipped_keras_is_one_line(gender_model: Path, tmp_path: Path, capsys) -> None:
    """Was: zipfile.BadZipFile: Bad CRC-32 traceback."""
    from agegender.checkpoints import load_model

    path = copy_model(gender_model, tmp_path)
    flip_byte(path)
    with pytest.raises(ModelError, match="checksum mismatch.*--no_verify"):
        load_model(path)
    with pytest.raises(ModelError, match="corrupt zip|cannot be loaded"):
        load_model(path, verify=False)
    status = inference_cli.main(["--model_path", str(path), "--audio_file", "x.wav"])
    assert status == 2 and "checksum mismatch" in one_error_line(capsys)


def test_bit_flipped_h5_fails_its_checksum(gender_model: Path, tmp_path: Path) -> None:
    """Was: a flipped .h5 loaded silently and predicted differently."""
    from agegender.checkpoints import load_model, open_model

    path = copy_model(gender_model, tmp_path, ".h5")
    flip_byte(path, 0.9)
    with pytest.raises(ModelError, match="checksum mismatch"):
        open_model(path)
    try:  # --no_verify: loads, or fails as one ModelError line, never a traceback
        load_model(path, verify=False)
    except ModelError:
        pass


def test_truncated_or_empty_keras_says_what_is_wrong(gender_model: Path,
                                                     tmp_path: Path) -> None:
    """Was: 'File not found ... accessible `.keras` zip file'."""
    from agegender.checkpoints import load_model

    path = tmp_path / "t.keras"
    path.write_bytes(gender_model.read_bytes()[:5000])
    with pytest.raises(ModelError, match="not a Keras file: not a zip archive"):
        load_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="empty file"):
        load_model(path)
    (tmp_path / "d.keras").mkdir()
    with pytest.raises(ModelError, match="a folder"):
        load_model(tmp_path / "d.keras")


def test_truncated_h5_is_one_model_error(gender_model: Path, tmp_path: Path) -> None:
    from agegender.checkpoints import load_model

    path = tmp_path / "t.h5"
    path.write_bytes(gender_model.with_suffix(".h5").read_bytes()[:20000])
    with pytest.raises(ModelError, match="HDF5"):
        load_model(path)


def test_saved_model_with_truncated_variables(gender_model: Path, tmp_path: Path) -> None:
    """Was: IndexError traceback."""
    from agegender.checkpoints import export_saved_model, open_model

    export = export_saved_model(gender_model, tmp_path / "export")
    for data in (export / "variables").glob("variables.data-*"):
        data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ModelError, match="corrupt or incomplete SavedModel"):
        open_model(export)
    shutil.rmtree(export / "variables")
    with pytest.raises(ModelError, match="without its variables"):
        open_model(export)


# -- inference --------------------------------------------------------------------------------

def test_short_and_empty_clips_come_back_as_errors(gender_model: Path, tmp_path: Path) -> None:
    """Was: predicted with error=None from an all-zero image."""
    from agegender.inference import AgeGenderDetector

    good = synth.write_audio(tmp_path / "good.wav", synth.voice("male", "teens", seed=1))
    short = synth.write_audio(tmp_path / "short.wav", np.full(100, 0.2, np.float32))
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(4000, np.nan, np.float32), 16_000, subtype="FLOAT")
    results = AgeGenderDetector(gender_model).predict([good, short, nan])
    assert results[0]["error"] is None
    assert "too short" in results[1]["error"] and results[1]["label"] is None
    assert "not finite" in results[2]["error"]


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"batch_size": -1}, "batch_size=-1"), ({"batch_size": 0}, "batch_size=0"),
    ({"num_threads": 0}, "num_threads=0"), ({"precision": "float16"}, "precision='float16'"),
])
def test_detector_arguments_are_checked(gender_model: Path, kwargs, needle) -> None:
    """Was: batch_size=-1 returned [], batch_size=0 raised 'range() arg 3 must not be zero'."""
    from agegender.inference import AgeGenderDetector

    with pytest.raises(ParameterError, match=needle):
        AgeGenderDetector(gender_model, **kwargs)


def test_glob_or_folder_without_audio_is_named(gender_model: Path, tmp_path: Path,
                                               capsys) -> None:
    """Was: '0 of 0 files predicted'."""
    (tmp_path / "empty").mkdir()
    status = inference_cli.main(["--model_path", str(gender_model), "--audio_file",
                                 str(tmp_path / "x" / "*.wav"), str(tmp_path / "empty")])
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    assert f"{tmp_path / 'x' / '*.wav'}: no audio files match this pattern" in captured.err
    assert f"{tmp_path / 'empty'}: folder holds no audio files" in captured.err
    assert "0 of 2 files predicted" in captured.out


def test_fifo_device_and_non_audio_say_what_they_are(tmp_path: Path) -> None:
    """Was: 'file not found' for a FIFO and /dev/zero, '... (possibly a pipe?)' for noise."""
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match=r"not a regular file \(a FIFO\)"):
        load_clip(fifo, FEATURES)  # returns at once: a FIFO is never opened
    with pytest.raises(AudioError, match=r"not a regular file \(a character device\)"):
        load_clip("/dev/zero", FEATURES)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AudioError, match="libsndfile cannot decode it"):
        load_clip(noise, FEATURES)


def test_output_help_says_folders_are_created(capsys) -> None:
    with pytest.raises(SystemExit):
        inference_cli.parse_args(["--help"])
    assert "folders on its path are created" in " ".join(capsys.readouterr().out.split())


# -- extra cases found while trying the CLIs --------------------------------------------------

def test_dataset_csv_with_a_repeated_column_is_refused(raw: Path, tmp_path: Path) -> None:
    table = pd.read_csv(raw / "cv-valid-train.csv", dtype=str)
    table.insert(len(table.columns), "age_again", table["age"])
    text = table.to_csv(index=False).replace("age_again", "age")
    (raw / "cv-valid-train.csv").write_text(text)
    with pytest.raises(DatasetError, match="column 'age' appears more than once"):
        run_preprocess(raw, tmp_path / "results")


def test_test_cli_batch_size_zero_is_one_line(shards: Path, gender_model: Path,
                                              tmp_path: Path, capsys) -> None:
    status = test_cli.main(["--dataset_dir", str(shards), "--model_path", str(gender_model),
                            "--batch_size=0", "--results_dir", str(tmp_path / "r")])
    assert status == 2 and "--batch_size=0 must be >= 1" in one_error_line(capsys)


def test_results_dir_that_is_a_file_is_one_line(raw: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "results").write_text("a file")
    status = preprocess_dataset.main(["--dataset_dir", str(raw), "--dataset_type=raw",
                                      "--num_workers=1", "--image_size=32",
                                      "--results_dir", str(tmp_path / "results")])
    assert status == 2 and "results" in one_error_line(capsys)


def test_saved_checkpoint_kill_window_keeps_a_listed_checksum(tmp_path: Path) -> None:
    """Between the sidecar and the rename, the sidecar lists both the old and new digest."""
    path = tmp_path / "m.h5"
    with atomic.replacing_checksummed(path) as tmp:
        tmp.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.replacing_checksummed(path) as tmp:
            tmp.write_bytes(b"new")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert atomic.sha256_file(path) in atomic.read_checksums(path)
    with atomic.replacing_checksummed(path) as tmp:
        tmp.write_bytes(b"new")
    assert atomic.read_checksums(path) == [atomic.sha256_file(path)]
    assert json.loads(json.dumps(atomic.read_checksums(path)))  # plain strings


# -- issue 21 item 10: an out-of-range label in a shard, through both scripts ----------------

@pytest.mark.parametrize("script", ["test", "train"])
def test_out_of_range_label_in_a_shard_is_one_line(shards: Path, gender_model: Path,
                                                   tmp_path: Path, capsys, script: str) -> None:
    split = "test" if script == "test" else "train"
    shard = shards / "TFRecord" / f"cv-valid-{split}" / tfrecords.shard_name(0)
    scan = tfrecords.scan_shard(shard)
    records = tfrecords.read_records(shard, [(offset, length) for offset, length, *_ in
                                             scan.good])
    values = tfrecords.decode_example(records[1])
    records[1] = tfrecords.encode_example({**values, "label/gender": 7})
    shard.write_bytes(b"".join(tfrecords.tfrecord_frame(record) for record in records))
    if script == "test":
        status = test_cli.main(["--dataset_dir", str(shards), "--model_path", str(gender_model),
                                "--results_dir", str(tmp_path / "r")])
    else:
        status = train_cli.main(["--dataset_dir", str(shards), "--cls_task=gender",
                                 "--num_epochs=1", "--batch_size=4",
                                 f"--models_dir={tmp_path / 'm'}",
                                 f"--results_dir={tmp_path / 'r'}"])
    line = one_error_line(capsys)
    assert status == 2
    assert f"{shard}: record 1 (byte " in line
    assert "label/gender is 7, outside 0..1 (male, female) and -1 (no label)" in line


# -- issue 32: never overwrite a user's file, one result per input, no label for clicks -------

def voice_wav(path: Path, seconds: float = 3.0, seed: int = 0) -> Path:
    return synth.write_audio(path, synth.voice("female", "twenties", seed=seed,
                                               seconds=seconds))


def timeline_cli(model: Path, *args: str) -> int:
    return inference_cli.main([f"--model_path={model}", "--timeline", *args])


def test_timeline_never_replaces_the_users_files(gender_model: Path, tmp_path: Path,
                                                 capsys) -> None:
    """Was: DIR/meeting.TextGrid and .csv beside meeting.wav replaced, exit 0."""
    folder = tmp_path / "recordings"
    wav = voice_wav(folder / "meeting.wav")
    for suffix in (".TextGrid", ".csv"):
        (folder / f"meeting{suffix}").write_text("mine\n")
    status = timeline_cli(gender_model, f"--audio_file={wav}", f"--timeline_dir={folder}")
    line = one_error_line(capsys)
    assert status == 2
    assert "meeting.csv: exists and this run did not write it" in line and "--overwrite" in line
    assert (folder / "meeting.TextGrid").read_text() == "mine\n"
    assert (folder / "meeting.csv").read_text() == "mine\n"
    assert not (folder / "meeting.json").exists()  # refused before anything was written
    status = timeline_cli(gender_model, f"--audio_file={wav}", f"--timeline_dir={folder}",
                          "--overwrite")
    assert status == 0
    assert (folder / "meeting.TextGrid").read_text().startswith('File type = "ooTextFile"')


def test_timeline_folder_defaults_under_results() -> None:
    args = inference_cli.parse_args(["--audio_file=a.wav", "--timeline"])
    assert Path(args.timeline_dir) == Path("results") / "timeline"


def test_one_timeline_run_never_overwrites_its_own_files(gender_model: Path,
                                                         tmp_path: Path, capsys) -> None:
    """Was: a/x.wav b/x.wav c/x-2.wav: the third replaced the second's x-2.*, "3 of 3"."""
    files = [voice_wav(tmp_path / "a" / "x.wav", seed=1), voice_wav(tmp_path / "b" / "x.wav",
                                                                    seed=2),
             voice_wav(tmp_path / "c" / "x-2.wav", seed=3)]
    out = tmp_path / "tl"
    status = timeline_cli(gender_model, "--audio_file", *map(str, files),
                          f"--timeline_dir={out}")
    assert status == 0
    written = {json.loads(p.read_text())["file"] for p in out.glob("*.json")}
    assert written == {str(f) for f in files}
    assert len(list(out.glob("*.TextGrid"))) == 3


def test_a_files_speaker_table_never_takes_another_files_name() -> None:
    """x.wav's per-speaker table is x_speakers.csv: x_speakers.wav must not write there too."""
    from agegender.timeline_cli import planned_prefixes
    from agegender.timeline_formats import FORMATS, output_path

    for files in (["a/x.wav", "b/x_speakers.wav"], ["b/x_speakers.wav", "a/x.wav"],
                  ["a/X.wav", "b/x_SPEAKERS.wav", "c/x.wav"]):
        outputs = [output_path(prefix, fmt).casefold()
                   for prefix in planned_prefixes(files, "out") for fmt in FORMATS]
        assert len(outputs) == len(set(outputs)), files


def test_timeline_run_removes_leftovers_of_a_killed_run(gender_model: Path,
                                                        tmp_path: Path) -> None:
    """Was: .tmp-…-<stem>.json of a kill -9 stayed for ever."""
    out = tmp_path / "tl"
    out.mkdir()
    leftover = out / ".tmp-0123abcd-meeting.json"
    leftover.write_text("{")
    theirs = out / ".tmp-0123abcd-notes.txt"  # not a timeline file: not ours to remove
    theirs.write_text("x")
    wav = voice_wav(tmp_path / "other.wav")
    assert timeline_cli(gender_model, f"--audio_file={wav}", f"--timeline_dir={out}") == 0
    assert not leftover.exists() and theirs.exists()


def test_timeline_honours_output(gender_model: Path, tmp_path: Path) -> None:
    """Was: --output beside --timeline silently ignored."""
    wavs = [voice_wav(tmp_path / "one.wav", seed=1), voice_wav(tmp_path / "two.wav", seed=2)]
    table = tmp_path / "segments.csv"
    status = timeline_cli(gender_model, "--audio_file", *map(str, wavs),
                          f"--timeline_dir={tmp_path / 'tl'}", f"--output={table}")
    assert status == 0
    frame = pd.read_csv(table)
    assert list(frame.columns) == ["file", "start", "end", "speaker", "gender",
                                   "gender_probability", "age", "age_probability"]
    assert set(frame["file"]) == {str(w) for w in wavs}
    assert (tmp_path / "segments.csv.model.json").is_file()


def test_tiny_hop_is_refused_before_anything_is_allocated(gender_model: Path,
                                                          tmp_path: Path, capsys) -> None:
    """Was: --hop_s 1e-9 accepted; a 3-s clip grew to 21 GB and the OOM killer ended it."""
    wav = voice_wav(tmp_path / "a.wav")
    status = timeline_cli(gender_model, f"--audio_file={wav}", "--hop_s=1e-9",
                          f"--timeline_dir={tmp_path / 'tl'}")
    line = one_error_line(capsys)
    assert status == 2 and "--hop_s=1e-09 must be 0" in line and "0.05" in line
    from agegender.timeline import TimelineParams

    for name, value in (("window_s", 1e6), ("block_s", 1e12), ("hop_s", 1e-9)):
        with pytest.raises(ParameterError, match=f"{name}="):
            TimelineParams(**{name: value})


@pytest.mark.parametrize("arguments, message", [
    ({"batch_size": 10**9}, "batch_size=1000000000 must be an integer from 1 to 4096"),
    ({"max_crops": 10**6}, "max_crops=1000000 must be an integer from 1 to 64"),
    ({"max_crops": 2.5}, "max_crops=2.5 must be an integer"),
    ({"max_crops": float("nan")}, "max_crops=nan must be an integer"),
])
def test_detector_bounds_its_allocation_arguments(gender_model: Path, arguments: dict,
                                                  message: str) -> None:
    """Was: max_crops=2.5 and nan accepted; nothing bounded batch_size or max_crops."""
    from agegender import AgeGenderDetector

    with pytest.raises(ParameterError, match=message):
        AgeGenderDetector(gender_model, **arguments)


def test_input_budget_is_checked_before_a_batch_is_made() -> None:
    from agegender.inference import check_input_budget

    big = FeatureParams(image_size=512)
    check_input_budget(64, 3, big)  # 64 x 3 images of 512 x 512: 0.56 GiB
    with pytest.raises(ParameterError, match=r"batch_size=4096 x max_crops=64 would need "
                                             r"768\.0 GiB .* over the 2 GiB budget"):
        check_input_budget(4096, 64, big)


def test_predict_gives_one_result_per_input_in_order(gender_model: Path,
                                                     tmp_path: Path) -> None:
    """Was: predict([a, b, a, c]) returned 3 results: zip paired the wrong clips."""
    from agegender import AgeGenderDetector

    a, b, c = (voice_wav(tmp_path / f"{n}.wav", seed=i) for i, n in enumerate("abc"))
    folder = tmp_path / "more"
    d, e = voice_wav(folder / "d.wav", seed=4), voice_wav(folder / "e.wav", seed=5)
    detector = AgeGenderDetector(gender_model)
    results = detector.predict([a, b, a, c])
    assert [r["file"] for r in results] == [str(a), str(b), str(a), str(c)]
    assert results[0]["probabilities"] == results[2]["probabilities"]
    results = detector.predict([a, folder, a])  # a folder expands in place
    assert [r["file"] for r in results] == [str(a), str(d), str(e), str(a)]


@pytest.mark.parametrize("audio", [np.zeros(16_000, np.float32), np.zeros(0, np.float32),
                                   [np.float32(0.1), np.float32(0.2)]])
def test_waveforms_are_refused_in_one_line(gender_model: Path, audio) -> None:
    """Was: TypeError: expected str ... (each sample taken for a path); [] for an empty one."""
    from agegender import AgeGenderDetector

    detector = AgeGenderDetector(gender_model)
    with pytest.raises(ParameterError, match=r"audio_files: .*pass file paths; in-memory "
                                             r"audio: write it to a WAV first"):
        detector.predict(audio)
    with pytest.raises(ParameterError, match="path: .*pass file paths"):
        detector.timeline(audio)


def test_garbage_checksum_sidecar_is_named_not_the_model(gender_model: Path,
                                                         tmp_path: Path, capsys) -> None:
    """Was: checksum mismatch ... expected not, blaming the intact model."""
    model = copy_model(gender_model, tmp_path)
    atomic.checksum_path(model).write_text("not a checksum\n")
    status = inference_cli.main([f"--model_path={model}", "--audio_file=x.wav"])
    line = one_error_line(capsys)
    assert status == 2
    assert f"its checksum file {atomic.checksum_path(model)} is unreadable" in line
    assert "mismatch" not in line and "'not'" in line


def _rewrite_record(path: Path, number: int, change) -> None:
    scan = tfrecords.scan_shard(path)
    records = tfrecords.read_records(path, [(o, n) for o, n, *_ in scan.good])
    values = tfrecords.decode_example(records[number])
    values["image/png"] = change(bytearray(values["image/png"]))
    records[number] = tfrecords.encode_example(values)
    path.write_bytes(b"".join(tfrecords.tfrecord_frame(r) for r in records))


def _bad_idat_crc(png: bytearray) -> bytes:
    """The IDAT chunk's CRC flipped: Pillow decodes it, libpng (TensorFlow) refuses it."""
    start = png.index(b"IDAT") - 4
    length = int.from_bytes(png[start:start + 4], "big")
    png[start + 8 + length] ^= 0xFF
    return bytes(png)


def test_png_with_a_bad_chunk_crc_is_named_and_skipped(shards: Path, gender_model: Path,
                                                       tmp_path: Path, capsys) -> None:
    """Was (regression): TensorFlow's InvalidArgumentError traceback from test.py, even with
    --skip_corrupt."""
    path = shard(shards)
    _rewrite_record(path, 2, _bad_idat_crc)
    status = test_cli.main(["--dataset_dir", str(shards), "--model_path", str(gender_model),
                            "--results_dir", str(tmp_path / "r")])
    line = one_error_line(capsys)
    assert status == 2 and f"{path}: record 2 (byte " in line
    assert "corrupt PNG image (CRC mismatch in chunk IDAT" in line
    status = test_cli.main(["--dataset_dir", str(shards), "--model_path", str(gender_model),
                            "--results_dir", str(tmp_path / "r2"), "--skip_corrupt"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Traceback" not in captured.err


def _run_voice_statistics(env: dict) -> subprocess.CompletedProcess:
    code = ("from agegender.voice_stats import voice_statistics\n"
            "from agegender.synthetic import intoned_voice\n"
            "print(voice_statistics(intoned_voice(150.0, seconds=1.0, rate=8000), 8000)[0])")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def test_corrupt_numba_cache_is_caught_and_rebuilt(tmp_path: Path) -> None:
    """Was: a bad file in numba's cache of librosa.yin's compiled code: every run ended with
    SIGSEGV (exit 139) or an LLVM traceback, no message."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    good = _run_voice_statistics(env)  # fills and verifies the per-user cache (once)
    assert good.returncode == 0, good.stderr
    from agegender.numba_cache import cache_dir

    user_cache = cache_dir() if not os.environ.get("NUMBA_CACHE_DIR") else None
    cache = tmp_path / "numba"
    shutil.copytree(user_cache or Path(os.environ["NUMBA_CACHE_DIR"]), cache)
    compiled = sorted(cache.rglob("pitch._pi_wrapper-*.1.nbc"))  # yin's parabolic step
    assert compiled, sorted(p.name for p in cache.rglob("*"))
    data = bytearray(compiled[0].read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in
                                                     data[len(data) // 2:len(data) // 2 + 64])
    compiled[0].write_bytes(bytes(data))
    result = _run_voice_statistics({**env, "NUMBA_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) == float(good.stdout)
    assert "numba cache" in result.stderr and "compiled afresh" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", ["zeros", "random"])
def test_partly_corrupt_mp3_keeps_its_good_audio_on_the_timeline(
        gender_model: Path, tmp_path: Path, capfd, caplog, damage: str) -> None:
    """Was: libmpg123's resync notes on stderr, and the whole recording refused (zeros) or
    silently cut at the bad spot (random bytes)."""
    from agegender import synthetic

    path = synth.write_audio(tmp_path / "talk.mp3", synthetic.intoned_voice(
        150.0, seconds=20.0, rate=16_000))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = (bytes(2000) if damage == "zeros" else
                                  np.random.default_rng(1).integers(0, 256, 2000,
                                                                    np.uint8).tobytes())
    path.write_bytes(bytes(data))
    out = tmp_path / "tl"
    status = timeline_cli(gender_model, f"--audio_file={path}", f"--timeline_dir={out}")
    err = capfd.readouterr().err
    assert status == 0, err
    assert "libmpg123" not in err and "Note:" not in err and "Xing" not in err, err
    assert "talk.mp3: 1 damaged stretch(es) of MP3 data (9." in caplog.text
    saved = json.loads((out / "talk.json").read_text())
    assert saved["duration"] == pytest.approx(20.0, abs=0.6)  # the audio after it is kept
    segments = saved["segments"]
    assert any(s["end"] > 15 and s["speaker"] is not None for s in segments), segments
    assert any(s["start"] <= 10.1 <= s["end"] and s["speaker"] is None  # the stretch
               for s in segments), segments

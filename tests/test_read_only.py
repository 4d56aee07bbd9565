"""Issue 21, item 16: a read-only dataset folder is never written.

The tests run as root, whom ``chmod -w`` does not stop, so "read-only" is checked as "not one
entry under the dataset folder is added, removed or changed" (a snapshot before and after),
and a cache write failing as a read-only file system would is simulated by monkeypatching.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synth
from conftest import TINY_IMAGE

import preprocess_dataset
import test as test_cli
import train as train_cli
from agegender import atomic, pitch
from agegender.config import FeatureParams


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 of a file, 'dir' or 'link -> target'} of everything under root."""
    out = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[name] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[name] = "dir"
        else:
            out[name] = atomic.sha256_file(path)
    return out


@pytest.fixture(scope="module")
def gender_model(tmp_path_factory) -> Path:
    """An untrained 32-px gender model (the outputs do not matter here, only what is
    written where)."""
    from agegender.checkpoints import save_model_files
    from agegender.config import ModelParams
    from agegender.model import build_model

    out = tmp_path_factory.mktemp("model")
    model = build_model(ModelParams(image_size=TINY_IMAGE, num_classes=2, task="gender",
                                    class_names=("male", "female")),
                        features=dataclasses.asdict(FeatureParams(image_size=TINY_IMAGE)))
    save_model_files(model, out / "m.keras", out / "m.h5")
    return out / "m.keras"


def test_output_dir_preprocesses_a_read_only_dataset_for_train_and_test(
        tmp_path: Path, gender_model: Path, capsys) -> None:
    """Was: Manifest/ Spectrograms/ TFRecord/ could only go beside the audio."""
    data = synth.make_raw_corpus(tmp_path / "shared" / "cv-sample",
                                 per_group={"train": 2, "dev": 1, "test": 1}, seconds=0.5)
    before = snapshot(data)
    out = tmp_path / "mine" / "cv-sample"
    assert preprocess_dataset.main([
        "--dataset_dir", str(data), "--dataset_type", "raw", "--output_dir", str(out),
        "--results_dir", str(tmp_path / "results"), "--image_size", str(TINY_IMAGE),
        "--num_workers", "1", "--shard_size", "10"]) == 0
    assert snapshot(data) == before  # not one entry added, removed or changed
    for name in ("Manifest", "Spectrograms", "TFRecord", "Audio"):
        assert (out / name).is_dir(), name
    manifest = pd.read_csv(out / "Manifest" / "cv-valid-test.csv")
    assert all(Path(path).is_file() for path in manifest["audio_path"])  # resolvable
    # The next two scripts take the output folder as their dataset.
    assert train_cli.main(["--dataset_dir", str(out), "--cls_task", "gender",
                           "--models_dir", str(tmp_path / "models"), "--results_dir",
                           str(tmp_path / "results"), "--num_epochs", "1", "--batch_size",
                           "16"]) == 0
    capsys.readouterr()
    assert test_cli.main(["--dataset_dir", str(out), "--model_path", str(gender_model),
                          "--results_dir", str(tmp_path / "results")]) == 0
    text = capsys.readouterr().out
    assert "pitch baseline: not available" not in text  # the audio was found through OUT
    assert snapshot(data) == before


def _voices(root: Path) -> Path:
    rows = ["path,gender,speaker,split"]
    for i in range(6):
        gender = ("male", "female")[i % 2]
        synth.write_audio(root / "clips" / f"c{i}.wav", synth.voice(gender, "twenties",
                                                                   seed=700 + i))
        rows.append(f"clips/c{i}.wav,{gender},spk{i},{'train' if i < 2 else ''}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def test_manifest_evaluation_writes_nothing_beside_the_audio(tmp_path: Path,
                                                              gender_model: Path) -> None:
    """Was: 'error: DIR/Pitch: Read-only file system' (the F0 cache went into DIR)."""
    table = _voices(tmp_path / "voices")
    before = snapshot(table.parent)
    results = tmp_path / "results"
    assert test_cli.main(["--manifest", str(table), "--model_path", str(gender_model),
                          "--results_dir", str(results)]) == 0
    assert snapshot(table.parent) == before
    assert pitch.results_cache_path(results, table.parent).is_file()  # cached where outputs go


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path: Path, monkeypatch,
                                                   caplog) -> None:
    table = _voices(tmp_path / "voices")
    cache = tmp_path / "ro" / "median_f0.csv"

    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(atomic, "write_text", read_only)
    with caplog.at_level("WARNING"):
        f0 = pitch.cached_median_f0(["clips/c0.wav", "clips/c1.wav"], root=table.parent,
                                    cache=cache)
    assert np.isfinite(f0).all()
    assert f"pitch: cache {cache} cannot be written (Read-only file system)" in caplog.text

"""Kill-safety of training: a simulated ``kill -9`` at every write step, then a re-run.

Each case runs ``tests/kill_train.py`` in a subprocess that dies with ``os._exit`` (what a
SIGKILL leaves: no ``finally``, no cleanup) at one step of the epoch-end writes, after a
finished earlier run left its best model, then re-runs the same training in this process and
checks the invariants: the run finishes, the CSV log has exactly one row per epoch, the best
model's JSON describes the very files it sits beside (sha256, and re-evaluating the model gives
its score), and no ``.tmp-*`` is left anywhere.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pandas as pd
import pytest
from conftest import ROOT, TINY_IMAGE

from agegender import atomic, runstate
from agegender.callbacks import BestCheckpoint, RunRecord
from agegender.config import ModelParams, TrainParams
from agegender.errors import ParameterError
from agegender.training import train

PARAMS = TrainParams(batch_size=8, num_epochs=2, learning_rate=1e-3, seed=3)


def _train(dataset, out: Path, **kwargs) -> dict:
    params = kwargs.pop("params", PARAMS)
    return train(dataset, "gender", train_params=params, image_size=TINY_IMAGE,
                 models_dir=out / "models", results_dir=out / "results", verbose=0, **kwargs)


def _best_json(out: Path) -> dict | None:
    path = out / "models" / "gender" / "best_model_gender.json"
    return json.loads(path.read_text()) if path.exists() else None


def assert_best_consistent(out: Path) -> dict:
    """The user-facing JSON's sha256 fields are those of the .keras/.h5 beside it."""
    model_dir = out / "models" / "gender"
    state = _best_json(out)
    assert state is not None
    for suffix in ("keras", "h5"):
        path = model_dir / f"best_model_gender.{suffix}"
        assert path.is_symlink(), path
        assert atomic.sha256_file(path) == state["sha256"][suffix], suffix
    return state


def assert_no_tmp(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.name.startswith(runstate.TMP_PREFIX)]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def finished_run(tiny_dataset, tmp_path_factory) -> Path:
    """A finished 1-epoch run: the 'previous' run every kill case starts after."""
    out = tmp_path_factory.mktemp("previous")
    _train(tiny_dataset, out, params=TrainParams(batch_size=8, num_epochs=1, seed=9))
    return out


KILL_POINTS = {
    "backup_write": "model file of the epoch-1 backup cut to 96 bytes, never renamed",
    "after_backup": "after epoch 0's backup, before epoch 1's best write",
    "before_backup": "after epoch 1's best write, before its backup",
    "best_keras": "during the best .keras write",
    "best_h5": "during the best .h5 write",
    "best_json": "during the best .json write",
    "flip": "best folder published, symlink not yet flipped",
    "csv": "during epoch 1's CSV write (backup done)",
    "epoch_1": "in the middle of epoch 1 of a fresh run after a finished run",
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_at_every_write_step_then_rerun(point, tiny_dataset, finished_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out, symlinks=True)
    previous = assert_best_consistent(out)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_train.py"),
                           str(tiny_dataset), str(out), point, str(PARAMS.num_epochs)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 9, (point, done.returncode, done.stderr[-3000:])
    # Right after the kill the user-facing best still agrees with itself (old or new).
    assert_best_consistent(out)

    result = _train(tiny_dataset, out)

    log = pd.read_csv(out / "results" / "gender" / "best_model_gender" /
                      "train_logs_gender.csv")
    assert list(log["epoch"]) == list(range(PARAMS.num_epochs)), point
    best = assert_best_consistent(out)
    assert best["run_id"] == result["run_id"] != previous["run_id"], point
    assert best["epoch"] == result["best_epoch"] and best["score"] == result["best_score"]
    assert best["score"] >= log["val_uar"].max() - 1e-9  # never worse than a logged epoch
    model = keras.models.load_model(out / "models" / "gender" / "best_model_gender.keras")
    from agegender.model import compile_model
    from agegender.pipeline import make_dataset

    compile_model(model, 1e-3)  # best models are saved without the optimizer

    dev, _ = make_dataset(tiny_dataset, "dev", "gender", batch_size=8, training=False)
    scores = model.evaluate(dev, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(best["score"], abs=1e-6), point
    assert_no_tmp(out)
    assert not (out / "models" / "gender" / "backup").exists()
    assert sorted(p.name for p in (out / "models" / "gender" / "best").iterdir()) == sorted(
        ["current", os.readlink(out / "models" / "gender" / "best" / "current")])


class _Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_resume_checks_settings_and_overwrite_starts_fresh(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tiny_dataset, out, extra_callbacks=[_Crash()])
    first = _best_json(out)["run_id"]
    changed = TrainParams(batch_size=8, num_epochs=2, learning_rate=1e-2, seed=3)
    with pytest.raises(ParameterError) as err:
        _train(tiny_dataset, out, params=changed, model_params=ModelParams(l2=0.001))
    message = str(err.value)
    assert "\n" not in message and "--overwrite" in message
    assert "--learning_rate 0.001 → 0.01" in message and "--l2 0.01 → 0.001" in message
    # --num_epochs may change: it only extends the run.
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(int(self.model.optimizer.iterations))

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = _train(tiny_dataset, out, params=TrainParams(batch_size=8, num_epochs=3,
                                                           learning_rate=1e-3, seed=3),
                     extra_callbacks=[Record()])
    assert resumed["run_id"] == first
    assert seen == [3, 1, 2]  # optimizer step restored (3 steps an epoch), epoch 0 not redone
    assert list(pd.read_csv(resumed["csv"])["epoch"]) == [0, 1, 2]

    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tiny_dataset, out, extra_callbacks=[_Crash()])
    fresh = _train(tiny_dataset, out, params=changed, overwrite=True)
    assert fresh["run_id"] != first and _best_json(out)["run_id"] == fresh["run_id"]
    assert list(pd.read_csv(fresh["csv"])["epoch"]) == [0, 1]


def test_a_corrupt_generation_is_skipped_for_the_next_older(tmp_path):
    backup = tmp_path / "backup"
    for epoch in (0, 1):
        runstate.write_generation(backup, epoch, lambda p, e=epoch: p.write_text(str(e)),
                                  {"run_id": "r"})
    (backup / "epoch-0001" / runstate.BACKUP_MODEL_NAME).write_bytes(b"\0" * 96)
    (backup / ".tmp-1234abcd-epoch-0002").mkdir()

    def load(path):
        if path.read_bytes().startswith(b"\0"):
            raise OSError("Unable to synchronously open file (truncated file)")

    state = runstate.load_generation(backup, load)
    assert state["epoch"] == 0
    assert [p.name for p in backup.iterdir()] == ["epoch-0000"]


def test_three_generations_keep_the_last_two(tmp_path):
    for epoch in range(3):
        runstate.write_generation(tmp_path, epoch, lambda p: p.write_text("m"), {"run_id": "r"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "epoch-0002"]


def test_best_publish_keeps_one_folder_and_links(tmp_path):
    task = "gender"
    (tmp_path / "best_model_gender.keras").write_text("old plain file")
    for epoch, fresh in ((1, False), (2, True), (2, True)):
        runstate.publish_best(tmp_path, task, run_id="r", epoch=epoch,
                              save_keras=lambda p, e=epoch: p.write_text(f"k{e}"),
                              save_h5=lambda p, e=epoch: p.write_text(f"h{e}"),
                              info={"score": epoch}, replace_plain_files=fresh)
        if not fresh:  # a resumed run leaves an older version's plain file alone
            assert not (tmp_path / "best_model_gender.keras").is_symlink()
    assert (tmp_path / "best_model_gender.keras").read_text() == "k2"
    state = json.loads((tmp_path / "best_model_gender.json").read_text())
    assert state["sha256"]["h5"] == atomic.sha256_file(tmp_path / "best_model_gender.h5")
    # The same epoch published twice (a redone epoch) gets a new folder, never an overwrite.
    assert os.readlink(tmp_path / "best" / "current") == "r-e0002-2"
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["current", "r-e0002-2"]


def test_settings_differences_name_each_flag():
    base = dict(task="gender", features={"feature_type": "mel"}, image_size=64, l2=0.01,
                bn_momentum=0.7, dense_units=80, batch_size=128, learning_rate=1e-4,
                class_weight="none", seed=42, deterministic=False, strategy="auto",
                mixed_precision=False, dataset="abc")
    old = runstate.RunSettings(**base)
    new = runstate.RunSettings(**{**base, "image_size": 32, "features": {"feature_type": "mfcc"},
                                  "dataset": "def"})
    assert old.differences(new) == ["shard features (preprocess flags) feature_type=mel → "
                                    "feature_type=mfcc", "--image_size 64 → 32",
                                    "dataset (train/dev shards) abc → def"]
    assert runstate.RunSettings.from_dict(old.to_dict()) == old


def test_best_checkpoint_breaks_ties_by_dev_crossentropy(tmp_path, caplog):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    record = RunRecord(run_id="r", settings={})
    checkpoint = BestCheckpoint(tmp_path, "gender", record)
    checkpoint.set_model(model)
    caplog.set_level("INFO", logger="agegender.callbacks")
    # val_loss (with L2) would pick epoch 3; the unregularised cross-entropy picks epoch 2.
    epochs = [(0.9, 0.5, 17.0), (0.9, 0.4, 17.5), (0.9, 0.45, 16.0), (0.8, 0.1, 15.0)]
    for epoch, (uar, crossentropy, loss) in enumerate(epochs):
        checkpoint.on_epoch_end(epoch, {"val_uar": uar,
                                        "val_crossentropy": crossentropy, "val_loss": loss})
    assert checkpoint.best_epoch == 2 and record.best_tie == pytest.approx(0.4)
    state = json.loads((tmp_path / "best_model_gender.json").read_text())
    assert state["epoch"] == 2 and state["val_crossentropy"] == pytest.approx(0.4)
    assert "improved from -inf to 0.9000" in caplog.text
    assert "tie broken by lower dev cross-entropy (0.5000 → 0.4000)" in caplog.text
    assert math.isinf(RunRecord(run_id="x", settings={}).best)


# -- issue 21, item 13: a full disk names what was being written ----------------------------


def _disk_full(path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")  # as h5py/zipfile: no file name


def test_full_disk_in_a_backup_names_the_generation(tmp_path):
    """Was: 'error: a file: disk full'."""
    from agegender.errors import OutputError

    with pytest.raises(OutputError, match=r"backup/epoch-0003: disk full while writing"):
        runstate.write_generation(tmp_path / "backup", 3, _disk_full, {"rows": []})
    assert list((tmp_path / "backup").iterdir()) == []  # no half generation


def test_full_disk_while_training_names_the_file_and_leaves_no_empty_log(
        tiny_dataset, tmp_path, monkeypatch, capsys):
    """Was: 'error: a file: disk full' and a 0-byte train_logs_gender.csv."""
    import train as train_cli
    from agegender import checkpoints

    monkeypatch.setattr(checkpoints, "save_h5", lambda model, path, **kw: _disk_full(path))
    status = train_cli.main(["--dataset_dir", str(tiny_dataset), "--cls_task", "gender",
                             "--models_dir", str(tmp_path / "m"), "--results_dir",
                             str(tmp_path / "r"), "--num_epochs", "1", "--batch_size", "8",
                             "--image_size", str(TINY_IMAGE)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {tmp_path / 'm' / 'gender' / 'best'}/")
    assert "disk full while writing" in lines[0] and "a file" not in lines[0]
    assert not (tmp_path / "r" / "gender" / "best_model_gender" /
                "train_logs_gender.csv").exists()

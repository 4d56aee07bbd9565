"""Issue 21, items 14-15: one run at a time per output folder, and no orphan temporaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import synth
from conftest import TINY_IMAGE

import preprocess_dataset
import train as train_cli
from agegender import atomic, preprocess, runlock
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import DatasetError


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return synth.make_raw_corpus(tmp_path / "corpus", per_group={"train": 1, "dev": 1,
                                                                 "test": 1}, seconds=0.3)


def test_second_preprocessing_run_stops_at_once_naming_the_holder(raw: Path, tmp_path: Path,
                                                                   capsys) -> None:
    """Was: both ran, and one's sweep removed the other's temporary PNG (a good clip reported
    as bad)."""
    with runlock.RunLock(raw, what="preprocessing",
                         lock_path=raw / "Manifest" / runlock.LOCK_NAME):
        status = preprocess_dataset.main(["--dataset_dir", str(raw), "--dataset_type", "raw",
                                          "--results_dir", str(tmp_path / "r"),
                                          "--num_workers", "1"])
        line = error_line(capsys)
    assert status == 2
    assert line.startswith(f"error: {raw}: another preprocessing run (PID {os.getpid()})")
    assert not (raw / "Spectrograms").exists()  # stopped before any work
    # Released: the same command now runs.
    assert preprocess_dataset.main(["--dataset_dir", str(raw), "--dataset_type", "raw",
                                    "--results_dir", str(tmp_path / "r"), "--num_workers", "1",
                                    "--image_size", "32"]) == 0


def test_second_training_run_on_one_models_dir_stops_at_once(tiny_dataset: Path,
                                                              tmp_path: Path, capsys) -> None:
    """Was: '…/backup/.tmp-…/state.json: No such file or directory' in one of the two."""
    models = tmp_path / "models"
    with runlock.RunLock(models / "gender", what="training"):
        status = train_cli.main(["--dataset_dir", str(tiny_dataset), "--cls_task", "gender",
                                 "--models_dir", str(models), "--results_dir",
                                 str(tmp_path / "r"), "--num_epochs", "1", "--batch_size", "8",
                                 "--image_size", str(TINY_IMAGE)])
        line = error_line(capsys)
    assert status == 2
    assert line.startswith(f"error: {models / 'gender'}: another training run "
                           f"(PID {os.getpid()})")
    assert not (models / "gender" / "backup").exists()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    code = ("import os, signal, sys; from agegender import runlock; "
            f"lock = runlock.RunLock({str(tmp_path)!r}, what='training'); "
            "print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == -9 and done.stdout.strip().isdigit()
    assert (tmp_path / runlock.LOCK_NAME).read_text().strip() == done.stdout.strip()
    with runlock.RunLock(tmp_path, what="training") as lock:  # the kernel dropped it
        assert (tmp_path / runlock.LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(runlock.OutputError, match=f"PID {os.getpid()}"):
            runlock.RunLock(tmp_path, what="training")
        lock.release()
    runlock.RunLock(tmp_path, what="training").release()


def test_rerun_sweeps_every_folder_it_writes(raw: Path, tmp_path: Path) -> None:
    """Was: Manifest/.tmp-…-cv-valid-dev.csv (killed at the clean stage) and
    RESULTS/.tmp-…-preprocess_report.csv survived every re-run."""
    results = tmp_path / "results"
    params = PreprocessParams(dataset_type="raw", num_workers=1, shard_size=5)
    features = FeatureParams(image_size=TINY_IMAGE)
    preprocess.preprocess(raw, params=params, features=features, results_dir=results)
    orphans = [raw / "Manifest" / ".tmp-0123abcd-cv-valid-dev.csv",
               raw / "Spectrograms" / ".tmp-0123abcd-features.json",
               raw / "TFRecord" / ".tmp-0123abcd-shards.json",
               preprocess.report_dir(results, raw) / ".tmp-0123abcd-preprocess_report.csv",
               preprocess.report_dir(results, raw) / ".tmp-0123abcd-dataset_summary.png"]
    for path in orphans:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    others = results / ".tmp-0123abcd-someone_elses.csv"  # not a preprocessing output
    others.write_text("kept")
    user_file = raw / "cv-valid-dev" / ".tmp-0123abcd-notes.txt"  # the user's folder
    user_file.write_text("kept")
    preprocess.preprocess(raw, params=params, features=features, results_dir=results,
                          stages=("clean",))
    assert [path for path in orphans if path.exists()] == []
    assert others.read_text() == "kept" and user_file.read_text() == "kept"
    assert list(atomic.leftovers(raw / "Manifest")) == []


def test_preprocessing_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        preprocess.preprocess(tmp_path / "nowhere", params=PreprocessParams(
            dataset_type="raw"), features=FeatureParams(), results_dir=tmp_path / "r")
    assert not (tmp_path / "nowhere").exists()
    shutil.rmtree(tmp_path / "r", ignore_errors=True)


def test_a_forked_child_of_a_killed_holder_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A preprocessing worker orphaned by a killed parent must not block every next run."""
    code = ("import os, signal, time; from agegender import runlock; "
            f"lock = runlock.RunLock({str(tmp_path)!r}, what='preprocessing'); "
            "child = os.fork()\n"
            "if child == 0:\n    time.sleep(60); os._exit(0)\n"
            "print(child, flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    child = int(done.stdout.strip())
    try:
        os.kill(child, 0)  # still alive, holding its copy of the descriptor table
        runlock.RunLock(tmp_path, what="preprocessing").release()
    finally:
        os.kill(child, 9)

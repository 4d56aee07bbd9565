"""The scripts' flags and their one-line errors."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import inference as inference_cli
import preprocess_dataset
import test as test_cli
import train as train_cli
from agegender.cli import parse_bool

SCRIPTS = ["preprocess_dataset.py", "train.py", "test.py", "inference.py",
           "make_demo_dataset.py"]


@pytest.mark.parametrize(("text", "value"), [("True", True), ("true", True), ("1", True),
                                             ("yes", True), ("False", False), ("0", False),
                                             ("no", False), ("OFF", False)])
def test_parse_bool(text, value):
    assert parse_bool(text) is value


def test_parse_bool_rejects_other_text():
    with pytest.raises(argparse.ArgumentTypeError, match="expected True or False, got 'maybe'"):
        parse_bool("maybe")


@pytest.mark.parametrize(("argv", "value"), [([], False), (["--show_live_plot"], True),
                                             (["--show_live_plot=True"], True),
                                             (["--show_live_plot=False"], False),
                                             (["--show_live_plot", "False"], False)])
def test_train_boolean_flag_forms(argv, value):
    args = train_cli.parse_args(["--dataset_dir=d", *argv])
    assert args.show_live_plot is value


def test_boolean_flags_of_every_script():
    assert preprocess_dataset.parse_args(["--dataset_dir", "d", "--overwrite=False"]).overwrite \
        is False
    assert preprocess_dataset.parse_args(["--dataset_dir", "d", "--overwrite"]).overwrite is True
    assert train_cli.parse_args(["--dataset_dir=d", "--show_summary=True"]).show_summary is True
    assert test_cli.parse_args(["--dataset_dir=d", "--model_path=m", "--verbose"]).verbose
    assert inference_cli.parse_args(["--model_path=m", "--audio_file=a", "--verbose=False"]
                                    ).verbose is False


def test_no_script_uses_type_bool():
    for path in [*(ROOT / "src").glob("*.py"), *(ROOT / "src" / "agegender").glob("*.py")]:
        assert not re.search(r"type\s*=\s*bool\s*[,)]", path.read_text()), path


def test_defaults_of_the_original_flags():
    args = train_cli.parse_args(["--dataset_dir=d"])
    assert (args.batch_size, args.learning_rate, args.num_epochs, args.cls_task) == (
        128, 1e-4, 50, "age")


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(ROOT / "src" / script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help(script, tmp_path):
    done = _run(script, "--help", cwd=tmp_path)
    assert done.returncode == 0 and "usage:" in done.stdout


def test_known_errors_are_one_line_without_traceback(tiny_dataset, tmp_path):
    cases = [
        ("train.py", ["--dataset_dir", str(tmp_path), "--cls_task=gender"], "no TFRecord shards"),
        ("train.py", ["--dataset_dir", str(tiny_dataset), "--cls_task=gender",
                      "--image_size=48"], "--image_size=48 does not match"),
        ("test.py", ["--dataset_dir", str(tiny_dataset), "--model_path",
                     str(tmp_path / "none.keras")], "file not found"),
        ("preprocess_dataset.py", ["--dataset_dir", str(tmp_path / "nowhere")],
         "dataset folder not found"),
    ]
    for script, args, needle in cases:
        done = _run(script, *args, cwd=tmp_path)
        assert done.returncode == 2, (script, done.stderr[-2000:])
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and needle in errors[0], (script, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written to the CWD


def test_unknown_choice_is_rejected_by_argparse(tmp_path):
    done = _run("train.py", "--dataset_dir=d", "--cls_task=height", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'height'" in done.stderr

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
from agegender import cli
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


def _option_blocks(help_text: str) -> dict[str, str]:
    """``--help`` text split into one whitespace-normalised block per option."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        match = re.match(r"^  (-\S+)", line)
        if match:
            current = match.group(1).rstrip(",")
            blocks[current] = []
        if current is not None:
            blocks[current].append(line)
    return {name: " ".join(" ".join(lines).split()) for name, lines in blocks.items()}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_the_default_of_every_option(script):
    import importlib

    parser = importlib.import_module(script.removesuffix(".py")).build_parser()
    blocks = _option_blocks(parser.format_help())
    checked = 0
    for action in parser._actions:
        if (not action.option_strings or action.required or action.default is None
                or action.default is argparse.SUPPRESS):
            continue
        block = blocks[action.option_strings[0]]
        assert re.search(rf"\(default:? [^)]*{re.escape(str(action.default))}", block), block
        checked += 1
    assert checked >= 2, script  # every script has at least --verbose and one more


def test_help_shows_the_original_flags_defaults():
    blocks = _option_blocks(train_cli.build_parser().format_help())
    for option, shown in (("--batch_size", "128"), ("--learning_rate", "0.0001"),
                          ("--num_epochs", "50"), ("--cls_task", "age"),
                          ("--save_optimizer", "False")):
        assert f"(default: {shown})" in blocks[option], blocks[option]
    inference_blocks = _option_blocks(inference_cli.build_parser().format_help())
    assert "(default: 1)" in inference_blocks["--top_k"]


def test_keras_progress_is_plain_unless_stdout_is_a_terminal():
    import io  # noqa: PLC0415

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert cli.keras_verbosity(io.StringIO()) == 2  # a pipe or log file: one line an epoch
    assert cli.keras_verbosity(Terminal()) == 1  # a terminal: the bar, redrawn in place
    closed = io.StringIO()
    closed.close()
    assert cli.keras_verbosity(closed) == 2


# -- issue 21 items 7 and 12: numeric flags are finite and in range ---------------------------

_REQUIRED = {train_cli: ["--dataset_dir=nowhere"],
             test_cli: ["--dataset_dir=nowhere", "--model_path=none.keras"],
             inference_cli: ["--model_path=none.keras", "--audio_file=a.wav"],
             preprocess_dataset: ["--dataset_dir=nowhere"]}


@pytest.mark.parametrize(("script", "flag", "expected"), [
    (train_cli, "--l2=nan", "--l2=nan must be a finite number >= 0"),
    (train_cli, "--l2=-inf", "--l2=-inf must be a finite number >= 0"),
    (train_cli, "--learning_rate=nan", "--learning_rate=nan must be a finite number > 0"),
    (train_cli, "--learning_rate=inf", "--learning_rate=inf must be a finite number > 0"),
    (train_cli, "--learning_rate=0", "--learning_rate=0.0 must be a finite number > 0"),
    (train_cli, "--bn_momentum=1", "--bn_momentum=1.0 must be a finite number >= 0 and < 1"),
    (train_cli, "--num_epochs=0", "--num_epochs=0 must be >= 1"),
    (train_cli, "--seed=-1", "--seed=-1 must be >= 0 and <= 4294967295"),
    (train_cli, "--image_size=8", "--image_size=8 must be >= 16 and <= 512"),
    (train_cli, "--early_stopping_patience=-1", "--early_stopping_patience=-1 must be >= 0"),
    (train_cli, "--dense_units=0", "--dense_units=0 must be >= 1"),
    (train_cli, "--image_dropout=1", "--image_dropout=1.0 must be a finite number >= 0 and < 1"),
    (train_cli, "--image_dropout=0.5", "--image_dropout=0.5 needs --pitch_input (it drops the "
                                       "CNN's logits in favour of the voice statistics)"),
    (test_cli, "--batch_size=0", "--batch_size=0 must be >= 1"),
    (inference_cli, "--max_crops=0", "--max_crops=0 must be >= 1 and <= 64"),
    (inference_cli, "--batch_size=-3", "--batch_size=-3 must be >= 1 and <= 4096"),
    (preprocess_dataset, "--shard_size=0", "--shard_size=0 must be >= 1"),
    (preprocess_dataset, "--seed=-5", "--seed=-5 must be >= 0 and <= 4294967295"),
    (preprocess_dataset, "--num_workers=-1", "--num_workers=-1 must be >= 0"),
])
def test_numeric_flags_outside_their_range_are_one_line(script, flag, expected, capsys):
    assert script.main([*_REQUIRED[script], flag]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {expected}"]


def test_test_script_defaults_to_the_shipped_model_like_inference(monkeypatch, capsys, tmp_path):
    """Was: --model_path was required by test.py while inference.py used the shipped model."""
    from agegender import shipped

    seen = {}

    def fake_evaluate(dataset_dir, model_path, task, **kwargs):
        seen["model_path"] = model_path
        return {"text": "report", "paths": {}}

    import agegender.evaluation

    monkeypatch.setattr(agegender.evaluation, "evaluate", fake_evaluate)
    assert test_cli.main(["--dataset_dir=d"]) == 0
    assert seen["model_path"] == str(shipped.pretrained_path("gender"))
    monkeypatch.setattr(shipped, "pretrained_dir", lambda: tmp_path)
    assert test_cli.main(["--dataset_dir=d", "--cls_task=age"]) == 2
    err = capsys.readouterr().err
    assert "no --model_path given and no pretrained age model" in err

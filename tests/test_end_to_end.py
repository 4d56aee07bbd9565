"""The original project's four commands, exactly as written, on a tiny 'clean' corpus."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from conftest import ROOT
from synth import voice, write_csv

from agegender.labels import AGES, GENDERS

COMMANDS = [
    "python src/preprocess_dataset.py --dataset_dir='data/CommonVoice/' --dataset_type='clean'",
    "python src/train.py --dataset_dir='data/CommonVoice' --cls_task='age' --num_epochs=20 "
    "--show_live_plot=True",
    "python src/test.py --dataset_dir='data/CommonVoice' "
    "--model_path='models/age/best_model_age.keras' --cls_task='age'",
    "python src/inference.py --model_path='models/age/best_model_age.keras' "
    "--audio_file='data/CommonVoice/Audio/cv-valid-test/sample-000001.mp3' --cls_task='age'",
]


def make_clean_corpus(root: Path) -> None:
    """The original project's layout: Audio/cv-valid-{split}.csv + Audio/cv-valid-{split}/."""
    audio = root / "Audio"
    seed = 100
    for split, count in (("train", 2), ("dev", 1), ("test", 1)):
        name = f"cv-valid-{split}"
        (audio / name).mkdir(parents=True)
        rows = []
        for gender in GENDERS:
            for age in AGES:
                for _ in range(count):
                    file = f"sample-{len(rows):06d}.mp3"
                    sf.write(audio / name / file, voice(gender, age, seed=seed, rate=48_000),
                             48_000, format="MP3")
                    # The original CSVs keep the folder prefix on some rows and not others.
                    rows.append([f"{name}/{file}" if seed % 2 else file, "hi", "1", "0", age,
                                 gender, "", ""])
                    seed += 1
        write_csv(audio / f"{name}.csv", rows)


@pytest.mark.slow
def test_original_commands_work_as_written(tmp_path):
    (tmp_path / "src").symlink_to(ROOT / "src")
    make_clean_corpus(tmp_path / "data" / "CommonVoice")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISPLAY")}
    env["MPLBACKEND"] = "Agg"
    outputs = []
    for command in COMMANDS:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
        # A redirected log holds plain lines: no progress-bar redraws (Keras, tqdm), no ANSI
        # codes. (TensorFlow's own import notices may be there: docs/architecture.md.)
        for stream in (done.stdout, done.stderr):
            assert "\r" not in stream and "\x1b[" not in stream, f"{command}\n{stream[-2000:]}"
    assert (tmp_path / "models" / "age" / "best_model_age.keras").is_file()
    assert (tmp_path / "models" / "age" / "best_model_age.h5").is_file()
    reports = tmp_path / "results" / "age" / "best_model_age"  # the model's own folder
    log = pd.read_csv(reports / "train_logs_age.csv")
    assert len(log) == 20
    for name in ("training_metrics_age.png", "test_log_age.txt", "confusion_matrix_age.png",
                 "predictions_age.csv"):
        assert (reports / name).is_file(), name
    assert "balanced accuracy (UAR)" in outputs[2]
    assert "Epoch 20/20" in outputs[1]  # Keras' plain per-epoch lines
    assert (tmp_path / "results" / "CommonVoice" / "preprocess_report.csv").is_file()
    first_line = outputs[3].splitlines()[0]
    assert first_line.startswith("data/CommonVoice/Audio/cv-valid-test/sample-000001.mp3: ")
    assert first_line.split(": ")[1].split(" ")[0] in AGES
    # Nothing stray in the working directory, and the user's audio is untouched.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "models", "results", "src"]
    assert sorted(p.name for p in (tmp_path / "data" / "CommonVoice").iterdir()) == [
        "Audio", "Manifest", "Spectrograms", "TFRecord"]

"""Where the shipped models are: ``models/pretrained/<task>.keras`` beside this package.

The lookup ``AgeGenderDetector`` uses when no model is given. Making and checking the
shipped files (float16 storage, reference probabilities) is ``pretrained.py``, which scores
clips through ``AgeGenderDetector`` and so sits above ``inference.py``; this lookup sits
below it. TF-free.
"""

from __future__ import annotations

from pathlib import Path

from agegender import labels
from agegender.errors import ModelError


def pretrained_dir() -> Path:
    """``models/pretrained/`` of the repository this package sits in (``src/agegender``)."""
    return Path(__file__).resolve().parents[2] / "models" / "pretrained"


def pretrained_path(task: str | None) -> Path:
    """The shipped model for ``task`` (None: ``gender``).

    Raises:
        ModelError: no shipped model for the task (names the file and how to make it).
    """
    task = task or "gender"
    labels.class_names(task)  # ParameterError for an unknown task
    path = pretrained_dir() / f"{task}.keras"
    if not path.is_file():
        shipped = sorted(p.stem for p in pretrained_dir().glob("*.keras"))
        raise ModelError(
            f"no --model_path given and no pretrained {task} model at {path} (shipped: "
            f"{', '.join(shipped) or 'none'}); pass --model_path, or build one with "
            "scripts/build_pretrained.sh")
    return path

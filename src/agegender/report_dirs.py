"""Where a model's reports go: ``RESULTS/<task>/<model name>/``, one folder per model.

Training (log, curves, dev-split warnings, TensorBoard) and testing (log, figures,
predictions) of ``models/gender/best_model_gender.keras`` both write
``results/gender/best_model_gender/``; a test of the shipped ``models/pretrained/gender.keras``
writes ``results/gender/gender/``. So the demo's training curves and a later test of another
model never share a folder, and nothing needs an ``--overwrite``: retraining or retesting the
same model replaces its own reports, as before.

Two different model files can share a name (``a/gender.keras``, ``b/gender.keras``). The first
to write a folder claims it in ``model.txt`` (the model's path without suffix, relative to the
folder, so moving the whole project keeps the claim); another model is then refused with one
line instead of mixing its reports in. A model's ``.keras`` and ``.h5`` are the same model.

Not per model, on purpose: the dataset's reports (``results/<dataset folder>/``, made by
preprocessing) and the median-F0 cache of the pitch baseline (``results/cache/``,
``pitch.results_cache_path``): a clip's F0 does not depend on the model, so every model's
test reuses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from agegender import atomic
from agegender.errors import OutputError

CLAIM_FILE = "model.txt"  # in each report folder: which model writes there
MODEL_SUFFIXES = (".keras", ".h5")


def model_name(model_path: str | os.PathLike) -> str:
    """A model file's name without ``.keras``/``.h5`` (a SavedModel folder: its name).

    Example:
        >>> model_name("models/gender/best_model_gender.keras")
        'best_model_gender'
    """
    name = Path(model_path).name
    for suffix in MODEL_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def report_dir(results_dir: str | os.PathLike, task: str, model_path: str | os.PathLike) -> Path:
    """``results_dir/<task>/<model_name(model_path)>``: the folder of one model's reports
    (not created; ``claim`` creates and checks it).

    Example:
        >>> report_dir("results", "gender", "models/pretrained/gender.keras").as_posix()
        'results/gender/gender'
    """
    return Path(results_dir) / task / model_name(model_path)


def _claim_text(folder: Path, model_path: str | os.PathLike) -> str:
    stem = Path(os.path.abspath(model_path)).with_name(model_name(model_path))
    return Path(os.path.relpath(stem, os.path.abspath(folder))).as_posix()


def claim(results_dir: str | os.PathLike, task: str, model_path: str | os.PathLike) -> Path:
    """Creates ``report_dir(...)`` for ``model_path``, or checks that it is this model's.

    Returns:
        The folder.

    Raises:
        OutputError: the folder holds the reports of another model with the same name
            (names both), or cannot be written.
    """
    folder = report_dir(results_dir, task, model_path)
    wanted = _claim_text(folder, model_path)
    mark = folder / CLAIM_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stored = mark.read_text(encoding="utf-8").strip() if mark.is_file() else None
        if stored is None:
            atomic.write_text(mark, wanted + "\n")
    except OSError as err:
        raise OutputError(f"--results_dir: cannot write {folder} ({err.strerror or err})") from err
    if stored is not None and stored != wanted:
        raise OutputError(
            f"{folder} holds the reports of another model with the same name ({stored} from "
            f"there, per {CLAIM_FILE}), not of {model_path}: pass another --results_dir, or "
            "rename one of the models")
    return folder

"""The models the repository ships (``models/pretrained/``), trained on real Common Voice
speakers, and the tools that make and check them.

``inference.py`` and ``AgeGenderDetector`` use ``pretrained_path(task)`` when no model is
given. The files are ordinary ``.keras`` models (``keras.models.load_model`` opens them after
``import agegender``) whose weights are stored as float16 (half the bytes; the network still
computes in float32) unless that moves a probability on the test clips by more than
``FLOAT16_TOLERANCE``; then as float32, within ``SHIP_BUDGET_BYTES`` for all of them.
``reference.json`` beside them records each model's probabilities on a few CC0 Common Voice
clips shipped in ``models/pretrained/clips/``, so a test catches a changed or damaged file.
``scripts/build_pretrained.sh`` rebuilds everything from a Common Voice ``manifest`` folder
(see ``models/pretrained/README.md``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agegender import atomic
from agegender.errors import ModelError

log = logging.getLogger(__name__)

FLOAT16_TOLERANCE = 1e-3  # largest change of any probability that float16 storage may cause
SHIP_BUDGET_BYTES = 40_000_000  # all shipped models together (float32 only where float16 fails)
REFERENCE_NAME = "reference.json"
WEIGHTS_MEMBER = "model.weights.h5"  # where a .keras zip keeps the weights


def pretrained_dir() -> Path:
    """``models/pretrained/`` of the repository this package sits in (``src/agegender``)."""
    return Path(__file__).resolve().parents[2] / "models" / "pretrained"


def pretrained_path(task: str | None) -> Path:
    """The shipped model for ``task`` (None: ``gender``).

    Raises:
        ModelError: no shipped model for the task (names the file and how to make it).
    """
    from agegender import labels  # noqa: PLC0415

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


def _halved_weights(data: bytes) -> bytes:
    """A ``model.weights.h5`` (bytes) with every float32 dataset stored as float16."""
    import h5py  # noqa: PLC0415

    out = io.BytesIO()
    with h5py.File(io.BytesIO(data), "r") as source, h5py.File(out, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value

        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                array = item[()]
                if array.dtype == np.float32:
                    array = array.astype(np.float16)
                target.create_dataset(name, data=array)
            else:
                target.require_group(name)
            for key, value in item.attrs.items():
                target[name].attrs[key] = value

        source.visititems(copy)
    return out.getvalue()


def store_float16(source: str | os.PathLike, target: str | os.PathLike,
                  check_inputs=None) -> dict:
    """Writes ``source`` (a ``.keras`` model) to ``target`` with float16 weights.

    The weights are rounded to float16 first, so the digest stored inside the file
    (``checkpoints.verify_weights``) describes what Keras loads back (float32 variables
    holding float16 values). Written atomically, with a ``.sha256`` sidecar.

    Args:
        source: the trained model.
        target: the ``.keras`` file to write.
        check_inputs: model inputs (as ``model.predict`` takes them) on which the two must
            agree within ``FLOAT16_TOLERANCE``; None: 16 random images (and voice statistics).

    Returns:
        ``largest_change`` (of any probability on ``check_inputs``), ``bytes`` (the file's
        size) and ``float32_bytes`` (the source's).

    Raises:
        ModelError: a probability moves by more than ``FLOAT16_TOLERANCE``.
    """
    import keras  # noqa: PLC0415

    from agegender.checkpoints import load_model, model_features, save_keras  # noqa: PLC0415
    from agegender.model import input_kinds  # noqa: PLC0415
    from agegender.model_inputs import feed, random_inputs  # noqa: PLC0415

    model = load_model(source)
    if check_inputs is None:
        check_inputs = feed(model, random_inputs(input_kinds(model), model_features(model), 16))
    before = model.predict(check_inputs, verbose=0)
    model.set_weights([w.astype(np.float16).astype(w.dtype) if w.dtype == np.float32 else w
                       for w in model.get_weights()])
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing_checksummed(target) as tmp:
        save_keras(model, tmp)
        with zipfile.ZipFile(tmp) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        members[WEIGHTS_MEMBER] = _halved_weights(members[WEIGHTS_MEMBER])
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        halved = keras.models.load_model(tmp, compile=False, safe_mode=True)
        change = float(np.max(np.abs(halved.predict(check_inputs, verbose=0) - before)))
        if change > FLOAT16_TOLERANCE:
            raise ModelError(f"{source}: float16 weights move a probability by {change:.2e}, "
                             f"more than {FLOAT16_TOLERANCE}; ship it as float32")
    return {"largest_change": change, "bytes": target.stat().st_size,
            "float32_bytes": Path(source).stat().st_size}


def largest_change_on_clips(first: str | os.PathLike, second: str | os.PathLike,
                            clips: Sequence[str | os.PathLike]) -> float:
    """The largest difference of any class probability between two models on ``clips``,
    as ``AgeGenderDetector`` scores them (clips it cannot score are left out)."""
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415

    files = [os.fspath(c) for c in clips]
    one, two = (AgeGenderDetector(m).predict_files(files) for m in (first, second))
    changes = [abs(a["probabilities"][k] - b["probabilities"][k])
               for a, b in zip(one, two, strict=True) if not a["error"]
               for k in a["probabilities"]]
    return max(changes, default=0.0)


def ship(source: str | os.PathLike, task: str, clips: Sequence[str | os.PathLike],
         folder: str | os.PathLike | None = None) -> dict:
    """Stores ``source`` as ``folder/<task>.keras`` (default: the repository's
    ``models/pretrained/``): with float16 weights when every probability on ``clips`` (the
    test split) stays within ``FLOAT16_TOLERANCE`` of the float32 model's, else as it is
    (float32), provided all shipped models together stay within ``SHIP_BUDGET_BYTES``.

    Returns:
        ``bytes`` (the shipped file's), ``float32_bytes`` (the source's), ``dtype``
        (``float16`` or ``float32``), ``largest_change_on_clips`` (of the float16 copy) and
        ``clips``.

    Raises:
        ModelError: the shipped models would exceed ``SHIP_BUDGET_BYTES``; nothing is
            replaced then.
    """
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    folder = Path(folder or pretrained_dir())
    target = folder / f"{task}.keras"
    with tempfile.TemporaryDirectory() as scratch:
        candidate, dtype = Path(scratch) / target.name, "float16"
        try:
            store_float16(source, candidate)
            change = largest_change_on_clips(source, candidate, clips)
        except ModelError as err:  # float16 moved a probability of the random check inputs
            log.warning("%s", err)
            change = float("inf")
        if change > FLOAT16_TOLERANCE:
            log.warning("%s: float16 weights move a probability on the test clips by %.2e, "
                        "more than %s: shipped as float32", source, change, FLOAT16_TOLERANCE)
            candidate, dtype = Path(source), "float32"
        others = sum(p.stat().st_size for p in folder.glob("*.keras") if p.name != target.name)
        size = candidate.stat().st_size
        if others + size > SHIP_BUDGET_BYTES:
            raise ModelError(
                f"{source}: {size / 1e6:.1f} MB as {dtype} (with the {others / 1e6:.1f} MB "
                f"shipped beside it) is over the {SHIP_BUDGET_BYTES / 1e6:.0f} MB for all "
                "shipped models; not shipped")
        with atomic.replacing_checksummed(target) as tmp:
            shutil.copyfile(candidate, tmp)
    return {"bytes": size, "float32_bytes": Path(source).stat().st_size, "dtype": dtype,
            "largest_change_on_clips": change, "clips": len(clips)}


def reference_probabilities(model_path: str | os.PathLike, clips: Sequence[str | os.PathLike],
                            ) -> dict[str, dict[str, float]]:
    """``{clip file name: {class: probability}}`` of a model on ``clips``, as
    ``AgeGenderDetector`` computes them (the values ``reference.json`` records)."""
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415

    detector = AgeGenderDetector(model_path)
    results = detector.predict_files([os.fspath(c) for c in clips])
    bad = [r for r in results if r["error"]]
    if bad:
        raise ModelError(f"reference clip {bad[0]['file']}: {bad[0]['error']}")
    return {Path(r["file"]).name: r["probabilities"] for r in results}


def write_reference(folder: str | os.PathLike, tasks: Sequence[str]) -> Path:
    """Records the shipped models' probabilities on the clips in ``folder/clips/`` in
    ``folder/reference.json`` (with each model's SHA-256)."""
    folder = Path(folder)
    clips = sorted(p for p in (folder / "clips").iterdir() if p.is_file())
    content = {}
    for task in tasks:
        path = folder / f"{task}.keras"
        content[task] = {"model": path.name, "sha256": atomic.sha256_file(path),
                         "probabilities": reference_probabilities(path, clips)}
    target = folder / REFERENCE_NAME
    atomic.write_text(target, json.dumps(content, indent=2) + "\n")
    return target


def read_reference(folder: str | os.PathLike | None = None) -> dict:
    """The recorded reference probabilities (``write_reference``'s file)."""
    path = Path(folder or pretrained_dir()) / REFERENCE_NAME
    return json.loads(path.read_text())

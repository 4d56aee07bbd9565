"""The models the repository ships (``models/pretrained/``), trained on real Common Voice
speakers, and the tools that make and check them.

Where they are (``shipped.pretrained_path(task)``, which ``AgeGenderDetector`` uses when no
model is given) is ``shipped.py``; this module makes and checks them through
``AgeGenderDetector``, so it sits above ``inference.py``. The files are ordinary ``.keras`` models (``keras.models.load_model`` opens them after
``import agegender``), within ``SHIP_BUDGET_BYTES`` for all of them.
``reference.json`` beside them records each model's probabilities on a few CC0 Common Voice
clips shipped in ``models/pretrained/clips/``, so a test catches a changed or damaged file.
``scripts/build_pretrained.sh`` rebuilds everything from a Common Voice ``manifest`` folder
(see ``models/pretrained/README.md``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from agegender import atomic, shipped
from agegender.errors import ModelError

log = logging.getLogger(__name__)

SHIP_BUDGET_BYTES = 40_000_000  # all shipped models together
REFERENCE_NAME = "reference.json"


def ship(source: str | os.PathLike, task: str,
         folder: str | os.PathLike | None = None) -> dict:
    """Stores ``source`` as ``folder/<task>.keras`` (default: the repository's
    ``models/pretrained/``), atomically, with a ``.sha256`` sidecar, provided all shipped
    models together stay within ``SHIP_BUDGET_BYTES``.

    The file is shipped as trained (float32). Storing the weights as float16 halved a 35 MB
    MAM-CNN; the shipped models are now a few kB (the gender model: 2.8 kB), where it saved
    about 200 bytes for a zip rewrite of its own, so it was dropped.

    Returns:
        ``bytes`` (the shipped file's size).

    Raises:
        ModelError: the shipped models would exceed ``SHIP_BUDGET_BYTES``; nothing is
            replaced then.
    """
    import shutil  # noqa: PLC0415

    folder = Path(folder or shipped.pretrained_dir())
    target = folder / f"{task}.keras"
    others = sum(p.stat().st_size for p in folder.glob("*.keras") if p.name != target.name)
    size = Path(source).stat().st_size
    if others + size > SHIP_BUDGET_BYTES:
        raise ModelError(
            f"{source}: {size / 1e6:.1f} MB (with the {others / 1e6:.1f} MB shipped beside "
            f"it) is over the {SHIP_BUDGET_BYTES / 1e6:.0f} MB for all shipped models; not "
            "shipped")
    with atomic.replacing_checksummed(target) as tmp:
        shutil.copyfile(source, tmp)
    return {"bytes": size}


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
    path = Path(folder or shipped.pretrained_dir()) / REFERENCE_NAME
    return json.loads(path.read_text())

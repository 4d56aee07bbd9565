"""Labelling audio files with a trained model.

Example:
    >>> from agegender import AgeGenderDetector
    >>> detector = AgeGenderDetector("models/age/best_model_age.keras")
    >>> detector.predict(["a.mp3", "b.wav"])[0]["label"]        # doctest: +SKIP
    'twenties'
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agegender.checkpoints import open_model
from agegender.errors import AudioError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au")


def expand_audio_paths(items: Iterable[str]) -> list[str]:
    """Expands files, globs and folders (searched recursively) into audio file paths.

    A name that matches nothing is kept, so that it is reported as missing.
    """
    paths: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*")
                           if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            paths += found
        elif glob.has_magic(item):
            paths += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            paths.append(item)
    return list(dict.fromkeys(paths))


class AgeGenderDetector:
    """Labels audio files with a trained model, loaded once.

    Clips go through ``features.clip_image`` (the preprocessing function) in a thread pool,
    and through the model in batches.

    Args:
        model_path: ``.keras``/``.h5`` file or SavedModel folder.
        task: expected task; None reads it from the model.
        batch_size: clips per model call.
        num_threads: feature threads (default: all cores).
        precision: ``float32`` or ``bfloat16`` (see ``open_model``).
    """

    def __init__(self, model_path: str | os.PathLike, task: str | None = None, *,
                 batch_size: int = 64, num_threads: int | None = None,
                 precision: str = "float32"):
        self.model = open_model(model_path, task, precision=precision)
        self.batch_size = batch_size
        self.num_threads = num_threads or os.cpu_count() or 1

    @property
    def task(self) -> str:
        """The model's task."""
        return self.model.task

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names, index = label code."""
        return self.model.class_names

    def _image(self, path: str) -> np.ndarray | AudioError:
        from agegender.features import clip_image  # noqa: PLC0415

        try:
            return clip_image(path, self.model.features)
        except AudioError as err:
            return err

    def predict(self, audio_files: Sequence[str | os.PathLike]) -> list[dict]:
        """Predicts each file's class.

        Args:
            audio_files: audio paths (any format libsndfile reads, any rate, mono/stereo).

        Returns:
            One dict per file, in order: ``file``, ``label``, ``probability`` (of the label),
            ``probabilities`` ({class name: probability}) and ``error`` (None, or why the
            file could not be predicted, in which case the label is None).
        """
        files = [os.fspath(f) for f in audio_files]
        results: list[dict] = []
        with ThreadPoolExecutor(self.num_threads) as pool:
            for start in range(0, len(files), self.batch_size):
                chunk = files[start:start + self.batch_size]
                images = list(pool.map(self._image, chunk))
                good = [i for i, image in enumerate(images) if isinstance(image, np.ndarray)]
                probabilities = (self.model.predict(np.stack([images[i] for i in good])
                                                    .astype(np.float32)) if good else [])
                by_index = dict(zip(good, probabilities, strict=True))
                for i, path in enumerate(chunk):
                    results.append(self._result(path, by_index.get(i), images[i]))
        return results

    def _result(self, path: str, probabilities, image) -> dict:
        if probabilities is None:
            return {"file": path, "label": None, "probability": None, "probabilities": {},
                    "error": str(image)}
        best = int(np.argmax(probabilities))
        return {"file": path, "label": self.class_names[best],
                "probability": float(probabilities[best]),
                "probabilities": {name: float(p) for name, p in
                                  zip(self.class_names, probabilities, strict=True)},
                "error": None}

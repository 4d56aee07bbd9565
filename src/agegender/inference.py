"""Labelling audio files with a trained model.

Example:
    >>> from agegender import AgeGenderDetector
    >>> detector = AgeGenderDetector("models/age/best_model_age.keras")
    >>> detector.predict(["a.mp3", "b.wav"])[0]["label"]        # doctest: +SKIP
    'twenties'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from agegender.audio_paths import (  # noqa: F401  (AUDIO_SUFFIXES: re-exported)
    AUDIO_SUFFIXES,
    expand_audio_paths,
    input_problem,
)
from agegender.checkpoints import open_model
from agegender.errors import AudioError, ParameterError

log = logging.getLogger(__name__)

# Crops averaged per clip by default (voice models); test.py scores the same (--max_crops).
DEFAULT_MAX_CROPS = 3


# Memory the model's input batch may take (float32 images: batch_size x max_crops crops):
# argument values that would need more are refused before anything is allocated.
INPUT_BUDGET_BYTES = 2 << 30
MAX_BATCH_SIZE = 4096
MAX_CROPS = 64


def _is_count(value) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_detector_args(batch_size, num_threads, precision, max_crops=1) -> None:
    """ParameterError naming the argument and its value, before the model is loaded."""
    from agegender.checkpoints import PRECISIONS  # noqa: PLC0415
    from agegender.errors import ParameterError  # noqa: PLC0415

    if not _is_count(batch_size) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ParameterError(f"batch_size={batch_size!r} must be an integer from 1 to "
                             f"{MAX_BATCH_SIZE}")
    if not _is_count(max_crops) or not 1 <= max_crops <= MAX_CROPS:
        raise ParameterError(f"max_crops={max_crops!r} must be an integer from 1 to "
                             f"{MAX_CROPS}")
    if num_threads is not None and (isinstance(num_threads, bool)
                                    or not isinstance(num_threads, int) or num_threads < 1):
        raise ParameterError(f"num_threads={num_threads!r} must be an integer >= 1 (or None: "
                             "all cores)")
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")


def check_input_budget(batch_size: int, max_crops: int, features) -> None:
    """Refuses a ``batch_size`` x ``max_crops`` whose float32 model input would exceed
    ``INPUT_BUDGET_BYTES`` (``features``: the model's FeatureParams; None: no image).

    Raises:
        ParameterError: one line naming both arguments, the bytes and the budget.
    """
    if features is None:
        return
    height, width = features.image_shape[:2]
    needed = batch_size * max_crops * height * width * 3 * 4
    if needed > INPUT_BUDGET_BYTES:
        raise ParameterError(
            f"batch_size={batch_size} x max_crops={max_crops} would need "
            f"{needed / 2**30:.1f} GiB for one model batch of {height}x{width} images, over "
            f"the {INPUT_BUDGET_BYTES / 2**30:.0f} GiB budget: lower batch_size")


def path_list(items, argument: str, *, one: bool = False) -> list[str]:
    """``items`` (one path or a sequence of them) as a list of ``str`` paths.

    Raises:
        ParameterError: a numeric array (a waveform is not a list of paths: each sample
            would be taken for a file name), or an item that is not a path (a sample, a
            tensor); one line naming ``argument``. An array or Series of path strings is
            a sequence of paths.
    """
    in_memory = ("pass file paths; in-memory audio: write it to a WAV first, e.g. "
                 "soundfile.write('clip.wav', waveform, sample_rate)")
    if isinstance(items, np.ndarray) and items.dtype.kind not in "USO":  # not paths
        raise ParameterError(f"{argument}: got an array of shape {items.shape}, not file "
                             f"paths; {in_memory}")
    if isinstance(items, (str, bytes, os.PathLike)):  # one path, not its letters
        items = [items]
    elif one:
        raise ParameterError(f"{argument}: expected one file path, got "
                             f"{type(items).__name__}; {in_memory}")
    paths = []
    for item in items:
        if not isinstance(item, (str, bytes, os.PathLike)):
            raise ParameterError(f"{argument}: expected file paths, got an item of type "
                                 f"{type(item).__name__} ({str(item)[:40]}); {in_memory}")
        paths.append(str(os.fsdecode(item)))
    return paths


class AgeGenderDetector:
    """Labels audio files with a trained model, loaded once.

    Clips go through ``features.clip_image`` (the preprocessing function) in a thread pool,
    and through the model in batches.

    Args:
        model_path: ``.keras``/``.h5`` file or SavedModel folder; None = the model the
            repository ships for ``task`` (``pretrained.pretrained_path``: gender when
            ``task`` is None too).
        task: expected task; None reads it from the model.
        batch_size: clips per model call.
        num_threads: feature threads (default: all cores).
        precision: ``float32`` or ``bfloat16`` (see ``open_model``).
        max_crops: for models whose features have a constant time scale (``voice``), a
            clip longer than one image is cut into up to this many crops spread over it,
            and the crops' probabilities are averaged. 1 = the centre crop only, the one
            training stored. Paper models always see the whole clip in one image.
        verify: check the model file against its ``.sha256`` sidecar (see ``load_model``).
        min_voiced: the speech gate (``agegender.speech``): a file with fewer voiced frames
            than this share gets no label but ``no speech``; 0 = no gate. Files shorter than
            the preset's ``min_duration_s`` are refused as well when the gate is on.

    Raises:
        ParameterError: batch_size (1-4096), max_crops (1-64) or num_threads not an integer
            in range, unknown precision, or batch_size x max_crops images over the input
            budget (``INPUT_BUDGET_BYTES``).
        ModelError: the model cannot be loaded or does not fit ``task``.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, task: str | None = None, *,
                 batch_size: int = 64, num_threads: int | None = None,
                 precision: str = "float32", verify: bool = True,
                 max_crops: int = DEFAULT_MAX_CROPS, min_voiced: float = 0.1):
        from agegender.config import check_min_voiced  # noqa: PLC0415

        _check_detector_args(batch_size, num_threads, precision, max_crops)
        self.min_voiced = check_min_voiced(min_voiced)
        if model_path is None:
            from agegender.shipped import pretrained_path  # noqa: PLC0415

            model_path = pretrained_path(task)
        model = open_model(model_path, task, precision=precision, verify=verify)
        images = "spectrogram" in model.inputs
        check_input_budget(batch_size, max_crops, model.features if images else None)
        self._setup(model, batch_size=batch_size, num_threads=num_threads,
                    max_crops=int(max_crops))

    def _setup(self, model, *, batch_size: int, num_threads: int | None,
               max_crops: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.num_threads = num_threads or os.cpu_count() or 1
        self.max_crops = max_crops

    @classmethod
    def from_model(cls, model, *, batch_size: int = 64, num_threads: int | None = None,
                   max_crops: int | None = None,
                   min_voiced: float = 0.1) -> AgeGenderDetector:
        """A detector around an already opened ``checkpoints.LoadedModel`` (the test step
        uses it so that it scores exactly what inference ships, without loading twice).
        ``max_crops`` None: ``DEFAULT_MAX_CROPS``, as the constructor."""
        from agegender.config import check_min_voiced  # noqa: PLC0415

        max_crops = DEFAULT_MAX_CROPS if max_crops is None else max_crops

        _check_detector_args(batch_size, num_threads, "float32")
        if max_crops < 1:
            raise ParameterError(f"max_crops={max_crops} must be >= 1")
        detector = cls.__new__(cls)
        detector.min_voiced = check_min_voiced(min_voiced)
        detector._setup(model, batch_size=batch_size, num_threads=num_threads,
                        max_crops=max_crops)
        return detector

    def scoring(self) -> str:
        """How a clip's probabilities are made, in words (the test report prints it)."""
        if "spectrogram" not in self.model.inputs:
            read = {"pitch": "voice statistics", "embedding": "speaker embedding"}
            return (f"the whole clip's {' and '.join(read[k] for k in self.model.inputs)} "
                    "(no image)")
        if self.model.features.fixed_time and self.max_crops > 1:
            return (f"mean over up to {self.max_crops} crops per clip, spread over the clip "
                    f"(max_crops={self.max_crops}, as AgeGenderDetector)")
        if self.model.features.fixed_time:
            return "the centre crop of each clip (max_crops=1, as AgeGenderDetector)"
        return "one image of the whole clip (as AgeGenderDetector)"

    @property
    def task(self) -> str:
        """The model's task."""
        return self.model.task

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names, index = label code."""
        return self.model.class_names

    def _inputs(self, paths: Sequence[str], pool) -> list[dict[str, np.ndarray] | AudioError]:
        """Each clip's model inputs ({kind: [crops, ...]}, ``model_inputs.files_inputs``,
        decoding in ``pool``'s threads), or why it has none."""
        from agegender.model_inputs import files_inputs  # noqa: PLC0415

        problems = [input_problem(path) for path in paths]
        readable = [path for path, problem in zip(paths, problems, strict=True) if not problem]
        made = iter(files_inputs(readable, self.model.features, self.model.inputs,
                                 max_crops=self.max_crops, min_voiced=self.min_voiced,
                                 map_fn=pool.map))
        return [AudioError(problem) if problem else next(made) for problem in problems]

    def predict(self, audio_files: str | os.PathLike | Sequence[str | os.PathLike]
                ) -> list[dict]:
        """Predicts each file's class.

        Args:
            audio_files: one path, or a sequence of them: audio files (any format libsndfile
                reads, any rate, mono/stereo), folders (searched recursively) and globs,
                each expanded in place (``expand_audio_paths``); a file named twice is
                predicted twice. Not a waveform: write in-memory audio to a file first.

        Returns:
            One dict per file, in order (``zip(files, results)`` pairs them when no folder
            or glob is among them): ``file``, ``label``, ``probability`` (of the label),
            ``probabilities`` ({class name: probability}), ``error`` (None, or why the
            file could not be predicted, in which case the label is None) and ``speech``
            (False when the speech gate found no voice: ``voiced`` then holds the share of
            voiced frames and ``error`` says "no speech: ..."; True otherwise).
        """
        audio_files = path_list(audio_files, "audio_files")
        return self.predict_files(expand_audio_paths(audio_files, unique=False))

    def predict_files(self, files: Sequence[str]) -> list[dict]:
        """Predicts exactly ``files``, in order, one result each (as ``predict``'s), with
        no folder or glob expansion and no merging of repeats: the test step keeps its rows
        aligned with a table's this way."""
        results: list[dict] = []
        with ThreadPoolExecutor(self.num_threads) as pool:
            for start in range(0, len(files), self.batch_size):
                chunk = files[start:start + self.batch_size]
                inputs = self._inputs(chunk, pool)
                good = [i for i, made in enumerate(inputs) if isinstance(made, dict)]
                probabilities = self._crop_average([inputs[i] for i in good])
                by_index = dict(zip(good, probabilities, strict=True))
                for i, path in enumerate(chunk):
                    results.append(self._result(path, by_index.get(i), inputs[i]))
        return results

    def timeline(self, path: str | os.PathLike, params=None, *,
                 more: Sequence[AgeGenderDetector] = ()) -> dict:
        """Who speaks when in a recording of any length: segments covering it, each with a
        speaker (``S1``, ``S2``, ...) and a class of the model, or ``no speech`` (see
        ``agegender.timeline``).

        Args:
            path: one audio file.
            params: ``timeline.TimelineParams``; None = defaults.
            more: detectors of further tasks (the shipped age model beside the gender one),
                run on the same windows; their labels go to ``Segment.more``.

        Returns:
            ``file``, ``duration`` (s), ``segments`` (``timeline.Segment``: start, end,
            label, probability, speaker, more), ``speakers`` (one row per speaker: speech
            seconds, gender, age and their probabilities), ``voiced`` (share of voiced
            frames), ``windows``.

        Raises:
            AudioError: the file cannot be decoded.
            ParameterError: ``path`` is not a path (a waveform, say).
        """
        from agegender import timeline  # noqa: PLC0415

        (path,) = path_list(path, "path", one=True)
        return timeline.timeline(self.model, path, params, batch_size=self.batch_size,
                                 more_models=[detector.model for detector in more])

    def _crop_average(self, inputs: list[dict[str, np.ndarray]]) -> np.ndarray:
        """Predicts every crop of every clip in one batch; each clip's probabilities are
        the mean over its crops. [clips] of {kind: [crops, ...]} → [clips, classes]."""
        from agegender.model_inputs import crop_count, stack  # noqa: PLC0415

        if not inputs:
            return np.zeros((0, len(self.class_names)), np.float32)
        counts = [crop_count(clip) for clip in inputs]
        probabilities = self.model.predict(stack(inputs))
        owner = np.repeat(np.arange(len(inputs)), counts)  # [all crops] → clip
        sums = np.zeros((len(inputs), probabilities.shape[1]), np.float64)
        np.add.at(sums, owner, probabilities)
        return (sums / np.asarray(counts)[:, np.newaxis]).astype(np.float32)

    def _result(self, path: str, probabilities, image) -> dict:
        from agegender.speech import NoSpeechError  # noqa: PLC0415

        if probabilities is None:
            no_speech = isinstance(image, NoSpeechError)
            return {"file": path, "label": None, "probability": None, "probabilities": {},
                    "error": str(image), "speech": not no_speech,
                    "voiced": image.voiced if no_speech else None}
        best = int(np.argmax(probabilities))
        return {"file": path, "label": self.class_names[best],
                "probability": float(probabilities[best]),
                "probabilities": {name: float(p) for name, p in
                                  zip(self.class_names, probabilities, strict=True)},
                "error": None, "speech": True, "voiced": None}

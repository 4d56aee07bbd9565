"""Loading trained models and labelling audio files.

Example:
    >>> from agegender import AgeGenderDetector
    >>> detector = AgeGenderDetector("models/age/best_model_age.keras")
    >>> detector.predict(["a.mp3", "b.wav"])[0]["label"]        # doctest: +SKIP
    'twenties'
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agegender import labels
from agegender.config import FeatureParams
from agegender.errors import AudioError, ModelError, ParameterError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au")


def load_model(path: str | os.PathLike):
    """Loads a ``.keras`` or ``.h5`` model with Keras safe mode on.

    Raises:
        ModelError: missing file, unsupported suffix, or a file Keras cannot load.
    """
    import keras  # noqa: PLC0415

    import agegender.layers  # noqa: F401,PLC0415  (registers the custom layers)

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--model_path={path}: file not found")
    if path.suffix not in (".keras", ".h5"):
        raise ModelError(f"--model_path={path}: expected a .keras or .h5 file or a SavedModel "
                         "folder")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError) as err:
        raise ModelError(f"--model_path={path}: cannot be loaded ({err})") from err


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict, whatever its file format.

    Attributes:
        path: where it was loaded from.
        task: the task it was trained for.
        class_names: one per output.
        features: how its input images are computed.
        predict: float32 [batch, H, W, 3] in 0-255 → probabilities [batch, classes].
    """

    path: str
    task: str
    class_names: tuple[str, ...]
    features: FeatureParams
    predict: Callable[[np.ndarray], np.ndarray]


def _checked_labels(path: Path, stored_task: str | None, names: list[str] | None,
                    outputs: int, task: str | None) -> tuple[str, tuple[str, ...]]:
    """Reconciles the task stored in a model with the one asked for."""
    if task is not None:
        expected = labels.class_names(task)
        if stored_task is not None and stored_task != task:
            raise ModelError(f"--model_path={path} was trained for cls_task={stored_task!r}, "
                             f"not --cls_task={task!r}")
        if outputs != len(expected):
            raise ModelError(f"--model_path={path} has {outputs} outputs but --cls_task={task!r}"
                             f" has {len(expected)} classes")
    if stored_task is None:
        if task is None:
            raise ModelError(f"--model_path={path} does not store its task; pass --cls_task")
        return task, labels.class_names(task)
    return stored_task, tuple(names)


PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def bfloat16_copy(model):
    """The same network and weights, built under Keras' ``mixed_bfloat16`` policy.

    About 2x faster at batch 64 on CPUs with AVX512_BF16/AMX; the softmax stays float32.
    Measured on the demo models: identical gender labels, 47 of 48 age labels unchanged.
    """
    import keras  # noqa: PLC0415

    from agegender.config import ModelParams  # noqa: PLC0415
    from agegender.model import build_model, model_labels  # noqa: PLC0415

    task, names, features = model_labels(model)
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        copy = build_model(ModelParams(image_size=int(model.input_shape[1]),
                                       image_width=int(model.input_shape[2]),
                                       num_classes=len(names), task=task,
                                       class_names=tuple(names)), features=features)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def open_model(path: str | os.PathLike, task: str | None = None, *,
               precision: str = "float32") -> LoadedModel:
    """Opens a ``.keras``/``.h5`` file or a SavedModel folder and checks it against ``task``.

    Args:
        path: the model.
        task: expected task; None reads it from the model.
        precision: ``float32`` (exact) or ``bfloat16`` (faster batches on CPUs with bf16
            instructions; ``.keras``/``.h5`` models of this project only).

    Raises:
        ModelError: the model cannot be loaded, or its task/output size does not match.
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    path = Path(path)
    if path.is_dir():
        if precision != "float32":
            raise ParameterError(f"precision={precision!r} needs a .keras or .h5 model, "
                                 f"not the SavedModel {path}")
        return _open_saved_model(path, task)
    from agegender.model import model_labels  # noqa: PLC0415

    model = load_model(path)
    try:
        stored_task, names, features = model_labels(model)
    except ModelError:
        stored_task, names, features = None, None, None
    outputs = int(model.output_shape[-1])
    task, names = _checked_labels(path, stored_task, names, outputs, task)
    image_size = int(model.input_shape[1])
    params = FeatureParams(**features) if features else FeatureParams(image_size=image_size)
    if params.image_shape[:2] != tuple(model.input_shape[1:3]):
        raise ModelError(f"--model_path={path}: stored image size {params.image_shape[:2]} "
                         f"differs from its input size {tuple(model.input_shape[1:3])}")
    if precision == "bfloat16":
        if stored_task is None:
            raise ParameterError(f"precision='bfloat16' needs a model built by agegender; "
                                 f"{path} stores no task")
        model = bfloat16_copy(model)
    return LoadedModel(str(path), task, tuple(names), params,
                       lambda batch: np.asarray(model.predict_on_batch(batch)))


def _open_saved_model(path: Path, task: str | None) -> LoadedModel:
    import tensorflow as tf  # noqa: PLC0415

    meta_path = path / "agegender.json"
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"--model_path={path}: folder holds no saved_model.pb")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as err:
        raise ModelError(f"--model_path={path}: cannot be loaded ({err})") from err
    serve = loaded.signatures.get("serve") or loaded.signatures["serving_default"]
    _, spec = serve.structured_input_signature
    (input_spec,) = spec.values()
    (output_spec,) = serve.structured_outputs.values()
    outputs = int(output_spec.shape[-1])
    task, names = _checked_labels(path, meta.get("task"), meta.get("class_names"), outputs, task)
    features = meta.get("features")
    params = (FeatureParams(**features) if features
              else FeatureParams(image_size=int(input_spec.shape[1])))
    input_name = next(iter(spec))

    def predict(batch: np.ndarray) -> np.ndarray:
        (result,) = serve(**{input_name: tf.constant(batch, tf.float32)}).values()
        return result.numpy()

    return LoadedModel(str(path), task, tuple(names), params, predict)


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
        max_crops: for models whose features have a constant time scale (``voice``), a
            clip longer than one image is cut into up to this many crops spread over it,
            and the crops' probabilities are averaged. 1 = the centre crop only, the one
            training stored. Paper models always see the whole clip in one image.
    """

    def __init__(self, model_path: str | os.PathLike, task: str | None = None, *,
                 batch_size: int = 64, num_threads: int | None = None,
                 precision: str = "float32", max_crops: int = 3):
        if max_crops < 1:
            raise ParameterError(f"max_crops={max_crops} must be >= 1")
        self.model = open_model(model_path, task, precision=precision)
        self.batch_size = batch_size
        self.num_threads = num_threads or os.cpu_count() or 1
        self.max_crops = max_crops

    @property
    def task(self) -> str:
        """The model's task."""
        return self.model.task

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names, index = label code."""
        return self.model.class_names

    def _images(self, path: str) -> np.ndarray | AudioError:
        """A clip's crops, uint8 [crops, H, W, 3], or why it has none."""
        from agegender.features import clip_images  # noqa: PLC0415

        try:
            return clip_images(path, self.model.features, self.max_crops)
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
                images = list(pool.map(self._images, chunk))
                good = [i for i, image in enumerate(images) if isinstance(image, np.ndarray)]
                probabilities = self._crop_average([images[i] for i in good])
                by_index = dict(zip(good, probabilities, strict=True))
                for i, path in enumerate(chunk):
                    results.append(self._result(path, by_index.get(i), images[i]))
        return results

    def _crop_average(self, crops: list[np.ndarray]) -> np.ndarray:
        """Predicts every crop of every clip in one batch; each clip's probabilities are
        the mean over its crops. [clips] of [crops, H, W, 3] → [clips, classes]."""
        if not crops:
            return np.zeros((0, len(self.class_names)), np.float32)
        counts = [len(c) for c in crops]
        probabilities = self.model.predict(np.concatenate(crops).astype(np.float32))
        owner = np.repeat(np.arange(len(crops)), counts)  # [all crops] → clip
        sums = np.zeros((len(crops), probabilities.shape[1]), np.float64)
        np.add.at(sums, owner, probabilities)
        return (sums / np.asarray(counts)[:, np.newaxis]).astype(np.float32)

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

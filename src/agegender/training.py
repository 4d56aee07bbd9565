"""Training: distribution strategy, callbacks and the fit loop."""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from agegender import atomic, figures, labels
from agegender.config import DEFAULT_BN_MOMENTUM, ModelParams, TrainParams
from agegender.errors import AgeGenderError, ParameterError

log = logging.getLogger(__name__)


class OutputError(AgeGenderError):
    """An output folder cannot be created or written."""


def choose_strategy(name: str = "auto"):
    """Picks the ``tf.distribute`` strategy.

    ``auto``: MultiWorkerMirrored when ``TF_CONFIG`` names a cluster, Mirrored when more than
    one GPU is visible, the default (one-device) strategy otherwise. ``mirrored`` mirrors over
    all GPUs, or over the logical CPU devices when there are no GPUs (how tests run it).

    Raises:
        ParameterError: unknown name, or ``multiworker`` without a ``TF_CONFIG`` cluster.
    """
    import tensorflow as tf  # noqa: PLC0415

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "multiworker" if cluster else "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if name == "multiworker":
        if not cluster:
            raise ParameterError("--strategy=multiworker needs TF_CONFIG naming a cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ParameterError(f"--strategy={name!r} is not one of auto, mirrored, multiworker, default")


def balanced_class_weight(codes: np.ndarray, num_classes: int) -> dict[int, float]:
    """``n / (k · count_c)`` per class (scikit-learn's 'balanced'); absent classes get 1.0."""
    counts = np.bincount(codes, minlength=num_classes).astype(float)
    total = counts.sum()
    return {c: (total / (num_classes * counts[c]) if counts[c] else 1.0)
            for c in range(num_classes)}


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best model by a monitored metric, as both ``.keras`` and ``.h5``.

    A tie on the metric (common on a small dev split, where accuracy moves in big steps) goes
    to the epoch with the lower ``tie_breaker`` loss, usually the better-trained later one.

    Files are written atomically. The best value and epoch go to a JSON beside them, so a
    resumed run (``resume=True``) keeps comparing against the real best, not from scratch.

    Args:
        keras_path: ``.../best_model_<task>.keras``.
        h5_path: ``.../best_model_<task>.h5``.
        state_path: ``.../best_model_<task>.json``.
        monitor: metric to maximise.
        resume: read the previous best from ``state_path``.
        extra_state: stored in the JSON too (task, class names, features...).
    """

    def __init__(self, keras_path: Path, h5_path: Path, state_path: Path, *,
                 monitor: str = "val_accuracy", tie_breaker: str = "val_loss",
                 resume: bool = False, extra_state: dict | None = None):
        super().__init__()
        self.keras_path, self.h5_path, self.state_path = keras_path, h5_path, state_path
        self.monitor, self.tie_breaker = monitor, tie_breaker
        self.best_tie = np.inf
        self.extra_state = extra_state or {}
        self.best = -np.inf
        self.best_epoch = None
        if resume and state_path.is_file():
            state = json.loads(state_path.read_text())
            self.best = state.get(monitor, -np.inf)
            self.best_tie = state.get(tie_breaker, np.inf)
            self.best_epoch = state.get("epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        tie = logs.get(self.tie_breaker, np.inf)
        if value is None or not (value > self.best or (value == self.best
                                                       and tie < self.best_tie)):
            return
        log.info("epoch %d: %s improved from %.4f to %.4f, saving %s", epoch + 1, self.monitor,
                 self.best, value, self.keras_path)
        self.best, self.best_tie, self.best_epoch = float(value), float(tie), epoch + 1
        with atomic.replacing(self.keras_path) as tmp:
            self.model.save(tmp)
        with atomic.replacing(self.h5_path) as tmp, warnings.catch_warnings():
            # The .h5 copy is asked for on purpose (the original project's format).
            warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
            logging.getLogger("absl").setLevel(logging.ERROR)
            self.model.save(tmp)
        state = {**self.extra_state, **{k: float(v) for k, v in logs.items()},
                 "epoch": self.best_epoch}
        atomic.write_text(self.state_path, json.dumps(state, indent=2))


def display_available() -> bool:
    """True when a window can be shown (an X11/Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class LivePlot(keras.callbacks.Callback):
    """Accuracy and loss curves, redrawn every epoch.

    Always rewrites the PNG; also shows a window when ``show`` and a display exists. Without
    a display (servers, CI) it never blocks or fails. Reads the CSV log, so epochs from
    before a resume are on the curve too; list it after the CSVLogger.

    Args:
        csv_path: the CSVLogger file.
        png_path: PNG to rewrite each epoch.
        show: try to open a window.
        title: figure title.
    """

    def __init__(self, csv_path: Path, png_path: Path, *, show: bool, title: str = ""):
        super().__init__()
        self.csv_path, self.png_path, self.title = csv_path, png_path, title
        self.show = show and display_available()
        self._window = None

    def on_epoch_end(self, epoch, logs=None):
        try:
            history = pd.read_csv(self.csv_path)
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return
        figures.training_curves(history, self.png_path, self.title)
        if self.show:
            self._draw_window(history)

    def _draw_window(self, history: pd.DataFrame) -> None:
        try:
            import matplotlib.pyplot as plt  # noqa: PLC0415

            if self._window is None:
                plt.ion()
                self._window = plt.figure(figsize=(11, 4))
            figures.draw_training_curves(self._window, history, self.title)
            self._window.canvas.draw_idle()
            plt.pause(0.001)
        except Exception as err:  # noqa: BLE001 - a broken GUI must never stop training
            log.warning("live plot window disabled (%s); still writing %s", err, self.png_path)
            self.show = False


def _writable_dir(path: Path, flag: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{flag}={path}: cannot write there ({err.strerror})") from err
    return path


def output_paths(task: str, models_dir: str | os.PathLike,
                 results_dir: str | os.PathLike) -> dict[str, Path]:
    """Where training writes, creating (and checking) the folders."""
    model_dir = _writable_dir(Path(models_dir) / task, "--models_dir")
    result_dir = _writable_dir(Path(results_dir) / task, "--results_dir")
    return {
        "keras": model_dir / f"best_model_{task}.keras",
        "h5": model_dir / f"best_model_{task}.h5",
        "state": model_dir / f"best_model_{task}.json",
        "backup": model_dir / "backup",
        "csv": result_dir / f"train_logs_{task}.csv",
        "plot": result_dir / f"training_metrics_{task}.png",
    }


def train(dataset_dir: str | os.PathLike, task: str, *, train_params: TrainParams,
          image_size: int | None = None, l2: float = 0.01,
          bn_momentum: float = DEFAULT_BN_MOMENTUM,
          models_dir: str | os.PathLike = "models", results_dir: str | os.PathLike = "results",
          show_summary: bool = False, show_live_plot: bool = False,
          verbose: int | str = "auto", extra_callbacks: list | None = None) -> dict:
    """Trains the MAM-CNN on ``DIR/TFRecord`` train, validating on dev.

    Resumes automatically after an interruption (``BackupAndRestore`` in
    ``models/<task>/backup``): finished epochs are kept.

    Args:
        dataset_dir: dataset folder holding ``TFRecord/`` (train and dev splits).
        task: ``gender``, ``age`` or ``gender_age``.
        train_params: optimisation settings.
        image_size: image height; must match the shards (None: the shards' size).
        l2: L2 factor on conv and dense kernels.
        bn_momentum: BatchNorm momentum (see ``ModelParams``).
        models_dir: checkpoints go to ``models_dir/<task>/``.
        results_dir: CSV log and curves go to ``results_dir/<task>/``.
        show_summary: print the model summary.
        show_live_plot: also show the curves in a window when a display exists.
        verbose: Keras ``fit`` verbosity.
        extra_callbacks: appended to the project's callbacks (TensorBoard, ...).

    Returns:
        Paths written, the best validation accuracy and epoch, and the replica count.
    """
    from agegender.model import build_model  # noqa: PLC0415
    from agegender.pipeline import make_dataset, split_index, split_labels  # noqa: PLC0415

    names = labels.class_names(task)
    train_index = split_index(dataset_dir, "train", task, image_size)
    split_index(dataset_dir, "dev", task, image_size)
    image_size, image_width = train_index["image_shape"][:2]
    paths = output_paths(task, models_dir, results_dir)
    resuming = paths["backup"].is_dir() and any(paths["backup"].iterdir())
    if resuming:
        log.info("resuming the interrupted run from %s", paths["backup"])

    keras.utils.set_random_seed(train_params.seed)
    if train_params.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = choose_strategy(train_params.strategy)
    log.info("strategy %s over %d replica(s)", type(strategy).__name__,
             strategy.num_replicas_in_sync)
    features = train_index.get("features")
    with strategy.scope():
        model = build_model(ModelParams(image_size=image_size, image_width=image_width,
                                        num_classes=len(names),
                                        task=task, class_names=names, l2=l2,
                                        bn_momentum=bn_momentum), features=features)
        model.compile(optimizer=keras.optimizers.Adam(train_params.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"])
    if show_summary:
        model.summary()

    # Decoded images are 12 KB each at 64 px: cache corpora that fit in ~2 GB.
    cache = train_index["num_examples"] * int(np.prod(train_index["image_shape"])) < 2**31
    train_data, _ = make_dataset(dataset_dir, "train", task, batch_size=train_params.batch_size,
                                 training=True, seed=train_params.seed, cache=cache,
                                 augment=train_params.augment)
    dev_data, _ = make_dataset(dataset_dir, "dev", task, batch_size=train_params.batch_size,
                               training=False, cache=cache)
    class_weight = None
    if train_params.class_weight == "balanced":
        class_weight = balanced_class_weight(split_labels(dataset_dir, "train", task),
                                             len(names))
        log.info("class weights: %s", {names[c]: round(w, 3) for c, w in class_weight.items()})

    state = {"task": task, "class_names": list(names), "image_size": image_size,
             "image_width": image_width,
             "features": features, "bn_momentum": bn_momentum}
    callbacks = [
        keras.callbacks.BackupAndRestore(str(paths["backup"])),
        BestCheckpoint(paths["keras"], paths["h5"], paths["state"], resume=resuming,
                       extra_state=state),
        keras.callbacks.CSVLogger(str(paths["csv"]), append=resuming),
        LivePlot(paths["csv"], paths["plot"], show=show_live_plot, title=f"MAM-CNN, {task}"),
    ]
    callbacks += list(extra_callbacks or [])
    if train_params.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=train_params.early_stopping_patience))
    model.fit(train_data, validation_data=dev_data, epochs=train_params.num_epochs,
              class_weight=class_weight, callbacks=callbacks, verbose=verbose, shuffle=False)
    best = callbacks[1]
    return {**{k: str(v) for k, v in paths.items() if k != "backup"},
            "best_val_accuracy": best.best, "best_epoch": best.best_epoch,
            "replicas": strategy.num_replicas_in_sync}


def export_saved_model(model_path: str | os.PathLike, export_dir: str | os.PathLike) -> Path:
    """Writes a TensorFlow SavedModel that serves with ``tf.saved_model.load`` alone.

    The serving function is ``serve``: float32 [batch, H, W, 3] in 0-255 → probabilities.
    ``agegender.json`` beside it names the task, classes and feature parameters.
    """
    from agegender.inference import load_model  # noqa: PLC0415
    from agegender.model import model_labels  # noqa: PLC0415

    model = load_model(model_path)
    task, names, features = model_labels(model)
    export_dir = Path(export_dir)
    if export_dir.exists() and not (export_dir / "agegender.json").is_file():
        raise OutputError(f"--export_dir={export_dir}: exists and is not an agegender export; "
                          "choose another folder")
    with atomic.replacing(export_dir) as tmp:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        (tmp / "agegender.json").write_text(json.dumps(
            {"task": task, "class_names": names, "features": features,
             "input_shape": list(model.input_shape[1:])}, indent=2))
        if export_dir.exists():  # an earlier export of ours: replace it whole
            shutil.rmtree(export_dir)
    return export_dir

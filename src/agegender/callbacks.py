"""The Keras callbacks of a training run: best model, per-epoch backup, CSV log, live plot.

The first three share one ``RunRecord`` (what the run knows about itself) and run in this
order at each epoch end, so that a kill between any two steps is harmless:

1. ``BestCheckpoint`` publishes a new best model (one folder, one symlink flip);
2. ``EpochBackup`` adds the epoch's row to the record and publishes a backup generation
   holding the model, the optimizer state and the record (best so far, rows so far);
3. ``CsvLog`` rewrites the CSV log from the record's rows, atomically.

A kill before 2 redoes the epoch (a best published in 1 is then adopted or superseded); a
kill after 2 keeps it, and the next start rewrites the CSV from the backup's rows. The CSV
therefore always ends up with exactly one row per finished epoch.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
from pathlib import Path

import keras
import pandas as pd

from agegender import atomic, checkpoints, figures, runstate

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunRecord:
    """What a run knows about itself; saved in every backup generation.

    Attributes:
        run_id: names the run's best-model folders.
        settings: the run's ``RunSettings`` as a dict.
        rows: one CSV-log row per finished epoch, in order.
        best: best monitored value so far (-inf before the first epoch).
        best_tie: tie-breaker value of the best epoch (lower wins).
        best_epoch: 1-based epoch of the best model, None before the first.
        fresh: started without a backup (may replace plain files of older versions).
    """

    run_id: str
    settings: dict
    rows: list[dict] = dataclasses.field(default_factory=list)
    best: float = -math.inf
    best_tie: float = math.inf
    best_epoch: int | None = None
    fresh: bool = True

    @property
    def next_epoch(self) -> int:
        """0-based epoch to train next (``initial_epoch`` of ``fit``)."""
        return len(self.rows)

    def to_state(self) -> dict:
        """The JSON-ready part kept in a backup generation."""
        return {"run_id": self.run_id, "settings": self.settings, "rows": self.rows,
                "best": self.best, "best_tie": self.best_tie, "best_epoch": self.best_epoch}

    @classmethod
    def from_state(cls, state: dict) -> RunRecord:
        """A resumed run's record from a generation's ``state.json``."""
        return cls(run_id=state["run_id"], settings=state["settings"], rows=state["rows"],
                   best=float(state["best"]), best_tie=float(state["best_tie"]),
                   best_epoch=state["best_epoch"], fresh=False)


def non_finite(model, logs: dict | None) -> str:
    """What is not a finite number at an epoch end ("" when all is): a logged value
    (``loss``, ``val_loss``, ...) or the model's weights.

    A model whose weights hold NaN still predicts a class (argmax of NaN is 0), so its dev
    accuracy alone can look like an improvement.
    """
    import numpy as np  # noqa: PLC0415

    for name, value in sorted((logs or {}).items()):
        if not math.isfinite(float(value)):
            return f"{name} is {float(value)}"
    for weight in model.weights:
        if not np.isfinite(keras.ops.convert_to_numpy(weight.value)).all():
            return f"weight {weight.path} holds non-finite values"
    return ""


class StopOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Stops ``fit`` at the first batch whose loss is NaN or infinite, and remembers where.

    ``train`` turns ``stopped`` into one error line; ``BestCheckpoint`` and ``EpochBackup``
    keep nothing of the epoch (``non_finite``), so the best model and the backup stay the
    last finite ones.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.stopped: tuple[int, int, float] | None = None  # (1-based epoch, batch, loss)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped = (self.epoch + 1, batch, float(loss))
            self.model.stop_training = True

    def message(self, best_epoch: int | None, model_dir: Path) -> str:
        """One line: where the loss stopped being finite and what was kept."""
        epoch, batch, loss = self.stopped
        kept = (f"the best model is still epoch {best_epoch}'s in {model_dir}" if best_epoch
                else "no model was published")
        return (f"training stopped in epoch {epoch}, batch {batch}: the loss became {loss}; "
                f"nothing of that epoch was kept ({kept}); lower --learning_rate (or --l2), "
                "and start afresh with --overwrite")


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best model by a monitored metric, as ``.keras``, ``.h5`` and ``.json``.

    A tie on the metric (common on a small dev split, where accuracy moves in big steps) goes
    to the epoch with the lower ``tie_breaker``, the unregularised dev cross-entropy: Keras'
    ``val_loss`` adds the L2 penalty (~17 here against a cross-entropy of ~0.7), which would
    rank epochs by weight norm rather than by fit.

    The three files are published together (``runstate.publish_best``: one folder, one
    symlink flip), so ``best_model_<task>.json`` never describes another model than the
    ``.keras``/``.h5`` beside it. The best so far comes from the ``RunRecord`` (restored from
    the backup on resume), never from a JSON on disk: a fresh run starts from -inf and
    replaces the previous run's best at its first epoch.

    Args:
        model_dir: ``models/<task>``.
        task: names the files.
        record: the run's record (its best fields are updated here).
        monitor: metric to maximise: ``val_uar`` (dev balanced accuracy; dev accuracy on
            imbalanced classes would keep an epoch that calls everyone the majority class).
        tie_breaker: metric to minimise among ties.
        extra_info: stored in the JSON too (task, class names, features...).
        save_optimizer: also store the optimizer state in the files (3x their size; only
            needed to continue training from a best model, resuming has its own backup).
    """

    def __init__(self, model_dir: Path, task: str, record: RunRecord, *,
                 monitor: str = "val_uar", tie_breaker: str = "val_crossentropy",
                 extra_info: dict | None = None, save_optimizer: bool = False):
        super().__init__()
        self.save_optimizer = save_optimizer
        self.model_dir, self.task, self.record = Path(model_dir), task, record
        self.monitor, self.tie_breaker = monitor, tie_breaker
        self.extra_info = extra_info or {}

    @property
    def best(self) -> float:
        """Best monitored value so far."""
        return self.record.best

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch of the best model so far."""
        return self.record.best_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            return
        value, tie = float(value), float(logs.get(self.tie_breaker, math.inf))
        record = self.record
        if value > record.best:
            log.info("epoch %d: %s improved from %.4f to %.4f, saving %s", epoch + 1,
                     self.monitor, record.best, value, self.model_dir)
        elif value == record.best and tie < record.best_tie:
            log.info("epoch %d: %s tied at %.4f; tie broken by lower dev cross-entropy "
                     "(%.4f → %.4f), saving %s", epoch + 1, self.monitor, value,
                     record.best_tie, tie, self.model_dir)
        else:
            return
        problem = non_finite(self.model, logs)
        if problem:
            log.warning("epoch %d: not saved as the best model: %s", epoch + 1, problem)
            return
        info = {**self.extra_info, **{k: float(v) for k, v in logs.items()},
                "monitor": self.monitor, "score": value, "tie_breaker": self.tie_breaker,
                "tie": tie}
        keep = self.save_optimizer
        saved = self.model if keep else checkpoints.without_optimizer(self.model)
        runstate.publish_best(self.model_dir, self.task, run_id=record.run_id,
                              epoch=epoch + 1,
                              save_keras=lambda path: checkpoints.save_keras(saved, path),
                              save_h5=lambda path: checkpoints.save_h5(saved, path,
                                                                       include_optimizer=keep),
                              info=info, replace_plain_files=record.fresh)
        record.best, record.best_tie, record.best_epoch = value, tie, epoch + 1


class EpochBackup(keras.callbacks.Callback):
    """Adds each finished epoch to the record and publishes a backup generation.

    Replaces ``keras.callbacks.BackupAndRestore``, whose ``latest.weights.h5`` is rewritten in
    place: a kill during that write left a truncated file every later run died on. Here each
    epoch is a new folder (``backup/epoch-0007``) renamed into place whole; the last two are
    kept. List it after ``BestCheckpoint`` and before ``CsvLog``.

    Args:
        backup_dir: ``models/<task>/backup``.
        record: the run's record.
    """

    def __init__(self, backup_dir: Path, record: RunRecord):
        super().__init__()
        self.backup_dir, self.record = Path(backup_dir), record

    def on_epoch_end(self, epoch, logs=None):
        if non_finite(self.model, logs):
            return  # a resume starts from the last finite epoch
        row = {"epoch": epoch, **{k: float(v) for k, v in sorted((logs or {}).items())}}
        self.record.rows = [*self.record.rows[:epoch], row]
        runstate.write_generation(self.backup_dir, epoch, self.model.save,
                                  self.record.to_state())


class CsvLog(keras.callbacks.Callback):
    """Writes the CSV log (one row per finished epoch) from the record, atomically.

    Unlike ``keras.callbacks.CSVLogger`` (which appends), the whole file is rewritten from the
    rows the backup keeps, so killed epochs never leave a row and resumed ones never
    duplicate one. Written at train begin too (a resumed run's rows, or empty for a fresh run).

    Args:
        csv_path: ``results/<task>/best_model_<task>/train_logs_<task>.csv``.
        record: the run's record.
    """

    def __init__(self, csv_path: Path, record: RunRecord):
        super().__init__()
        self.csv_path, self.record = Path(csv_path), record

    def write(self) -> None:
        """Rewrites the file from ``record.rows``; with no rows yet (a fresh run) removes an
        older run's file instead of leaving a 0-byte one, which no CSV reader accepts."""
        if not self.record.rows:
            self.csv_path.unlink(missing_ok=True)
            return
        buffer = io.StringIO()
        pd.DataFrame(self.record.rows).to_csv(buffer, index=False)
        atomic.write_text(self.csv_path, buffer.getvalue())

    def on_train_begin(self, logs=None):
        self.write()

    def on_epoch_end(self, epoch, logs=None):
        self.write()


class TensorBoardScalars(keras.callbacks.Callback):
    """Writes every epoch's logs as TensorBoard scalars: ``log_dir/train`` and
    ``log_dir/validation`` (``val_`` metrics), the layout of ``keras.callbacks.TensorBoard``.

    Uses ``tf.summary.write`` with the scalar plugin's metadata, which needs no ``tensorboard``
    package. Why not the library route: TensorFlow 2.21 does not depend on ``tensorboard``,
    and without it ``tf.summary.scalar`` raises ``TBNotInstalledError`` ("TensorBoard is not
    installed, missing implementation for tf.summary.scalar"; checked 2026-11-30), which
    ``keras.callbacks.TensorBoard`` calls too; training must not depend on the viewer, which
    is the ``tensorboard`` extra (``pip install -e '.[tensorboard]'``). Checked again
    2026-12-04 (Keras 3.15, TF 2.21, no ``tensorboard`` installed): one epoch of ``fit``
    with ``keras.callbacks.TensorBoard`` raises ``TBNotInstalledError``; this writer works.

    Args:
        log_dir: ``results/<task>/best_model_<task>/tensorboard``.
    """

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers = {}

    def _writer(self, name: str):
        import tensorflow as tf  # noqa: PLC0415

        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf  # noqa: PLC0415

        metadata = tf.compat.v1.SummaryMetadata()  # the public name of the summary proto
        metadata.plugin_data.plugin_name = "scalars"  # what tf.summary.scalar would set
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(split).as_default():
                tf.summary.write(f"epoch_{name}", tf.constant(float(value), tf.float32),
                                 step=epoch, metadata=metadata)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


def display_available() -> bool:
    """True when a window can be shown (an X11/Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class LivePlot(keras.callbacks.Callback):
    """Accuracy and loss curves, redrawn every epoch.

    Always rewrites the PNG; also shows a window when ``show`` and a display exists. Without
    a display (servers, CI) it never blocks or fails. Reads the CSV log, so epochs from
    before a resume are on the curve too; list it after the CSV log.

    Args:
        csv_path: the CSV log.
        png_path: PNG to rewrite each epoch.
        show: try to open a window.
        title: figure title.
        best: a ``BestCheckpoint`` listed before this; its ``best_epoch`` is marked.
    """

    def __init__(self, csv_path: Path, png_path: Path, *, show: bool, title: str = "",
                 best: BestCheckpoint | None = None):
        super().__init__()
        self.best = best
        self.csv_path, self.png_path, self.title = csv_path, png_path, title
        self.show = show and display_available()
        self._window = None

    def on_epoch_end(self, epoch, logs=None):
        try:
            history = pd.read_csv(self.csv_path)
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return
        best_epoch = self.best.best_epoch if self.best is not None else None
        figures.training_curves(history, self.png_path, self.title, best_epoch=best_epoch)
        if self.show:
            self._draw_window(history, best_epoch)

    def _draw_window(self, history: pd.DataFrame, best_epoch: int | None = None) -> None:
        try:
            import matplotlib.pyplot as plt  # noqa: PLC0415

            if self._window is None:
                plt.ion()
                self._window = plt.figure(figsize=(11, 4))
            figures.draw_training_curves(self._window, history, self.title,
                                         best_epoch=best_epoch)
            self._window.canvas.draw_idle()
            plt.pause(0.001)
        except Exception as err:  # noqa: BLE001 - a broken GUI must never stop training
            log.warning("live plot window disabled (%s); still writing %s", err, self.png_path)
            self.show = False

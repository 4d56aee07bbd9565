"""Trains in a subprocess and dies like ``kill -9`` (``os._exit``) at a chosen write step.

Usage: ``python tests/kill_train.py DATASET OUT KILL_POINT NUM_EPOCHS`` (run by
``tests/test_runstate.py``). ``os._exit`` runs no ``finally``, flushes nothing and removes no
temporary file: the process state on disk is exactly what a SIGKILL at that line leaves.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

from agegender import atomic, runstate  # noqa: E402
from agegender.config import TrainParams  # noqa: E402
from agegender.training import train  # noqa: E402

KILLED = 9


def die() -> None:
    os._exit(KILLED)


def truncate(path: Path, size: int = 96) -> None:
    with open(path, "r+b") as stream:
        stream.truncate(size)


def install(point: str) -> list:
    """Patches the write path named ``point``; returns extra callbacks."""
    real_generation, real_best = runstate.write_generation, runstate.publish_best
    real_folder, real_link, real_text = (runstate.publish_folder, runstate.point_symlink,
                                         atomic.write_text)
    csv_calls = []

    def write_generation(backup_dir, epoch, save_model, state):
        if point == "backup_write" and epoch == 1:
            def save_and_die(path):  # the model file is cut short mid-write
                save_model(path)
                truncate(path)
                die()
            return real_generation(backup_dir, epoch, save_and_die, state)
        if point == "before_backup" and epoch == 1:
            die()
        folder = real_generation(backup_dir, epoch, save_model, state)
        if point == "after_backup" and epoch == 0:
            die()
        return folder

    def publish_best(model_dir, task, *, save_keras, save_h5, **kwargs):
        def cut(save, kill):
            def wrapped(path):
                save(path)
                if kill:
                    truncate(path)
                    die()
            return wrapped
        return real_best(model_dir, task, save_keras=cut(save_keras, point == "best_keras"),
                         save_h5=cut(save_h5, point == "best_h5"), **kwargs)

    def publish_folder(parent, name, fill):
        if point == "best_json" and parent.name == "best":
            def fill_and_die(tmp):
                fill(tmp)
                truncate(next(tmp.glob("*.json")), 10)
                die()
            return real_folder(parent, name, fill_and_die)
        return real_folder(parent, name, fill)

    def point_symlink(link, target):
        if point == "flip" and link.name == runstate.CURRENT:
            die()
        return real_link(link, target)

    def write_text(path, text):
        if point == "csv" and str(path).endswith(".csv"):
            csv_calls.append(path)
            # Die in epoch 1's write: header + rows of epochs 0 and 1 (a fresh run writes no
            # file at train begin, issue 21 item 13, so the calls are not counted).
            if len(text.splitlines()) == 3:
                # What a killed atomic.write_text leaves: its temporary sibling, half written.
                tmp = Path(path).with_name(atomic.temp_name(Path(path).name))
                tmp.write_text(text[: len(text) // 2])
                die()
        return real_text(path, text)

    runstate.write_generation = write_generation
    runstate.publish_best = publish_best
    runstate.publish_folder = publish_folder
    runstate.point_symlink = point_symlink
    atomic.write_text = write_text

    class DieInEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self._epoch == 1 and batch == 1:
                die()

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    return [DieInEpoch()] if point == "epoch_1" else []


def main() -> int:
    dataset, out, point, epochs = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    extra = install(point)
    train(dataset, "gender", train_params=TrainParams(batch_size=8, num_epochs=epochs,
                                                      learning_rate=1e-3, seed=3),
          image_size=32, models_dir=out / "models", results_dir=out / "results", verbose=0,
          extra_callbacks=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())

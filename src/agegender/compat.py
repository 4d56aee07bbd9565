"""Every use of a private Keras or TensorFlow API, in one place.

Checked against Keras 3.15 and TensorFlow 2.21 (``CHECKED``). On other versions the private
paths refuse to run with one line naming the versions (``VersionError``), instead of patching
something that may have moved. Each patch is undone when its work is done.

* ``multiworker_fit``: Keras 3 ``fit`` under ``MultiWorkerMirroredStrategy`` fails twice on
  private steps (keras-team/keras#20585, tensorflow/tensorflow#72388; no public route as of
  Keras 3.15: the Keras guide for multi-worker training still targets Keras 2's ``fit``).
* ``disable_op_determinism``: TensorFlow has a public ``enable_op_determinism`` but no
  public way back; tests and notebooks train deterministically and then not, in one process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from agegender.errors import AgeGenderError

log = logging.getLogger(__name__)

# (major, minor) of the releases the private paths below were read and tested against.
CHECKED: dict[str, tuple[int, int]] = {"keras": (3, 15), "tensorflow": (2, 21)}


class VersionError(AgeGenderError):
    """A private API is needed on a Keras/TensorFlow release it was not checked against."""


def _release(module) -> tuple[int, int]:
    major, minor = module.__version__.split(".")[:2]
    return int(major), int(minor)


def check_versions(purpose: str) -> None:
    """Raises ``VersionError`` unless Keras and TensorFlow are the ``CHECKED`` releases.

    Args:
        purpose: what needs the private API, named in the message.
    """
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    found = {"keras": _release(keras), "tensorflow": _release(tf)}
    if found != CHECKED:
        have = ", ".join(f"{name} {'.'.join(map(str, v))}" for name, v in found.items())
        want = ", ".join(f"{name} {'.'.join(map(str, v))}" for name, v in CHECKED.items())
        raise VersionError(f"{purpose} uses private Keras/TensorFlow internals checked on "
                           f"{want}; this is {have}: pin those versions (requirements.txt) "
                           "or train on one worker")


@contextlib.contextmanager
def multiworker_fit(model, strategy, train_data) -> Iterator[None]:
    """Makes ``model.fit`` work under ``MultiWorkerMirroredStrategy`` for the ``with`` block.

    ``fit`` first "symbolically builds" the model from a batch it averages across replicas
    with ``strategy.reduce``, which MultiWorkerMirroredStrategy cannot do on a nested
    (image, label) batch ("Attempt to convert a value (PerReplica...) to a Tensor"). Only
    the shapes matter there, so the model is built here from one local batch, on every
    worker in the same order, and that step of ``fit`` is skipped. Second bug, same cause:
    the step's logs are averaged with ``reduce("MEAN", axis=0)``, which fails on scalar
    metrics; scalars are averaged with ``axis=None`` instead. Both are undone on exit.

    Raises:
        VersionError: Keras/TensorFlow are not the ``CHECKED`` releases.
    """
    check_versions("multi-worker training (--strategy=multiworker)")
    from keras.src.backend.tensorflow import trainer as tf_trainer  # noqa: PLC0415

    images, codes = next(iter(train_data.take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=(images, codes))  # noqa: SLF001
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy_, reduction):
        if reduction in ("auto", "mean") and isinstance(
                strategy_, tf_trainer.tf.distribute.MultiWorkerMirroredStrategy):
            def mean(value):
                if not isinstance(value, tf_trainer.tf.distribute.DistributedValues):
                    return value
                local = strategy_.experimental_local_results(value)[0]
                return strategy_.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)
            return tf_trainer.tree.map_structure(mean, values)
        return original(values, strategy_, reduction)

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # noqa: SLF001
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build  # the instance attribute; the class method returns


def disable_op_determinism() -> None:
    """Undoes ``tf.config.experimental.enable_op_determinism`` (no public API does).

    On an unchecked TensorFlow release without the private function this logs a warning
    and leaves determinism as it is (slower, never wrong).
    """
    from tensorflow.python.framework import config as tf_config  # noqa: PLC0415

    undo = getattr(tf_config, "disable_op_determinism", None)
    if undo is None:
        log.warning("cannot switch op determinism off on this TensorFlow: it stays on")
        return
    undo()

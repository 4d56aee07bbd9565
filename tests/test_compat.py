"""The private-API module: refuses unchecked releases, undoes its patches."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from agegender import compat


def test_unchecked_releases_are_refused_in_one_line(monkeypatch):
    compat.check_versions("x")  # the pinned releases pass
    monkeypatch.setattr(compat, "CHECKED", {"keras": (3, 99), "tensorflow": (2, 21)})
    with pytest.raises(compat.VersionError, match=r"checked on keras 3\.99.*this is keras 3\.15"):
        compat.check_versions("multi-worker training")


def test_multiworker_patches_are_undone_after_fit():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile("sgd", "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2), "float32"),
                                               np.array([0, 1, 0, 1]))).batch(2)
    with compat.multiworker_fit(model, tf.distribute.get_strategy(), data):
        assert tf_trainer.reduce_per_replica is not original
        assert "_maybe_symbolic_build" in vars(model)
        model.fit(data, epochs=1, verbose=0)
    assert tf_trainer.reduce_per_replica is original
    assert "_maybe_symbolic_build" not in vars(model)
    model.fit(data, epochs=1, verbose=0)  # the unpatched path still trains

"""The epoch UAR metric (``agegender.keras_metrics``) against scikit-learn, and the best epoch
it picks on an imbalanced dev set."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from agegender.callbacks import BestCheckpoint, RunRecord
from agegender.errors import ParameterError
from agegender.keras_metrics import UnweightedAverageRecall


def test_epoch_uar_equals_balanced_accuracy_over_batches_and_ignores_weights():
    rng = np.random.default_rng(0)
    y_true = rng.choice(4, size=200, p=[0.7, 0.2, 0.1, 0.0])  # class 3 never true
    scores = rng.random((200, 4))
    metric = UnweightedAverageRecall(4)
    for start in range(0, 200, 37):  # uneven batches: counts, not batch means
        part = slice(start, start + 37)
        metric.update_state(y_true[part], scores[part], sample_weight=rng.random(37))
    expected = balanced_accuracy_score(y_true, scores.argmax(1))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    metric.update_state([0, 0, 1], [[1, 0, 0, 0]] * 3)  # everyone class 0
    assert float(metric.result()) == pytest.approx(0.5)
    clone = UnweightedAverageRecall.from_config(metric.get_config())
    assert clone.num_classes == 4 and clone.name == "uar"
    with pytest.raises(ParameterError, match="num_classes=1"):
        UnweightedAverageRecall(1)


class _SetWeightsPerEpoch(keras.callbacks.Callback):
    """Gives the model fixed weights at each epoch (the optimizer's step is 0)."""

    def __init__(self, weights):
        super().__init__()
        self.weights = weights

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_weights(self.weights[epoch])


@pytest.mark.parametrize("monitor, kept", [("val_uar", 2), ("val_accuracy", 1)])
def test_best_epoch_is_the_best_dev_uar_not_the_majority_vote(tmp_path, monitor, kept):
    # Dev: 18 clips of class 0 (3 of them look like class 1) and 2 of class 1.
    x = np.array([0.0] * 15 + [1.0] * 3 + [1.0] * 2, dtype="float32")[:, None]
    y = np.array([0] * 18 + [1] * 2)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", UnweightedAverageRecall(2),
                           keras.metrics.SparseCategoricalCrossentropy(name="crossentropy")])
    everyone_zero = [np.zeros((1, 2), "float32"), np.array([5.0, -5.0], "float32")]
    by_feature = [np.array([[-10.0, 10.0]], "float32"), np.array([5.0, -5.0], "float32")]
    # Epoch 1 calls everyone class 0: accuracy 0.90, UAR 0.50. Epoch 2 follows x:
    # accuracy 17/20 = 0.85, UAR (15/18 + 2/2) / 2 = 0.917.
    record = RunRecord(run_id="t", settings={})
    best = BestCheckpoint(tmp_path / "models", "gender", record, monitor=monitor)
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
                        callbacks=[_SetWeightsPerEpoch([everyone_zero, by_feature]), best])
    logged = history.history
    assert logged["val_accuracy"] == pytest.approx([0.90, 0.85])
    assert logged["val_uar"] == pytest.approx([0.5, (15 / 18 + 1) / 2])
    assert record.best_epoch == kept
    info = json.loads((tmp_path / "models" / "best_model_gender.json").read_text())
    assert info["epoch"] == kept and info["monitor"] == monitor

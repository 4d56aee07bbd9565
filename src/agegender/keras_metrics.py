"""Keras metrics of training: unweighted average recall (UAR) over an epoch.

Keras reports accuracy, which on an imbalanced dev set (Common Voice: about 3 men's clips to
1 woman's) cannot tell a balanced model from one that calls everyone male. The best epoch is
chosen on the dev set's UAR instead (``callbacks.BestCheckpoint``), computed here from a
streaming per-class count, so it is exact over the whole epoch (not an average of batches).
"""

from __future__ import annotations

import keras
from keras import ops

from agegender.errors import ParameterError


@keras.saving.register_keras_serializable(package="agegender")
class UnweightedAverageRecall(keras.metrics.Metric):
    """Balanced accuracy over an epoch: mean over classes seen in ``y_true`` of their recall.

    Equals scikit-learn's ``balanced_accuracy_score`` over the same examples. Sample weights
    (Keras passes ``class_weight`` as sample weights) are ignored on purpose: UAR already
    weighs every class alike, and the dev split is never weighted.

    Args:
        num_classes: classes of the task.
        name: metric name (``uar``: logged as ``uar`` and ``val_uar``).

    Raises:
        ParameterError: ``num_classes`` below 2.
    """

    def __init__(self, num_classes: int, name: str = "uar", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ParameterError(f"num_classes={num_classes!r} must be an integer >= 2")
        self.num_classes = num_classes
        self.support = self.add_variable(shape=(num_classes,), initializer="zeros",
                                         name="support", aggregation="sum")
        self.hits = self.add_variable(shape=(num_classes,), initializer="zeros", name="hits",
                                      aggregation="sum")

    def update_state(self, y_true, y_pred, sample_weight=None):  # noqa: ARG002 (see class)
        truth = ops.cast(ops.reshape(y_true, (-1,)), "int32")  # [batch]
        guess = ops.cast(ops.argmax(y_pred, axis=-1), "int32")  # [batch]
        one_hot = ops.one_hot(truth, self.num_classes, dtype=self.dtype)  # [batch, classes]
        right = ops.cast(ops.equal(truth, guess), self.dtype)  # [batch]
        self.support.assign_add(ops.sum(one_hot, axis=0))
        self.hits.assign_add(ops.sum(one_hot * right[:, None], axis=0))

    def result(self):
        seen = ops.cast(self.support > 0, self.dtype)  # [classes] present so far
        recall = self.hits / ops.maximum(self.support, 1.0)
        return ops.sum(recall * seen) / ops.maximum(ops.sum(seen), 1.0)

    def reset_state(self):
        self.support.assign(ops.zeros((self.num_classes,), dtype=self.dtype))
        self.hits.assign(ops.zeros((self.num_classes,), dtype=self.dtype))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

"""bench/training_levers.py: the epoch orders it trains the variants on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("training_levers", _BENCH / "training_levers.py")
levers = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(levers)


def test_balanced_sampling_gives_every_batch_equal_class_shares():
    labels = np.array([0] * 150 + [1] * 40 + [2] * 10)  # 15:4:1, as rare as Common Voice's
    order = levers.epoch_order(labels, np.random.default_rng(0), sampling=True, num_classes=4)
    assert order.shape == (200 // levers.BATCH * levers.BATCH,)
    for batch in order.reshape(-1, levers.BATCH):
        counts = np.bincount(labels[batch], minlength=3)
        assert counts.max() - counts.min() <= 1  # 32 slots over 3 classes: 11, 11, 10
    # The rarest class is cycled: all 10 of its clips used, each about 6 times.
    used = np.bincount(order[labels[order] == 2], minlength=200)[150 + 40:]
    assert used.min() >= 5 and used.max() <= 7


def test_plain_order_is_a_shuffle_without_the_remainder():
    labels = np.array([0] * 70 + [1] * 30)
    order = levers.epoch_order(labels, np.random.default_rng(1), sampling=False,
                               num_classes=2)
    assert order.shape == (96,) and len(set(order.tolist())) == 96
    assert not np.array_equal(order, np.arange(96))
    again = levers.epoch_order(labels, np.random.default_rng(1), sampling=False,
                               num_classes=2)
    np.testing.assert_array_equal(order, again)  # seeded


def test_unknown_variant_and_bad_seeds_are_named(tmp_path):
    with pytest.raises(SystemExit, match=r"unknown \['adamw'\]"):
        levers.main(["--dataset_dir", str(tmp_path), "--variants", "adamw"])
    with pytest.raises(SystemExit, match="--seeds='7,x': expected comma-separated integers"):
        levers.main(["--dataset_dir", str(tmp_path), "--seeds", "7,x"])

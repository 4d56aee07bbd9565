"""Training levers on the shipped kind of model, side by side: class weights against
class-balanced sampling, and a constant learning rate against a cosine schedule.

The model is the product's ``voice_stats`` model (``model.voice_stats_model``: the 45 voice
statistics, standardised, ``BoostedLinear``, softmax), compiled by ``model.compile_model``
as ``train.py`` compiles it, and trained here on each clip's statistics (computed and cached
by ``voice_stats_probe.clip_statistics``, the same ``features.waveform_pitch`` call that
preprocessing stores in the shards) instead of from shards, so every variant sees exactly
the same numbers. The reference is the shipped recipe: balanced class weights, batch 32
(remainder dropped), Adam at 1e-4, 30 epochs, L2 0.001, the epoch kept by dev UAR (first
best). The variants change one thing:

* ``sampling``: no class weights; each batch is drawn with an equal share of every class
  (each class's clips cycled in a fresh random order, so the rarer class is repeated);
  as many steps an epoch as the reference;
* ``cosine``: the learning rate decays from 1e-4 to 0 over the 30 epochs
  (``keras.optimizers.schedules.CosineDecay``);
* ``sampling+cosine``: both.

For each seed (``--seeds``), dev UAR and its kept epoch, test UAR with the speaker-bootstrap
95 % interval, and the paired difference from the reference of the same seed. The test split
scores the variants for the report; nothing is chosen on it. Run from the repo root::

    python bench/training_levers.py --dataset_dir ../shared/cv-sample
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import common  # first: puts src/ on the path, quiets TensorFlow
import numpy as np
import voice_stats_probe  # the statistics and their cache

VARIANTS: tuple[str, ...] = ("weights", "sampling", "cosine", "sampling+cosine")
REFERENCE = VARIANTS[0]
EPOCHS = 30
BATCH = 32
LEARNING_RATE = 1e-4
L2 = 0.001


def epoch_order(labels: np.ndarray, rng: np.random.Generator, *, sampling: bool,
                num_classes: int) -> np.ndarray:
    """Indices of one epoch's training examples, ``len(labels) // BATCH`` batches of BATCH.

    Args:
        labels: class codes of the training clips [clips].
        rng: the run's generator (a fresh order every epoch).
        sampling: every batch holds each class equally often (the slots of a batch are
            dealt to the classes in turn, starting at a random class; each class's clips
            are cycled in random order, reshuffled when used up); else a plain shuffle.
        num_classes: classes of the task (absent ones are skipped).

    Returns:
        int [steps · BATCH].
    """
    steps = len(labels) // BATCH
    if not sampling:
        return rng.permutation(len(labels))[:steps * BATCH]
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    members = [m for m in members if len(m)]
    queues = [rng.permutation(m) for m in members]
    cursor = [0] * len(members)
    order = np.empty(steps * BATCH, int)
    for step in range(steps):
        first = rng.integers(len(members))
        for slot in range(BATCH):
            k = (first + slot) % len(members)
            if cursor[k] == len(queues[k]):
                queues[k], cursor[k] = rng.permutation(members[k]), 0
            order[step * BATCH + slot] = queues[k][cursor[k]]
            cursor[k] += 1
        order[step * BATCH:(step + 1) * BATCH] = rng.permutation(
            order[step * BATCH:(step + 1) * BATCH])
    return order


def train_variant(variant: str, seed: int, data: dict, task: str, names: list[str]) -> dict:
    """Trains one variant; returns its kept epoch, dev UAR and dev/test predictions."""
    import keras

    from agegender.config import ModelParams
    from agegender.metrics import uar
    from agegender.model import compile_model, voice_stats_model
    from agegender.training import balanced_class_weight

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = data["train"]
    sampling = variant.startswith("sampling")
    steps = len(y) // BATCH
    rate = (keras.optimizers.schedules.CosineDecay(LEARNING_RATE, EPOCHS * steps)
            if variant.endswith("cosine") else LEARNING_RATE)
    model = compile_model(voice_stats_model(ModelParams(
        architecture="voice_stats", pitch_input=True, task=task, num_classes=len(names),
        class_names=tuple(names), l2=L2)), rate)
    weights = None if sampling else balanced_class_weight(y, len(names))
    best = {"dev_uar": -1.0}
    for epoch in range(1, EPOCHS + 1):
        order = epoch_order(y, rng, sampling=sampling, num_classes=len(names))
        model.fit({"pitch": x[order]}, y[order], batch_size=BATCH, shuffle=False, epochs=1,
                  class_weight=weights, verbose=0)
        dev = model.predict({"pitch": data["dev"][0]}, batch_size=256, verbose=0).argmax(1)
        score = uar(data["dev"][1], dev)
        if score > best["dev_uar"]:  # the first best epoch, as train.py keeps it
            test = model.predict({"pitch": data["test"][0]}, batch_size=256,
                                 verbose=0).argmax(1)
            best = {"dev_uar": score, "epoch": epoch, "test": test}
    return best


def main(argv: Sequence[str] | None = None) -> None:
    from agegender import labels
    from agegender.metrics import bootstrap_ci, paired_bootstrap_difference, uar

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default="../shared/cv-sample",
                        help="a manifest folder with a split column (only read)")
    parser.add_argument("--task", default="gender", choices=("gender", "age"))
    parser.add_argument("--seeds", default="7,42", help="comma-separated training seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)} "
                             f"({REFERENCE} always runs: it is the reference)")
    parser.add_argument("--cache", default=None, help="the statistics' cache file (.npz)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    variants = voice_stats_probe.chosen("--variants", args.variants, VARIANTS, REFERENCE)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds={args.seeds!r}: expected comma-separated integers") from None
    dataset_dir = Path(args.dataset_dir)
    table, statistics = voice_stats_probe.manifest_statistics(dataset_dir, args.cache,
                                                              args.workers)
    normalise = labels.normalise_gender if args.task == "gender" else labels.normalise_age
    names = labels.class_names(args.task)
    codes = table[args.task].map(
        lambda v: names.index(n) if (n := normalise(v)) in names else -1).to_numpy()
    usable = (codes >= 0) & np.isfinite(statistics).all(axis=1)
    data, speakers = {}, {}
    for split in ("train", "dev", "test"):
        rows = usable & (table["split"] == split).to_numpy()
        if not rows.any():
            raise SystemExit(f"{dataset_dir / 'manifest.csv'}: no usable {split} clips")
        data[split] = (statistics[rows].astype(np.float32), codes[rows])
        speakers[split] = table.loc[rows, "speaker_id"].tolist()
    if len(data["train"][1]) < BATCH:
        raise SystemExit(f"{len(data['train'][1])} usable train clips: need at least one "
                         f"batch of {BATCH}")
    truth = data["test"][1]
    print(f"task {args.task}: {len(data['train'][1])} train, {len(data['dev'][1])} dev, "
          f"{len(truth)} test clips ({len(set(speakers['test']))} test speakers); "
          f"{EPOCHS} epochs, batch {BATCH}, lr {LEARNING_RATE:g}, L2 {L2:g}")
    rows = []
    for seed in seeds:
        runs = {v: train_variant(v, seed, data, args.task, names) for v in variants}
        for variant, run in runs.items():
            low, high = bootstrap_ci(truth, run["test"], speakers["test"])["balanced_accuracy"]
            paired = paired_bootstrap_difference(truth, run["test"], runs[REFERENCE]["test"],
                                                 speakers["test"])
            p_low, p_high = paired["interval"]
            rows.append([variant, seed, f"{run['dev_uar']:.3f} ({run['epoch']})",
                         f"{uar(truth, run['test']):.3f} [{low:.3f}, {high:.3f}]",
                         f"{paired['difference']:+.3f} [{p_low:+.3f}, {p_high:+.3f}]"])
    print(common.format_table(["variant", "seed", "dev UAR (epoch)", "test UAR [95 % CI]",
                               f"test UAR - {REFERENCE}, same seed [95 % CI]"], rows))


if __name__ == "__main__":
    main()

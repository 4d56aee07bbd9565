"""Checks on a split before a model is trained or scored on it.

* ``check_dev_split`` / ``thin_split_warnings`` (training): is the dev split thick enough
  to choose the best epoch on;
* ``check_model_features`` (the test drivers): were the shards made with the features the
  model was trained on.

Both sides import this module rather than each other, so training never imports the
evaluation drivers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from agegender import atomic, labels, provenance
from agegender.analysis import speakers_per_class

log = logging.getLogger(__name__)

MIN_DEV_SPEAKERS, MIN_DEV_CLIPS = 3, 10  # per class, below which dev is called thin


def thin_split_warnings(counts_by_class: dict[str, int],
                        speakers_by_class: dict[str, int | None], *, split: str = "dev",
                        min_speakers: int = MIN_DEV_SPEAKERS,
                        min_clips: int = MIN_DEV_CLIPS) -> list[str]:
    """Warnings for a validation split too thin to choose the best epoch on.

    Args:
        counts_by_class: clips of each class (every class of the task, 0 included).
        speakers_by_class: distinct speakers of each class; None when ids are unknown.
        split: named in the text.
        min_speakers: fewer speakers than this in a class is thin.
        min_clips: fewer clips than this in a class is thin.

    Returns:
        One line per problem; empty when the split is fine.
    """
    problems = []
    for name, count in counts_by_class.items():
        speakers = speakers_by_class.get(name)
        if count < min_clips:
            problems.append(f"{name}: {count} clips (< {min_clips})")
        if speakers is not None and speakers < min_speakers:
            problems.append(f"{name}: {speakers} speakers (< {min_speakers})")
    if not problems:
        return []
    return [f"{split} split is thin ({'; '.join(problems)}): the best epoch chosen on it "
            "means little"]


def check_dev_split(dataset_dir: str | os.PathLike, task: str,
                    report_dir: str | os.PathLike) -> list[str]:
    """Counts dev clips and speakers per class, logs ``thin_split_warnings`` as WARNING and
    writes them (with the counts) to ``report_dir/train_warnings_<task>.txt`` (the model's
    report folder, ``report_dirs.report_dir``). On the demo corpus, whose dev split is thin
    on purpose, each is a ``note: expected in the demo: ...`` instead (``provenance``).

    Returns:
        The thin-split lines, as ``thin_split_warnings`` gives them.
    """
    from agegender.pipeline import split_labels_and_speakers  # noqa: PLC0415

    names = labels.class_names(task)
    codes, speakers = split_labels_and_speakers(dataset_dir, "dev", task)
    counts = {name: int(np.sum(codes == c)) for c, name in enumerate(names)}
    per_class = speakers_per_class(codes, speakers, names)
    known = any(speakers)  # no ids at all: speaker counts are unknown, not zero
    by_class = {name: (per_class.get(name) or 0) if known else None for name in names}
    found = thin_split_warnings(counts, by_class)
    demo = provenance.is_demo_dataset(dataset_dir)
    shown = [provenance.log_problem(log, line, expected_in_demo=demo) for line in found]
    summary = ", ".join(f"{name} {counts[name]} clips/"
                        f"{'?' if by_class[name] is None else by_class[name]} speakers"
                        for name in names)
    atomic.write_text(Path(report_dir) / f"train_warnings_{task}.txt",
                      "\n".join([f"dev: {summary}", *(shown or ["no warnings"])]) + "\n")
    return found


def check_model_features(model, index: dict, dataset_dir: str | os.PathLike,
                         split: str) -> None:
    """Refuses a model whose stored feature settings differ from the shards' (a model trained
    on mel images must not be scored on spectrogram shards).

    Args:
        model: a ``checkpoints.LoadedModel``.
        index: the split's shard index (its ``features``; older indexes without it pass).

    Raises:
        ModelError: one line naming every setting that differs, with both values.
    """
    import dataclasses  # noqa: PLC0415

    from agegender.config import FeatureParams  # noqa: PLC0415
    from agegender.errors import ModelError  # noqa: PLC0415

    stored = index.get("features")
    if not stored:
        return
    defaults = dataclasses.asdict(FeatureParams())
    ours = dataclasses.asdict(model.features)
    pairs = {name: (ours.get(name, defaults.get(name)), stored.get(name, defaults.get(name)))
             for name in sorted(set(ours) | set(stored))}
    differ = [f"{name} {mine!r} vs {theirs!r}" for name, (mine, theirs) in pairs.items()
              if mine != theirs]
    if differ:
        raise ModelError(f"--model_path={model.path} was trained on other features than the "
                         f"{split} shards of {dataset_dir} (model vs shards: "
                         f"{'; '.join(differ)}); preprocess the data with the model's "
                         "settings or use a model trained on these shards")

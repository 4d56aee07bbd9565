"""tf.data input pipeline over the TFRecord shards.

Shards are read in parallel (``num_parallel_reads``), PNGs decoded in a parallel ``map``,
shapes pinned with ``ensure_shape``, training data shuffled, everything batched and
prefetched with AUTOTUNE.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from agegender import labels
from agegender.config import split_dirname
from agegender.errors import DatasetError, ParameterError
from agegender.tfrecords import feature_spec, read_index

log = logging.getLogger(__name__)


def split_folder(dataset_dir: str | os.PathLike, split: str) -> Path:
    """``DIR/TFRecord/cv-valid-{split}``."""
    return Path(dataset_dir) / "TFRecord" / split_dirname(split)


def split_index(dataset_dir: str | os.PathLike, split: str, task: str | None = None,
                image_size: int | None = None) -> dict:
    """Reads and checks a split's shard index.

    Raises:
        DatasetError: no shards, empty split, task without labels, image size mismatch.
    """
    index = read_index(split_folder(dataset_dir, split))
    where = split_folder(dataset_dir, split)
    if index["num_examples"] == 0:
        raise DatasetError(f"{where}: the {split} split holds no examples")
    if task is not None:
        labels.class_names(task)
        if task not in index.get("tasks", []):
            raise DatasetError(f"{where}: shards have no labels for cls_task={task!r} "
                               f"(they have: {', '.join(index.get('tasks', [])) or 'none'})")
        if labelled_count(index, task) == 0:
            raise DatasetError(f"{where}: no example of the {split} split has a label for "
                               f"cls_task={task!r}")
    if image_size is not None and index["image_shape"][0] != image_size:
        raise ParameterError(f"--image_size={image_size} does not match the shards in {where} "
                             f"({index['image_shape'][0]}×{index['image_shape'][1]})")
    return index


def labelled_count(index: dict, task: str) -> int:
    """Examples of a split with a label for ``task`` (all of them for indexes written before
    task-aware cleaning)."""
    return int(index.get("task_counts", {}).get(task, {}).get("examples",
                                                                index["num_examples"]))


def make_dataset(dataset_dir: str | os.PathLike, split: str, task: str, *, batch_size: int,
                 training: bool, seed: int = 42, with_keys: bool = False,
                 image_size: int | None = None, cache: bool = False,
                 deterministic: bool = False):
    """Builds the (image, label) dataset of a split for a task.

    Args:
        dataset_dir: dataset folder holding ``TFRecord/``.
        split: ``train``, ``dev`` or ``test``.
        task: ``gender``, ``age`` or ``gender_age``.
        batch_size: examples a batch.
        training: shuffle (seeded, reshuffled each epoch) and read shards in random order.
        seed: shuffle seed.
        with_keys: yield ``(image, label, key, speaker_id)`` instead, for evaluation.
        image_size: expected side; a mismatch with the shards raises ParameterError.
        cache: keep decoded images in memory after the first epoch (small corpora).
        deterministic: the same element order on every run with the same ``seed`` (ordered
            interleave and map); the default lets parallel reads deliver out of order, faster.

    Training batches drop the remainder: a last batch of a few examples would get the full
    BatchNorm momentum weight (30 % at 0.7) in the moving statistics. Other splits keep
    every example, and so does a training split smaller than one batch.

    Returns:
        ``tf.data.Dataset`` of image float32 [batch, H, W, 3] in 0-255 and label int32
        [batch], only the examples labelled for ``task`` (code >= 0); plus the split's
        index as a second return value.
    """
    import tensorflow as tf  # noqa: PLC0415

    index = split_index(dataset_dir, split, task, image_size)
    height, width, channels = index["image_shape"]
    folder = split_folder(dataset_dir, split)
    files = [str(folder / name) for name in index["shards"]]
    spec = feature_spec()
    label_key = f"label/{task}"

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_png(example["image/png"], channels=channels)  # [H, W, 3] uint8
        image = tf.ensure_shape(image, (height, width, channels))
        label = tf.cast(example[label_key], tf.int32)
        if with_keys:
            return image, label, example["clip/key"], example["clip/speaker_id"]
        return image, label

    def labelled(image, label, *rest):
        # A clip kept for the other task only stores -1 here.
        return label >= 0

    def to_float(image, *rest):
        # uint8 until batching keeps shuffle buffers and caches 4x smaller.
        return (tf.cast(image, tf.float32), *rest)

    autotune = tf.data.AUTOTUNE
    if training and len(files) > 1:
        dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                                     num_parallel_calls=autotune, deterministic=deterministic)
    else:
        dataset = tf.data.TFRecordDataset(files, num_parallel_reads=min(8, len(files)))
    count = labelled_count(index, task)
    log.info("%s split, task %s: %d examples (%d without a %s label left out)", split, task,
             count, index["num_examples"] - count, task)
    buffer = min(index["num_examples"], 10_000)
    if cache:
        # Decode once, then reshuffle the decoded images every epoch.
        dataset = dataset.map(parse, num_parallel_calls=autotune).filter(labelled).cache()
        if training:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        if training:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.map(parse, num_parallel_calls=autotune,
                              deterministic=deterministic or not training)
        dataset = dataset.filter(labelled)
    # The index knows the count: Keras then shows real progress bars and epoch ends.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    # A split smaller than one batch (tiny test corpora) keeps its one partial batch.
    drop_remainder = training and count >= batch_size
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(to_float, num_parallel_calls=autotune)
    dataset = dataset.prefetch(autotune)
    return dataset, index


def split_labels(dataset_dir: str | os.PathLike, split: str, task: str):
    """The label codes of a split's examples labelled for ``task``, in stored order; shape
    [labelled examples], int32 numpy."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    index = split_index(dataset_dir, split, task)
    folder = split_folder(dataset_dir, split)
    spec = {f"label/{task}": feature_spec()[f"label/{task}"]}
    records = tf.data.TFRecordDataset([str(folder / name) for name in index["shards"]])
    parsed = records.batch(1024).map(lambda r: tf.io.parse_example(r, spec)[f"label/{task}"])
    codes = np.concatenate([batch.numpy() for batch in parsed] or [np.zeros(0)]).astype(np.int32)
    return codes[codes >= 0]


def split_labels_and_speakers(dataset_dir: str | os.PathLike, split: str, task: str):
    """Label codes and speaker ids of a split's examples labelled for ``task``, in stored
    order, without decoding images.

    Returns:
        (int32 numpy [examples], list of str [examples], "" where the speaker is unknown).
    """
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    index = split_index(dataset_dir, split, task)
    folder = split_folder(dataset_dir, split)
    spec = {name: feature_spec()[name] for name in (f"label/{task}", "clip/speaker_id")}
    records = tf.data.TFRecordDataset([str(folder / name) for name in index["shards"]])
    codes, speakers = [], []
    for batch in records.batch(1024).map(lambda r: tf.io.parse_example(r, spec)):
        codes.append(batch[f"label/{task}"].numpy())
        speakers += [s.decode() for s in batch["clip/speaker_id"].numpy()]
    codes = np.concatenate(codes or [np.zeros(0)]).astype(np.int32)
    labelled = codes >= 0  # examples without this task's label (code -1) take no part
    return codes[labelled], [s for s, keep in zip(speakers, labelled, strict=True) if keep]

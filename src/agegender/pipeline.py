"""tf.data input pipeline over the TFRecord shards.

Shards are read in parallel (``num_parallel_reads``), PNGs decoded in a parallel ``map``,
shapes pinned with ``ensure_shape``, training data shuffled, everything batched and
prefetched with AUTOTUNE.
"""

from __future__ import annotations

import os
from pathlib import Path

from agegender import labels
from agegender.config import split_dirname
from agegender.errors import DatasetError, ParameterError
from agegender.tfrecords import feature_spec, read_index


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
    if image_size is not None and index["image_shape"][0] != image_size:
        raise ParameterError(f"--image_size={image_size} does not match the shards in {where} "
                             f"({index['image_shape'][0]}×{index['image_shape'][1]})")
    return index


# SpecAugment-style masks (Park et al. 2019, "LD" policy scaled to our small images): two
# frequency masks of up to 15 % of the rows, two time masks of up to 15 % of the columns.
FREQ_MASKS, MAX_FREQ_MASK = 2, 0.15
TIME_MASKS, MAX_TIME_MASK = 2, 0.15


def spec_augment(images, seed, *, freq_masks: int = FREQ_MASKS,
                 max_freq_mask: float = MAX_FREQ_MASK, time_masks: int = TIME_MASKS,
                 max_time_mask: float = MAX_TIME_MASK):
    """Masks random bands of rows (frequency) and columns (time) of a batch of images.

    Every mask is drawn per image: a width uniform in [0, max · side] and a uniform start.
    Masked pixels take the image's own mean colour, the value SpecAugment's zero is on a
    mean-normalised log spectrum: the mask hides information without painting a colour
    (black is not a viridis colour) that the network could learn to look for, and the
    batch statistics BatchNorm sees barely move.

    Args:
        images: float32 [batch, H, W, C].
        seed: int32/int64 [2], a stateless seed: the same seed gives the same masks.
        freq_masks, time_masks: masks of each kind per image.
        max_freq_mask, max_time_mask: largest mask, as a fraction of H / W.

    Returns:
        float32 [batch, H, W, C], masked.
    """
    import tensorflow as tf  # noqa: PLC0415

    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)  # [4, 2]

    def bands(count, side, fraction, width_seed, start_seed):
        """[batch, side] bool: True inside any of ``count`` random bands per image."""
        side_f = tf.cast(side, tf.float32)
        size = tf.floor(tf.random.stateless_uniform((batch, count), width_seed)
                        * (fraction * side_f + 1.0))  # [batch, count], 0..max
        size = tf.minimum(size, side_f)
        start = tf.floor(tf.random.stateless_uniform((batch, count), start_seed)
                         * (side_f - size + 1.0))  # [batch, count]
        position = tf.cast(tf.range(side), tf.float32)[tf.newaxis, tf.newaxis]  # [1, 1, side]
        inside = ((position >= start[..., tf.newaxis])
                  & (position < (start + size)[..., tf.newaxis]))  # [batch, count, side]
        return tf.reduce_any(inside, axis=1)  # [batch, side]

    rows = bands(freq_masks, height, max_freq_mask, seeds[0], seeds[1])  # [batch, H]
    columns = bands(time_masks, width, max_time_mask, seeds[2], seeds[3])  # [batch, W]
    masked = rows[:, :, tf.newaxis] | columns[:, tf.newaxis, :]  # [batch, H, W]
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)  # [batch, 1, 1, C]
    return tf.where(masked[..., tf.newaxis], mean, images)


def make_dataset(dataset_dir: str | os.PathLike, split: str, task: str, *, batch_size: int,
                 training: bool, seed: int = 42, with_keys: bool = False,
                 image_size: int | None = None, cache: bool = False, augment: bool = False):
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
        augment: ``spec_augment`` each training batch (seeded, new masks every epoch);
            ignored unless ``training``.

    Returns:
        ``tf.data.Dataset`` of image float32 [batch, H, W, 3] in 0-255 and label int32
        [batch]; plus the split's index as a second return value.
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

    def to_float(image, *rest):
        # uint8 until batching keeps shuffle buffers and caches 4x smaller.
        return (tf.cast(image, tf.float32), *rest)

    autotune = tf.data.AUTOTUNE
    if training and len(files) > 1:
        dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                                     num_parallel_calls=autotune, deterministic=False)
    else:
        dataset = tf.data.TFRecordDataset(files, num_parallel_reads=min(8, len(files)))
    buffer = min(index["num_examples"], 10_000)
    if cache:
        # Decode once, then reshuffle the decoded images every epoch.
        dataset = dataset.map(parse, num_parallel_calls=autotune).cache()
        if training:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        if training:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.map(parse, num_parallel_calls=autotune, deterministic=not training)
    # The index knows the count: Keras then shows real progress bars and epoch ends.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(index["num_examples"]))
    dataset = dataset.batch(batch_size).map(to_float, num_parallel_calls=autotune)
    if training and augment:
        # One stateless seed pair a batch, from a seeded stream that changes every epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, pair: (spec_augment(batch[0], pair), *batch[1:]),
            num_parallel_calls=autotune)
    dataset = dataset.prefetch(autotune)
    return dataset, index


def split_labels(dataset_dir: str | os.PathLike, split: str, task: str):
    """All label codes of a split, in stored order; shape [examples], int32 numpy."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    index = split_index(dataset_dir, split, task)
    folder = split_folder(dataset_dir, split)
    spec = {f"label/{task}": feature_spec()[f"label/{task}"]}
    records = tf.data.TFRecordDataset([str(folder / name) for name in index["shards"]])
    parsed = records.batch(1024).map(lambda r: tf.io.parse_example(r, spec)[f"label/{task}"])
    return np.concatenate([batch.numpy() for batch in parsed] or [np.zeros(0)]).astype(np.int32)

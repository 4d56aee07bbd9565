"""tf.data input pipeline over the TFRecord shards.

Shards are read in parallel (``num_parallel_reads``), PNGs decoded in a parallel ``map``,
shapes pinned with ``ensure_shape``, training data shuffled, everything batched and
prefetched with AUTOTUNE.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from agegender import labels
from agegender.config import split_dirname
from agegender.errors import DatasetError, ParameterError
from agegender.tfrecords import feature_spec, read_index, read_records, scan_shard

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
        stored = index.get("task_counts", {}).get(task, {}).get("classes", {})
        unknown = [name for name in stored if name not in labels.class_names(task)]
        if unknown:
            raise DatasetError(
                f"{where}: the shard index counts classes {', '.join(map(repr, unknown))}, "
                f"not classes of cls_task={task!r} ({', '.join(labels.class_names(task))}); "
                "re-run src/preprocess_dataset.py --stage=tfrecords --overwrite")
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


def scan_split(dataset_dir: str | os.PathLike, split: str, index: dict | None = None, *,
               skip_corrupt: bool = False, log_skipped: bool = True) -> dict:
    """Pre-scans a split's shards (``tfrecords.scan_shard``: framing, CRCs, PNGs) so that a
    corrupt shard is named, not met as a ``DataLossError`` in the middle of an epoch.

    Args:
        dataset_dir: dataset folder.
        split: the split.
        index: its index (read when None).
        skip_corrupt: go on without the corrupt records (logged with their shards) instead
            of stopping.
        log_skipped: log the skipped records (a WARNING).

    Returns:
        ``clean_files`` (shards without a problem), ``extra`` (record bytes of the good
        records of the other shards), ``good`` (label codes and speaker of every readable
        record, in stored order), ``skipped`` (records lost) and ``bad_shards``.

    Raises:
        DatasetError: a corrupt record when not ``skip_corrupt``, naming shard and record.
    """
    index = index if index is not None else read_index(split_folder(dataset_dir, split))
    folder = split_folder(dataset_dir, split)
    counts = index.get("shard_counts") or [None] * len(index["shards"])
    clean, extra, good, problems, bad, skipped = [], [], [], [], [], 0
    for name, expected in zip(index["shards"], counts, strict=True):
        path = folder / name
        try:
            scan = scan_shard(path, expected=expected, image_shape=index.get("image_shape"),
                              images="spectrogram" in index.get("inputs", ["spectrogram"]))
        except OSError as err:
            raise DatasetError(f"{path}: cannot be read ({err.strerror or err})") from err
        good += [(codes, speaker) for *_, codes, speaker in scan.good]
        if not scan.problems:
            clean.append(str(path))
            continue
        problems += scan.problems
        bad.append(str(path))
        skipped += scan.skipped
        extra += read_records(path, [(offset, length) for offset, length, *_ in scan.good])
    if problems and not skip_corrupt:
        more = (f" ({len(problems) - 1} more problem(s) in {len(bad)} shard(s))"
                if len(problems) > 1 else "")
        raise DatasetError(f"{problems[0]}{more}; re-run src/preprocess_dataset.py "
                           "--stage=tfrecords --overwrite to rewrite the shards, or pass "
                           "--skip_corrupt to go on without the corrupt records")
    if problems and log_skipped:
        log.warning("%s split: skipping %d corrupt record(s) in %d shard(s): %s", split,
                    skipped, len(bad), "; ".join(str(p) for p in problems[:5])
                    + (f"; ... ({len(problems) - 5} more)" if len(problems) > 5 else ""))
    if not good:
        raise DatasetError(f"{folder}: no readable example in the {split} split")
    return {"clean_files": clean, "extra": extra, "good": good, "skipped": skipped,
            "bad_shards": bad}


def corrupt_summary(corrupt: dict[str, dict]) -> str:
    """One line: corrupt records skipped per split and their shards ("" when none).

    Args:
        corrupt: ``{split: index["corrupt"]}`` as ``make_dataset`` returns it.
    """
    parts = [f"{split}: {info['records']} record(s) in {', '.join(info['shards'])}"
             for split, info in corrupt.items() if info and info.get("shards")]
    return ("skipped corrupt records (--skip_corrupt): " + "; ".join(parts)) if parts else ""


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
                 image_size: int | None = None, cache: bool = False,
                 deterministic: bool = False, skip_corrupt: bool = False,
                 augment: bool = False, inputs: Sequence[str] = ("spectrogram",)):
    """Builds the (inputs, label) dataset of a split for a task.

    Args:
        dataset_dir: dataset folder holding ``TFRecord/``.
        split: ``train``, ``dev`` or ``test``.
        task: ``gender``, ``age`` or ``gender_age``.
        batch_size: examples a batch.
        training: shuffle (seeded, reshuffled each epoch) and read shards in random order.
        seed: shuffle seed.
        with_keys: yield ``(inputs, label, key, speaker_id)`` instead, for evaluation.
        image_size: expected side; a mismatch with the shards raises ParameterError.
        cache: keep decoded images in memory after the first epoch (small corpora).
        deterministic: the same element order on every run with the same ``seed`` (ordered
            interleave and map); the default lets parallel reads deliver out of order, faster.
        augment: ``spec_augment`` each training batch (seeded, new masks every epoch);
            ignored unless ``training``.
        skip_corrupt: leave out corrupt records (``scan_split``) instead of stopping with
            a DatasetError naming the first; ``index["corrupt"]`` tells what was skipped.
        inputs: the model's input kinds (``model_inputs.KINDS``, ``ModelParams.input_kinds``):
            ``spectrogram`` (the PNG, decoded) and/or ``pitch`` (the clip's voice statistics
            stored by preprocessing, float32 [batch, len(voice_stats.STAT_NAMES)]); a kind
            the model does not read is not decoded.

    Training batches drop the remainder: a last batch of a few examples would get the full
    BatchNorm momentum weight (30 % at 0.7) in the moving statistics. Other splits keep
    every example, and so does a training split smaller than one batch.

    Returns:
        ``tf.data.Dataset`` of inputs {kind: float32 [batch, ...]} (the image in 0-255) and
        label int32 [batch], only the examples labelled for ``task`` (code >= 0); plus the
        split's index as a second return value.
    """
    # Long because: a 32-line docstring (eleven arguments, element shapes); the code is one
    # tf.data chain (read, parse, filter, cache/shuffle, batch, augment) whose order matters.
    import tensorflow as tf  # noqa: PLC0415

    from agegender.model_inputs import check_kinds  # noqa: PLC0415

    if batch_size < 1:
        raise ParameterError(f"--batch_size={batch_size} must be >= 1")
    kinds = check_kinds(inputs)
    images, pitch, embedding = ("spectrogram" in kinds, "pitch" in kinds,
                                "embedding" in kinds)
    index = split_index(dataset_dir, split, task, image_size)
    height, width, channels = index["image_shape"]
    scan = scan_split(dataset_dir, split, index, skip_corrupt=skip_corrupt)
    files = scan["clean_files"]
    index = {**index, "corrupt": {"records": scan["skipped"], "shards": scan["bad_shards"]}}
    label_key = f"label/{task}"
    if images and "spectrogram" not in index.get("inputs", ["spectrogram"]):
        raise DatasetError(
            f"{split_folder(dataset_dir, split)}: the shards hold no spectrograms (made with "
            f"--inputs {','.join(index['inputs'])}), which this model reads; re-run "
            f"src/preprocess_dataset.py on {dataset_dir} with --inputs naming spectrogram")
    pitch_size = _pitch_size(index, dataset_dir, split) if pitch else 0
    embedding_size = _embedding_size(index, dataset_dir, split) if embedding else 0

    parse = _record_parser(kinds, (height, width, channels), pitch_size, embedding_size,
                           label_key, with_keys=with_keys)

    def labelled(parsed, label, *rest):
        # A clip kept for the other task only stores -1 here.
        return label >= 0

    def to_float(parsed, *rest):
        # uint8 until batching keeps shuffle buffers and caches 4x smaller.
        return ({kind: tf.cast(parsed[kind], tf.float32) for kind in kinds}, *rest)

    autotune = tf.data.AUTOTUNE
    dataset = _read_records(files, scan["extra"], training=training, seed=seed,
                            deterministic=deterministic)
    count = labelled_count(index, task)
    if scan["bad_shards"]:
        count = sum(1 for codes, _ in scan["good"] if codes.get(task, -1) >= 0)
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
    if training and augment and images:
        # One stateless seed pair a batch, from a seeded stream that changes every epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, pair: (_augmented(batch[0], pair), *batch[1:]),
            num_parallel_calls=autotune)
    dataset = dataset.prefetch(autotune)
    return dataset, index


def _record_parser(kinds: Sequence[str], shape: Sequence[int], pitch_size: int,
                   embedding_size: int, label_key: str, *, with_keys: bool):
    """The function parsing one serialized Example into ``(inputs, label[, key, speaker])``.

    Args:
        kinds: input kinds to decode; a kind the model does not read is never decoded.
        shape: (height, width, channels) of the spectrogram PNGs.
        pitch_size: floats in ``clip/pitch`` (0 when not read).
        embedding_size: floats in ``clip/embedding`` (0 when not read).
        label_key: the task's label feature, ``label/<task>``.
        with_keys: also return ``clip/key`` and ``clip/speaker_id``.

    Returns:
        ``parse(record)``: inputs {kind: uint8 [H, W, C] or float32 [n]}, label int32 scalar.
    """
    import tensorflow as tf  # noqa: PLC0415

    spec = feature_spec()
    height, width, channels = shape
    images, pitch, embedding = ("spectrogram" in kinds, "pitch" in kinds,
                                "embedding" in kinds)

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        parsed = {}
        if images:  # a kind the model does not read is never decoded (PNG: the main cost)
            image = tf.io.decode_png(example["image/png"], channels=channels)  # [H, W, 3] uint8
            parsed["spectrogram"] = tf.ensure_shape(image, (height, width, channels))
        if pitch:
            values = tf.io.decode_raw(example["clip/pitch"], tf.float32, little_endian=True)
            parsed["pitch"] = tf.ensure_shape(values, (pitch_size,))
        if embedding:
            values = tf.io.decode_raw(example["clip/embedding"], tf.float32, little_endian=True)
            parsed["embedding"] = tf.ensure_shape(values, (embedding_size,))
        label = tf.cast(example[label_key], tf.int32)
        if with_keys:
            return parsed, label, example["clip/key"], example["clip/speaker_id"]
        return parsed, label

    return parse


def _read_records(files: list[str], extra, *, training: bool, seed: int,
                  deterministic: bool):
    """The serialized records of ``files`` (shuffled shard order and interleaved when
    ``training``), plus the ``extra`` records ``scan_split`` kept from damaged shards."""
    import tensorflow as tf  # noqa: PLC0415

    autotune = tf.data.AUTOTUNE
    if training and len(files) > 1:
        dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                                     num_parallel_calls=autotune, deterministic=deterministic)
    elif files:
        dataset = tf.data.TFRecordDataset(files, num_parallel_reads=min(8, len(files)))
    return _with_records(dataset if files else None, extra)


def _augmented(inputs, seed):
    """``spec_augment`` of the image in an inputs dict (other kinds stay as they are)."""
    return {**inputs, "spectrogram": spec_augment(inputs["spectrogram"], seed)}


def _pitch_size(index: dict, dataset_dir: str | os.PathLike, split: str) -> int:
    """The number of voice statistics a split's shards store; DatasetError when they are
    not this version's ``voice_stats.STAT_NAMES``."""
    from agegender.voice_stats import STAT_NAMES  # noqa: PLC0415

    names = index.get("pitch_features")
    made_with = index.get("inputs")
    if made_with is not None and "pitch" not in made_with:
        raise DatasetError(
            f"{split_folder(dataset_dir, split)}: the shards hold no voice statistics (made "
            f"with --inputs {','.join(made_with)}), which a --pitch_input or voice_stats model "
            f"reads; re-run src/preprocess_dataset.py on {dataset_dir} with --inputs naming "
            "pitch (e.g. --inputs=spectrogram,pitch)")
    if names != list(STAT_NAMES):
        held = "no voice statistics" if not names else f"{len(names)} other voice statistics"
        raise DatasetError(
            f"{split_folder(dataset_dir, split)}: the shards hold {held}, not the "
            f"{len(STAT_NAMES)} (F0 and spectral envelope) a --pitch_input model reads (made "
            f"by an older preprocessing); re-run src/preprocess_dataset.py on {dataset_dir} "
            "with --inputs=spectrogram,pitch to add them")
    return len(names)


def _embedding_size(index: dict, dataset_dir: str | os.PathLike, split: str) -> int:
    """The size of the speaker embeddings a split's shards store; DatasetError when they
    hold none (made without ``--inputs ...embedding``)."""
    from agegender.model import EMBEDDING_SIZE  # noqa: PLC0415

    size = index.get("embedding_size")
    if size != EMBEDDING_SIZE:
        held = "no speaker embeddings" if not size else f"embeddings of size {size}"
        raise DatasetError(
            f"{split_folder(dataset_dir, split)}: the shards hold {held}, not the "
            f"{EMBEDDING_SIZE}-value voice-encoder embeddings this model reads; re-run "
            f"src/preprocess_dataset.py on {dataset_dir} with --inputs naming embedding")
    return size


def _with_records(dataset, records: list[bytes]):
    """``dataset`` (or nothing) followed by in-memory serialised records (the good records
    of corrupt shards, under ``--skip_corrupt``)."""
    import tensorflow as tf  # noqa: PLC0415

    if not records:
        return dataset
    extra = tf.data.Dataset.from_tensor_slices(tf.constant(records, dtype=tf.string))
    return extra if dataset is None else dataset.concatenate(extra)


def split_labels(dataset_dir: str | os.PathLike, split: str, task: str):
    """The label codes of a split's examples labelled for ``task``, in stored order; shape
    [labelled examples], int32 numpy. Read without TensorFlow by the shard pre-scan;
    corrupt records are left out (``make_dataset`` decides whether they stop a run)."""
    return split_labels_and_speakers(dataset_dir, split, task)[0]


def split_labels_and_speakers(dataset_dir: str | os.PathLike, split: str, task: str):
    """Label codes and speaker ids of a split's examples labelled for ``task``, in stored
    order, without decoding images (corrupt records left out, see ``split_labels``).

    Returns:
        (int32 numpy [examples], list of str [examples], "" where the speaker is unknown).
    """
    import numpy as np  # noqa: PLC0415

    index = split_index(dataset_dir, split, task)
    scan = scan_split(dataset_dir, split, index, skip_corrupt=True, log_skipped=False)
    pairs = [(codes.get(task, -1), speaker) for codes, speaker in scan["good"]]
    codes = np.asarray([code for code, _ in pairs], dtype=np.int32)
    labelled = codes >= 0  # examples without this task's label (code -1) take no part
    return codes[labelled], [s for (_, s), keep in zip(pairs, labelled, strict=True) if keep]

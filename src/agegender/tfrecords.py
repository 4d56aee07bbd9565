"""The TFRecord format: one feature spec, one shard-name template, writer and index.

Each example holds a clip's spectrogram as PNG bytes (about 5x smaller than float tensors),
its shape, the three label codes, the clip key (file stem, so any prediction traces back to
its audio) and the speaker id when the layout has one.

A split folder holds ``spec_data_{i:03d}.tfrecord`` shards and ``shards.json``, the index
readers go by. The index is written first with ``complete: false`` (the plan), shards are
written to a temporary name and renamed, and the index is rewritten ``complete: true`` last:
a re-run with the same plan keeps every shard already finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agegender import atomic, labels
from agegender.errors import DatasetError

INDEX_NAME = "shards.json"
FORMAT_VERSION = 1


def shard_name(index: int) -> str:
    """The file name of shard ``index`` (the original project's template)."""
    return f"spec_data_{index:03d}.tfrecord"


def feature_spec() -> dict:
    """The one description of an example, used to parse it (the writer mirrors it).

    Returns:
        ``{name: tf.io.FixedLenFeature}``.
    """
    import tensorflow as tf  # noqa: PLC0415

    spec = {
        "image/png": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/channels": tf.io.FixedLenFeature([], tf.int64),
        "clip/key": tf.io.FixedLenFeature([], tf.string),
        "clip/speaker_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    for task in labels.TASKS:
        spec[f"label/{task}"] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
    return spec


@dataclass(frozen=True)
class Example:
    """One clip as stored: PNG bytes, shape, label codes, key and speaker."""

    png: bytes
    height: int
    width: int
    channels: int
    key: str
    speaker_id: str
    label_codes: dict  # task -> int code

    def serialize(self) -> bytes:
        """Encodes as a ``tf.train.Example`` following ``feature_spec``."""
        import tensorflow as tf  # noqa: PLC0415

        def _bytes(value: bytes) -> tf.train.Feature:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

        def _int(value: int) -> tf.train.Feature:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

        feature = {
            "image/png": _bytes(self.png),
            "image/height": _int(self.height),
            "image/width": _int(self.width),
            "image/channels": _int(self.channels),
            "clip/key": _bytes(self.key.encode("utf-8")),
            "clip/speaker_id": _bytes(self.speaker_id.encode("utf-8")),
        }
        for task in labels.TASKS:
            feature[f"label/{task}"] = _int(self.label_codes.get(task, -1))
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def plan_digest(keys: Sequence[str], metadata: dict) -> str:
    """A fingerprint of what a split's shards will hold: the ordered keys and the metadata."""
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
    for key in keys:
        digest.update(key.encode("utf-8") + b"\n")
    return digest.hexdigest()


def read_index(split_dir: str | os.PathLike) -> dict:
    """Reads a split folder's ``shards.json``.

    Raises:
        DatasetError: no index, an unfinished one, or a shard it lists is missing.
    """
    path = Path(split_dir) / INDEX_NAME
    if not path.is_file():
        raise DatasetError(f"{split_dir}: no TFRecord shards ({INDEX_NAME} not found); "
                           "run src/preprocess_dataset.py first")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    if not index.get("complete"):
        raise DatasetError(f"{path}: shards are incomplete; re-run src/preprocess_dataset.py "
                           "--stage=tfrecords to finish them")
    for name in index["shards"]:
        if not (Path(split_dir) / name).is_file():
            raise DatasetError(f"{Path(split_dir) / name}: shard listed in {INDEX_NAME} is missing")
    return index


def _write_json_atomic(path: Path, content: dict) -> None:
    atomic.write_text(path, json.dumps(content, indent=2, sort_keys=True))


def write_shards(split_dir: str | os.PathLike, keys: Sequence[str],
                 make_example: Callable[[str], "Example"], *, shard_size: int, metadata: dict,
                 overwrite: bool = False,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Writes a split's examples, ``shard_size`` per shard, resumably.

    Args:
        split_dir: output folder of the split.
        keys: clip keys in the order they are to be stored (already shuffled for train).
        make_example: ``key -> Example``; called only for shards that are written.
        shard_size: examples per shard.
        metadata: stored in the index (image shape, feature params, tasks, ...).
        overwrite: rewrite shards even if the plan is unchanged.
        progress: optional callable ``n -> None`` advanced per example written or kept.

    Returns:
        The final index.
    """
    import tensorflow as tf  # noqa: PLC0415

    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    groups = [list(keys[i:i + shard_size]) for i in range(0, len(keys), shard_size)]
    digest = plan_digest(keys, metadata)
    index_path = split_dir / INDEX_NAME
    try:
        previous = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except json.JSONDecodeError:  # a truncated index: start this split afresh
        previous = {}
    same_plan = previous.get("digest") == digest and not overwrite
    plan = {
        "format_version": FORMAT_VERSION, "digest": digest, "complete": False,
        "num_examples": len(keys), "shards": [shard_name(i) for i in range(len(groups))],
        "shard_counts": [len(group) for group in groups], **metadata,
    }
    if same_plan and previous.get("complete"):
        if progress:
            progress(len(keys))
        return previous
    _write_json_atomic(index_path, plan)
    for number, group in enumerate(groups):
        target = split_dir / shard_name(number)
        if same_plan and target.is_file():
            if progress:
                progress(len(group))
            continue
        with atomic.replacing(target) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for key in group:
                writer.write(make_example(key).serialize())
                if progress:
                    progress(1)
    # Shards of an earlier, larger plan would mislead a reader that globs.
    for stale in split_dir.glob("spec_data_*.tfrecord"):
        if stale.name not in plan["shards"]:
            stale.unlink()
    plan["complete"] = True
    _write_json_atomic(index_path, plan)
    return plan

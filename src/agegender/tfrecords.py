"""The TFRecord format: one feature spec, one shard-name template, writer and index.

Each example holds a clip's spectrogram as PNG bytes (about 5x smaller than float tensors),
its shape, the three label codes, the clip key (file stem, so any prediction traces back to
its audio) and the speaker id when the layout has one.

A split folder holds ``spec_data_{i:03d}.tfrecord`` shards and ``shards.json``, the index
readers go by. The index is written first with ``complete: false`` (the plan), shards are
written to a temporary name and renamed, and the index is rewritten ``complete: true`` last:
a re-run with the same plan keeps every shard already finished.

The writer frames records by hand (length, masked CRC32C, data) instead of calling
``tf.io.TFRecordWriter``, so preprocessing never imports TensorFlow (about 3.5 s a process
to import); tests read every feature preset's shards back with
``tf.data.TFRecordDataset`` to keep the two byte-identical in what they mean.
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


# The one description of an example: (name, kind, default). ``feature_spec`` (the reader)
# and ``Example.serialize`` (the writer) both go by it, so they cannot drift apart.
# kind: "bytes" or "int64"; default None means the feature is required.
FIELDS: tuple[tuple[str, str, bytes | int | None], ...] = (
    ("image/png", "bytes", None),
    ("image/height", "int64", None),
    ("image/width", "int64", None),
    ("image/channels", "int64", None),
    ("clip/key", "bytes", None),
    ("clip/speaker_id", "bytes", b""),
    # voice_stats.STAT_NAMES as little-endian float32 (b"" in shards made without them).
    ("clip/pitch", "bytes", b""),
    # The voice encoder's speaker embedding as little-endian float32 (b"": not stored).
    ("clip/embedding", "bytes", b""),
    *((f"label/{task}", "int64", -1) for task in labels.TASKS),
)


def feature_spec() -> dict:
    """The one description of an example, used to parse it (built from ``FIELDS``).

    Returns:
        ``{name: tf.io.FixedLenFeature}``.
    """
    import tensorflow as tf  # noqa: PLC0415

    dtypes = {"bytes": tf.string, "int64": tf.int64}
    return {name: tf.io.FixedLenFeature(
                [], dtypes[kind], **({} if default is None else {"default_value": default}))
            for name, kind, default in FIELDS}


# tf.train.Example is encoded by hand so that writing shards needs no TensorFlow (3.5 s to
# import, and no fork after it). Wire format (tensorflow/core/example/{example,feature}.proto):
# Example{1: Features}, Features{1: map<string, Feature>} (a map entry is {1: key, 2: value}),
# Feature{1: BytesList, 3: Int64List}, BytesList{1: repeated bytes}, Int64List{1: packed
# varints}. A tag byte is (field number << 3) | wire type; every field written here is
# length-delimited (wire type 2), so field 1 is 0x0a, 2 is 0x12 and 3 is 0x1a.


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint; a negative int64 is its 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited field: tag byte, length varint, payload."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _feature(kind: str, value: bytes | int) -> bytes:
    """A one-value ``tf.train.Feature``."""
    if kind == "bytes":
        return _field(0x0A, _field(0x0A, value))  # bytes_list {value: [value]}
    return _field(0x1A, _field(0x0A, _varint(int(value))))  # int64_list {value: [value]}


def encode_example(values: dict) -> bytes:
    """Serialises one example as a ``tf.train.Example``, features sorted by name.

    Protobuf leaves map order open, so the bytes may list features in another order than
    ``tf.train.Example(...).SerializeToString()`` does; parsed, they are equal (a test checks).

    Args:
        values: ``{name: bytes | int}``, one value per name of ``FIELDS``.

    Returns:
        The serialised ``tf.train.Example``.
    """
    kinds = {name: kind for name, kind, _ in FIELDS}
    entries = (_field(0x0A, name.encode("utf-8")) + _field(0x12, _feature(kinds[name], value))
               for name, value in sorted(values.items()))
    return _field(0x0A, b"".join(_field(0x0A, entry) for entry in entries))


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC-32C of ``data``, 4 bytes little-endian."""
    import google_crc32c  # noqa: PLC0415

    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")


def tfrecord_frame(record: bytes) -> bytes:
    """One TFRecord: uint64 LE length, masked CRC of the length, the data, masked CRC of it."""
    length = len(record).to_bytes(8, "little")
    return length + _masked_crc(length) + record + _masked_crc(record)


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
    pitch: bytes = b""  # voice_stats.STAT_NAMES, little-endian float32; b"" = none stored
    embedding: bytes = b""  # voice_encoder embedding, little-endian float32; b"" = none

    def serialize(self) -> bytes:
        """Encodes as a ``tf.train.Example`` following ``FIELDS`` (no TensorFlow needed)."""
        values = {
            "image/png": self.png,
            "image/height": self.height,
            "image/width": self.width,
            "image/channels": self.channels,
            "clip/key": self.key.encode("utf-8"),
            "clip/speaker_id": self.speaker_id.encode("utf-8"),
            **({"clip/pitch": self.pitch} if self.pitch else {}),
            **({"clip/embedding": self.embedding} if self.embedding else {}),
            **{f"label/{task}": self.label_codes.get(task, -1) for task in labels.TASKS},
        }
        return encode_example(values)


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
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    # Half-written shards of a killed run (named *.tfrecord.partial, never *.tfrecord).
    atomic.remove_leftovers(split_dir, startswith=("spec_data_", INDEX_NAME))
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
        with atomic.replacing(target, keep_suffix=False) as tmp, open(tmp, "wb") as writer:
            for key in group:
                writer.write(tfrecord_frame(make_example(key).serialize()))
                if progress:
                    progress(1)
    # Shards of an earlier, larger plan would mislead a reader that globs.
    for stale in split_dir.glob("spec_data_*.tfrecord"):
        if stale.name not in plan["shards"]:
            stale.unlink()
    plan["complete"] = True
    _write_json_atomic(index_path, plan)
    return plan


# ---- Reading shards without TensorFlow: a pre-scan that names corrupt records -------------

def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the protobuf varint at ``pos``; ValueError past the end."""
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of a protobuf message; ValueError if malformed."""
    out, pos = [], 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            out.append((number, wire, data[pos:pos + size]))
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(data):
                raise ValueError("truncated field")
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def decode_example(record: bytes) -> dict:
    """Parses a serialised ``tf.train.Example`` of ``FIELDS`` (the inverse of
    ``encode_example``): ``{name: bytes | int}``, the first value of each feature.

    Raises:
        ValueError: not a well-formed Example.
    """
    values: dict = {}
    for number, _, features in _fields(record):
        if number != 1 or not isinstance(features, bytes):
            continue
        for entry_number, _, entry in _fields(features):
            if entry_number != 1 or not isinstance(entry, bytes):
                continue
            parts = {n: p for n, _, p in _fields(entry)}
            name = parts.get(1, b"").decode("utf-8", errors="replace")
            feature = parts.get(2, b"")
            for kind, _, listed in _fields(feature):  # 1: bytes_list, 3: int64_list
                inner = [p for n, _, p in _fields(listed) if n == 1]
                if kind == 1 and inner:
                    values[name] = inner[0]
                elif kind == 3 and inner:
                    first = inner[0]
                    value = _read_varint(first, 0)[0] if isinstance(first, bytes) else first
                    values[name] = value - (1 << 64) if value >= 1 << 63 else value
    return values


@dataclass(frozen=True)
class ShardProblem:
    """One unreadable record (or the unreadable rest) of a shard."""

    shard: str
    record: int  # 0-based
    offset: int  # byte where the record starts
    reason: str

    def __str__(self) -> str:
        return f"{self.shard}: record {self.record} (byte {self.offset}): {self.reason}"


@dataclass(frozen=True)
class ShardScan:
    """What ``scan_shard`` found: the good records and the problems.

    Attributes:
        path: the shard.
        good: per readable record (offset of its data, length, label codes {task: code},
            speaker id).
        problems: unreadable records, in file order.
        expected: records the index lists for the shard (None: unknown).
    """

    path: str
    good: tuple[tuple[int, int, dict, str], ...]
    problems: tuple[ShardProblem, ...]
    expected: int | None

    @property
    def skipped(self) -> int:
        """Records of this shard a reader that skips corrupt ones loses."""
        if self.expected is None:
            return len(self.problems)
        return max(0, self.expected - len(self.good))


_SCAN_CACHE: dict[tuple, ShardScan] = {}


def _png_channels(image) -> int:
    """Channels ``tf.io.decode_png(channels=0)`` gives a decoded PIL PNG: its bands, a
    palette counting as RGB (RGBA with a transparency entry)."""
    if image.mode in ("P", "PA"):
        return 4 if image.mode == "PA" or "transparency" in image.info else 3
    return len(image.getbands())


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk_problem(png: bytes) -> str:
    """Why a PNG's chunk structure is damaged ("" when it is not): every chunk's length and
    CRC-32, up to ``IEND``. libpng (``tf.io.decode_png``) refuses a chunk whose CRC does not
    match, Pillow's decoder does not check IDAT's and IEND's: without this a record with
    valid shard CRCs could pass the scan and stop TensorFlow mid-epoch."""
    import zlib  # noqa: PLC0415

    if not png.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(png):
            return f"chunk {kind!r} at byte {pos} runs past the end"
        if zlib.crc32(png[pos + 4:end - 4]) != int.from_bytes(png[end - 4:end], "big"):
            return f"CRC mismatch in chunk {kind.decode('latin-1')} at byte {pos}"
        if kind == b"IEND":
            return ""
        pos = end
    return "no IEND chunk (truncated)"


def _record_problem(data: bytes, image_shape: Sequence[int] | None, images: bool = True
                    ) -> tuple[str, dict, str]:
    """(problem or "", label codes, speaker) of one framed record's data; ``images`` False:
    the shards were made without spectrograms (``--inputs``), so the PNG is not checked."""
    try:
        values = decode_example(data)
    except ValueError as err:
        return f"not a tf.train.Example ({err})", {}, ""
    missing = [name for name, _, default in FIELDS if default is None and name not in values]
    if missing:
        return f"example lacks {', '.join(missing)}", {}, ""
    problem = _png_problem(values["image/png"], image_shape) if images else ""
    if problem:
        return problem, {}, ""
    codes = {task: int(values.get(f"label/{task}", -1)) for task in labels.TASKS}
    for task, code in codes.items():
        names = labels.class_names(task)
        if code != -1 and not 0 <= code < len(names):
            return (f"label/{task} is {code}, outside 0..{len(names) - 1} "
                    f"({', '.join(names)}) and -1 (no label)"), {}, ""
    speaker = values.get("clip/speaker_id", b"")
    return "", codes, speaker.decode("utf-8", errors="replace")


def _png_problem(png: bytes, image_shape: Sequence[int] | None) -> str:
    """What is wrong with a record's PNG (decoded in full, as ``tf.io.decode_png`` would),
    or ""."""
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    problem = png_chunk_problem(png)
    if problem:
        return f"corrupt PNG image ({problem})"
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.format != "PNG":
                raise OSError(f"{image.format} image, not PNG")
            image.load()  # full decode: what tf.io.decode_png would choke on
            size = (image.height, image.width)
            channels = _png_channels(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"corrupt PNG image ({err})"
    if image_shape is not None and size != tuple(image_shape[:2]):
        return (f"image is {size[0]}×{size[1]}, the index says "
                f"{image_shape[0]}×{image_shape[1]}")
    if image_shape is not None and len(image_shape) > 2 and channels != image_shape[2]:
        # decode_png(channels=3) would silently turn a grey image into three equal ones.
        return f"image has {channels} channel(s), the index says {image_shape[2]}"
    return ""


def _walk_records(path: str, blob: bytes, image_shape: Sequence[int] | None,
                  images: bool) -> tuple[list, list, int, int, bool]:
    """Walks a shard's records in ``blob``, checking framing, CRCs and each Example.

    Returns:
        ``(good, problems, pos, number, framed)``: ``(offset, length, codes, speaker)`` per
        good record, the ``ShardProblem``s, the byte offset and record count where the walk
        stopped, and False when the framing broke (nothing past ``pos`` is readable).
    """
    good, problems, pos, number = [], [], 0, 0
    framed = True
    while pos < len(blob):
        if len(blob) - pos < 12:
            problems.append(ShardProblem(path, number, pos, "unreadable from here: truncated "
                                         f"record header ({len(blob) - pos} bytes left)"))
            framed = False
            break
        header = blob[pos:pos + 8]
        if _masked_crc(header) != blob[pos + 8:pos + 12]:
            problems.append(ShardProblem(path, number, pos, "unreadable from here: corrupt "
                                         "record length (CRC mismatch)"))
            framed = False
            break
        length = int.from_bytes(header, "little")
        end = pos + 12 + length + 4
        if end > len(blob):
            problems.append(ShardProblem(path, number, pos, "unreadable from here: truncated "
                                         f"record (needs {length + 16} bytes, "
                                         f"{len(blob) - pos} left)"))
            framed = False
            break
        data = blob[pos + 12:pos + 12 + length]
        if _masked_crc(data) != blob[end - 4:end]:
            problems.append(ShardProblem(path, number, pos, "corrupt record (data CRC "
                                         "mismatch)"))
        else:
            problem, codes, speaker = _record_problem(data, image_shape, images)
            if problem:
                problems.append(ShardProblem(path, number, pos, problem))
            else:
                good.append((pos + 12, length, codes, speaker))
        pos, number = end, number + 1
    return good, problems, pos, number, framed


def scan_shard(path: str | os.PathLike, *, expected: int | None = None,
               image_shape: Sequence[int] | None = None, images: bool = True) -> ShardScan:
    """Checks a shard's framing, both CRC-32Cs of every record, that each record is an
    Example of ``FIELDS`` and that its PNG decodes (to ``image_shape``), without TensorFlow.

    Cached per (path, size, mtime) in the process. About 0.1 ms a record (see README).

    Args:
        path: the shard.
        expected: records the index lists for it; fewer found is a problem (a truncation
            at a record boundary leaves valid framing).
        image_shape: (height, width, ...) the index promises.
        images: the shard holds spectrogram PNGs (False: made without, ``--inputs``).
    """
    path = os.fspath(path)
    info = os.stat(path)
    cache_key = (path, info.st_size, info.st_mtime_ns, expected,
                 tuple(image_shape) if image_shape is not None else None, images)
    if cache_key in _SCAN_CACHE:
        return _SCAN_CACHE[cache_key]
    with open(path, "rb") as handle:
        blob = handle.read()
    good, problems, pos, number, framed = _walk_records(path, blob, image_shape, images)
    if expected is not None:
        if framed and number < expected:
            problems.append(ShardProblem(path, number, pos, f"truncated shard: {number} "
                                         f"records, the index lists {expected}"))
        if number > expected:
            problems.append(ShardProblem(path, expected, 0, f"{number} records, the index "
                                         f"lists {expected} (shard from another run?)"))
    scan = ShardScan(path, tuple(good), tuple(problems), expected)
    _SCAN_CACHE[cache_key] = scan
    return scan


def read_records(path: str | os.PathLike, spans: Sequence[tuple[int, int]]) -> list[bytes]:
    """The record data at (offset, length) ``spans`` of a shard (from ``ShardScan.good``)."""
    with open(path, "rb") as handle:
        out = []
        for offset, length in spans:
            handle.seek(offset)
            out.append(handle.read(length))
        return out

#!/usr/bin/env python3
"""Converts Resemblyzer's GE2E weights (``pretrained.pt``) to ``voice_encoder.npz``.

The output goes to ``models/pretrained/voice_encoder.npz`` unless ``--output`` says otherwise.

Reads the checkpoint without torch: it is PyTorch's legacy (pre-zip) format, five records in a
row: four pickles (magic number, protocol version, system info, the checkpoint object) and the
list of storage keys, then each storage's data (an int64 element count, then the raw
little-endian elements). The object's tensors point at storages through pickle's persistent
ids; a restricted unpickler turns them into numpy views. Only the network's arrays (the LSTM
and the dense layer of ``model_state``) are kept, under their PyTorch names.

The file is written as float16 if, on the six clips of ``models/pretrained/clips/`` and a few
of ``--dataset_dir``, every utterance embedding stays within ``COSINE_TOLERANCE`` (1 − cosine)
of the float32 one; else as float32. Beside it: ``voice_encoder.npz.sha256`` (the file's
digest, checked on load) and ``voice_encoder.json`` (the source wheel's and ``pretrained.pt``'s
digests, the dtype and the check's figure).

    python scripts/convert_voice_encoder.py --source /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl \
        --dataset_dir ../shared/cv-sample
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from agegender import atomic  # noqa: E402
from agegender.errors import AgeGenderError, ModelError  # noqa: E402

log = logging.getLogger("convert_voice_encoder")

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
WHEEL_MEMBER = "resemblyzer/pretrained.pt"
COSINE_TOLERANCE = 1e-3  # largest 1 - cosine(float16, float32) that float16 storage may cause
DATASET_CLIPS = 12  # clips of --dataset_dir added to the check (every 250th of the manifest)

# The storage classes a checkpoint may name, and their element types (little-endian).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class _StorageType:
    """Stands for a ``torch.*Storage`` class: what the pickle names, with its dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage the object refers to: filled with its elements once the pickle is read."""

    def __init__(self, key: str, kind: _StorageType, size: int):
        self.key, self.kind, self.size = key, kind, size
        self.data: np.ndarray | None = None


class _Tensor:
    """A tensor as pickled: a strided view of a storage, resolved to numpy later."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if self.size and any(n == 0 for n in self.size):
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.shape[0]:
            raise ModelError(f"a tensor of shape {self.size} reaches past its storage "
                             f"({data.shape[0]} elements)")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size,
            strides=[s * data.itemsize for s in self.stride])
        return np.array(view)  # a copy: independent of the storage


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    """``torch._utils._rebuild_tensor(_v2)``: (storage, offset, size, stride, ...)."""
    return _Tensor(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles a legacy checkpoint's object, allowing only what a state dict needs."""

    def __init__(self, handle, storages: dict[str, _Storage]):
        super().__init__(handle)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelError(f"the checkpoint refers to {module}.{name}, which a weights "
                         "checkpoint has no need of; refused")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ModelError(f"unknown persistent id in the checkpoint: {pid!r:.80}")
        _, kind, key, _location, size = pid[:5]
        if not isinstance(kind, _StorageType):
            raise ModelError(f"storage {key!r} has an unknown type {kind!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise ModelError(f"storage {key!r} is a view of another (not supported)")
        if key not in self.storages:
            self.storages[key] = _Storage(str(key), kind, int(size))
        return self.storages[key]


def _resolve(obj):
    """The unpickled object with every tensor replaced by its numpy array."""
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return type(obj)((key, _resolve(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value) for value in obj)
    return obj


def read_legacy_checkpoint(data: bytes, *, name: str = "checkpoint"):
    """The object a legacy-format ``torch.save`` wrote, with tensors as numpy arrays.

    Args:
        data: the file's bytes.
        name: the file's name, for errors.

    Raises:
        ModelError: not a legacy checkpoint (a zip-format one included), truncated, or
            naming a class a state dict does not need.
    """
    if data[:2] == b"PK":
        raise ModelError(f"{name}: a zip-format torch checkpoint; this reader takes the "
                         "legacy format only")
    handle = io.BytesIO(data)
    try:
        if pickle.load(handle) != LEGACY_MAGIC:  # numbers only: plain pickle is safe here
            raise ModelError(f"{name}: not a legacy torch checkpoint (no magic number)")
        if pickle.load(handle) != LEGACY_PROTOCOL:
            raise ModelError(f"{name}: unsupported torch protocol version")
        info = pickle.load(handle)
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise ModelError(f"{name}: written on a big-endian machine (not supported)")
        storages: dict[str, _Storage] = {}
        obj = _LegacyUnpickler(handle, storages).load()
        keys = pickle.load(handle)
        for key in keys:
            storage = storages.get(key)
            if storage is None:
                raise ModelError(f"{name}: storage {key!r} is listed but never used")
            (count,) = struct.unpack("<q", handle.read(8))
            nbytes = count * storage.kind.dtype.itemsize
            raw = handle.read(nbytes)
            if count != storage.size or len(raw) != nbytes:
                raise ModelError(f"{name}: storage {key!r} is truncated or has the wrong size")
            storage.data = np.frombuffer(raw, storage.kind.dtype)
    except ModelError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError) as err:
        raise ModelError(f"{name}: truncated or corrupt legacy torch checkpoint ({err})") from err
    missing = [key for key, storage in storages.items() if storage.data is None]
    if missing:
        raise ModelError(f"{name}: storages {missing[:3]} have no data")
    return _resolve(obj)


def checkpoint_bytes(source: str | os.PathLike) -> tuple[bytes, str]:
    """``pretrained.pt``'s bytes from a wheel (its ``resemblyzer/pretrained.pt``) or a ``.pt``
    file, and a name for messages."""
    source = Path(source)
    if not source.is_file():
        raise ModelError(f"--source={source}: no such file")
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                return wheel.read(WHEEL_MEMBER), f"{source}!{WHEEL_MEMBER}"
        except (zipfile.BadZipFile, KeyError) as err:
            raise ModelError(f"--source={source}: not a wheel holding {WHEEL_MEMBER} "
                             f"({err})") from err
    return source.read_bytes(), str(source)


def encoder_arrays(checkpoint, *, name: str = "checkpoint",
                   params=None) -> dict[str, np.ndarray]:
    """The network's arrays of a Resemblyzer checkpoint (``model_state``), by PyTorch name,
    checked against ``voice_encoder.weight_shapes``; training-only entries are dropped."""
    from agegender.voice_encoder import GE2E, weight_shapes  # noqa: PLC0415

    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{name}: no model_state in the checkpoint")
    arrays = {}
    for key, shape in weight_shapes(params or GE2E).items():
        value = state.get(key)
        if not isinstance(value, np.ndarray) or value.shape != shape:
            raise ModelError(f"{name}: {key} is {getattr(value, 'shape', value)!r}, "
                             f"expected shape {shape}")
        arrays[key] = value
    return arrays


NPZ_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # zipfile's default member date, which np.savez keeps


def write_npz(arrays: dict[str, np.ndarray], target: str | os.PathLike, dtype) -> None:
    """Writes ``arrays`` as ``dtype`` to ``target`` atomically, with a ``.sha256`` sidecar.

    ``np.savez`` dates every member ``NPZ_TIMESTAMP``, not now, so converting the same
    checkpoint again gives the same bytes and the same digest.
    """
    with atomic.replacing_checksummed(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{key: value.astype(dtype) for key, value in arrays.items()})


def check_clips(dataset_dir: str | os.PathLike | None) -> list[Path]:
    """The clips of the float16 check: the shipped ones, and every 250th of the dataset's
    manifest (``DATASET_CLIPS`` at most)."""
    import csv  # noqa: PLC0415

    clips = sorted((ROOT / "models" / "pretrained" / "clips").glob("*.mp3"))
    if dataset_dir is not None:
        with open(Path(dataset_dir) / "manifest.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        clips += [Path(dataset_dir) / row["path"] for row in rows[::250][:DATASET_CLIPS]]
    return clips


def float16_change(arrays: dict[str, np.ndarray], clips: list[Path], params=None) -> float:
    """The largest 1 − cosine between an utterance's embedding with float16-rounded weights
    and with float32 weights, over ``clips``."""
    from agegender import voice_encoder  # noqa: PLC0415
    from agegender.config import FeatureParams  # noqa: PLC0415
    from agegender.features import load_clip  # noqa: PLC0415

    params_net = params or voice_encoder.GE2E
    encoders = {}
    for dtype in (np.float32, np.float16):
        model = voice_encoder.build_voice_encoder(params_net)
        rounded = {key: value.astype(dtype).astype(np.float32) for key, value in arrays.items()}
        for layer, values in voice_encoder.keras_weights(rounded, params_net).items():
            model.get_layer(layer).set_weights(values)
        encoders[dtype] = model
    clip_params = FeatureParams()
    worst = 0.0
    for clip in clips:
        wave = load_clip(clip, clip_params)
        full, half = (voice_encoder.embed(wave, clip_params.sample_rate, encoder=encoders[dtype],
                                          params=params_net)
                      for dtype in (np.float32, np.float16))
        change = 1.0 - float(np.dot(full, half))
        log.info("%s: 1 - cosine = %.2e", clip.name, change)
        worst = max(worst, change)
    return worst


def convert(source: str | os.PathLike, output: str | os.PathLike,
            dataset_dir: str | os.PathLike | None = None, *, params=None) -> dict:
    """Reads ``source``, writes ``output`` (float16 if the check allows) and its sidecars.

    Args:
        source: the Resemblyzer wheel, or a legacy-format ``.pt``.
        output: the ``.npz`` to write (``<stem>.json`` and ``<name>.sha256`` beside it).
        dataset_dir: a manifest folder whose clips join the float16 check.
        params: the network the checkpoint holds (``voice_encoder.EncoderParams``); None: GE2E.

    Returns:
        The provenance record written to ``<output stem>.json``.
    """
    data, name = checkpoint_bytes(source)
    arrays = encoder_arrays(read_legacy_checkpoint(data, name=name), name=name, params=params)
    clips = check_clips(dataset_dir)
    change = float16_change(arrays, clips, params)
    dtype = np.float16 if change <= COSINE_TOLERANCE else np.float32
    output = Path(output)
    write_npz(arrays, output, dtype)
    record = {
        "source": Path(source).name,
        "source_sha256": atomic.sha256_file(source),
        "checkpoint_sha256": hashlib.sha256(data).hexdigest(),
        "checkpoint": WHEEL_MEMBER if Path(source).suffix == ".whl" else Path(source).name,
        "weights": output.name,
        "weights_sha256": atomic.sha256_file(output),
        "dtype": np.dtype(dtype).name,
        "float16_largest_1_minus_cosine": change,
        "float16_tolerance": COSINE_TOLERANCE,
        "float16_check_clips": len(clips),
        "licence": "Apache-2.0, Resemblyzer (c) Corentin Jemine; see NOTICE",
    }
    atomic.write_text(output.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True,
                        help="Resemblyzer-0.1.4-py3-none-any.whl, or its pretrained.pt")
    parser.add_argument("--output", default=str(ROOT / "models" / "pretrained" /
                                                "voice_encoder.npz"))
    parser.add_argument("--dataset_dir", default=None,
                        help="a Common Voice manifest folder: a few of its clips join the "
                             "float16 check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        record = convert(args.source, args.output, args.dataset_dir)
    except AgeGenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.output}: {record['dtype']} ({Path(args.output).stat().st_size} bytes); "
          f"float16 largest 1 - cosine over {record['float16_check_clips']} clips: "
          f"{record['float16_largest_1_minus_cosine']:.2e} (allowed {COSINE_TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

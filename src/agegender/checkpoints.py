"""Saving, loading and exporting models: the one home of every model file format.

``.keras`` (the main format), ``.h5`` (the original project's copy) and the TensorFlow
SavedModel export all go through here, so a model is written and read one way. Keras and
TensorFlow are imported inside the functions: ``import agegender`` stays light.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agegender import atomic, labels
from agegender.config import INPUT_KINDS, FeatureParams
from agegender.errors import ModelError, OutputError, ParameterError

log = logging.getLogger(__name__)


def load_model(path: str | os.PathLike, *, verify: bool = True):
    """Loads a ``.keras`` or ``.h5`` model with Keras safe mode on.

    Args:
        path: the model file.
        verify: when a ``<file>.sha256`` sidecar exists (``save_model_files`` writes one),
            refuse a file whose SHA-256 it does not list (``verify_checksum``); and refuse a
            model whose weights differ from the digest stored inside the file itself
            (``verify_weights``), so a lone copy is checked too.

    Raises:
        ModelError: missing file, a folder, unsupported suffix, checksum mismatch, or a file
            Keras cannot load (what is wrong with it in words: empty, not a Keras file,
            corrupt zip, truncated HDF5, ...).
    """
    import keras  # noqa: PLC0415

    import agegender.layers  # noqa: F401,PLC0415  (registers the custom layers)

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"--model_path={path}: a folder, and not a SavedModel (no "
                         "saved_model.pb); expected a .keras or .h5 file or a SavedModel folder")
    if not path.is_file():
        raise ModelError(f"--model_path={path}: file not found")
    if path.suffix not in (".keras", ".h5"):
        raise ModelError(f"--model_path={path}: expected a .keras or .h5 file or a SavedModel "
                         "folder")
    if verify:
        verify_checksum(path)
    problem = model_file_problem(path)
    if problem:
        raise ModelError(f"--model_path={path}: {problem}")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except _LOAD_ERRORS as err:  # what Keras and h5py raise on a damaged or foreign file
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelError(f"--model_path={path}: cannot be loaded: {_kind_of_damage(path)} "
                         f"({type(err).__name__}: {reason})") from err
    if verify:
        verify_weights(path, model)
    return model


_LOAD_ERRORS = (zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
                AttributeError, EOFError, RuntimeError, struct.error)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_file_problem(path: str | os.PathLike) -> str:
    """What is plainly wrong with a ``.keras``/``.h5`` file before Keras sees it, or "".

    Empty file; a ``.keras`` that is not a zip archive or whose members fail their CRC-32
    (``zipfile.testzip``); a ``.h5`` without the HDF5 signature.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file (0 bytes)"
        if path.suffix == ".keras":
            if not zipfile.is_zipfile(path):
                return ("not a Keras file: not a zip archive (truncated, or another format "
                        "saved under a .keras name)")
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return (f"corrupt zip: member {bad!r} fails its CRC-32 (the file was damaged "
                        "after it was written)")
        elif path.suffix == ".h5":
            with open(path, "rb") as handle:
                if handle.read(8) != _HDF5_SIGNATURE:
                    return "not an HDF5 file (no HDF5 signature)"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        return f"corrupt zip ({err})"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    return ""


def _kind_of_damage(path: Path) -> str:
    if path.suffix == ".h5":
        return "truncated or corrupt HDF5 file, or not a Keras model"
    return "corrupt or not a Keras model file"


def verify_checksum(path: str | os.PathLike) -> None:
    """Checks a model file against its recorded SHA-256, when one is recorded
    (``recorded_checksums``).

    Raises:
        ModelError: the file's SHA-256 is not the recorded one.
    """
    expected, where = recorded_checksums(path)
    if expected is None:
        return
    unreadable = [digest for digest in expected if not re.fullmatch(r"[0-9a-f]{64}", digest)]
    if unreadable or not expected:
        # A damaged sidecar says nothing about the model: blame the sidecar, not the model.
        got = f"got {unreadable[0][:40]!r}" if unreadable else "it is empty"
        raise ModelError(f"--model_path={path}: its checksum file {where} is unreadable "
                         f"(expected a 64-hex-digit SHA-256 per line, {got}); the model was "
                         "not checked: delete or rewrite that file (sha256sum), or "
                         "--no_verify loads the model anyway")
    actual = atomic.sha256_file(path)
    if actual not in expected:
        raise ModelError(f"--model_path={path}: checksum mismatch, the file is corrupt or was "
                         f"changed after training (expected {expected[0]}, got {actual}, "
                         f"recorded in {where}); --no_verify loads it anyway")


def recorded_checksums(path: str | os.PathLike) -> tuple[list[str] | None, Path | None]:
    """The SHA-256 digests recorded for a model file, and where.

    The ``<file>.sha256`` sidecar of ``save_model_files``; else, for a best model written by
    training, the ``sha256`` entry of the ``best_model_<task>.json`` beside it (published in
    one folder with the model, so it always describes these bytes).

    Returns:
        (digests, the file they come from), or (None, None) when nothing is recorded.
    """
    path = Path(path)
    sidecar = atomic.read_checksums(path)
    if sidecar is not None:
        return sidecar, atomic.checksum_path(path)
    state = path.with_suffix(".json")
    try:
        digest = json.loads(state.read_text()).get("sha256", {}).get(path.suffix.lstrip("."))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None, None
    return ([digest.lower()], state) if isinstance(digest, str) else (None, None)


WEIGHTS_DIGEST_MEMBER = "agegender_weights.json"  # extra member of a .keras zip
WEIGHTS_DIGEST_ATTR = "agegender_weights_sha256"  # HDF5 attribute on a .h5 file's root


def weights_digest(model) -> str:
    """SHA-256 over a model's weight values, in ``get_weights()`` order (dtype, shape and
    bytes of each), the same for a model loaded from its ``.keras`` or its ``.h5``."""
    digest = hashlib.sha256()
    for value in model.get_weights():
        value = np.ascontiguousarray(value)
        digest.update(f"{value.dtype.str}{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def embed_weights_digest(path: str | os.PathLike, digest: str) -> None:
    """Stores ``digest`` inside a just-written model file: a ``.keras`` zip member, or an
    attribute of the ``.h5`` root group. Keras ignores both when loading."""
    path = Path(path)
    if path.suffix == ".keras":
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(WEIGHTS_DIGEST_MEMBER, json.dumps({"sha256": digest}))
    else:
        import h5py  # noqa: PLC0415

        with h5py.File(path, "a") as handle:
            handle.attrs[WEIGHTS_DIGEST_ATTR] = digest


def stored_weights_digest(path: str | os.PathLike) -> str | None:
    """The weights digest stored inside a ``.keras``/``.h5`` file, or None (an older file,
    or one not written by ``save_keras``/``save_h5``)."""
    path = Path(path)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                if WEIGHTS_DIGEST_MEMBER not in archive.namelist():
                    return None
                value = json.loads(archive.read(WEIGHTS_DIGEST_MEMBER)).get("sha256")
        else:
            import h5py  # noqa: PLC0415

            with h5py.File(path, "r") as handle:
                value = handle.attrs.get(WEIGHTS_DIGEST_ATTR)
            value = value.decode() if isinstance(value, bytes) else value
    except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile):
        return None
    return value.lower() if isinstance(value, str) else None


def verify_weights(path: str | os.PathLike, model) -> None:
    """Checks a loaded model's weights against the digest stored inside its file; logs a
    WARNING "unverified" when neither the file nor a sidecar records any checksum.

    Raises:
        ModelError: the weights differ from the stored digest (names the file).
    """
    expected = stored_weights_digest(path)
    if expected is None:
        if recorded_checksums(path)[0] is None:
            log.warning(
                "%s: unverified: no checksum inside the file or beside it (a file saved "
                "before checksums travelled with it, or not by agegender)", path)
        return
    actual = weights_digest(model)
    if actual != expected:
        raise ModelError(f"--model_path={path}: its weights do not match the checksum stored "
                         f"inside the file (expected {expected[:16]}…, got {actual[:16]}…): "
                         "the file is corrupt or was changed after training; --no_verify "
                         "loads it anyway")


def set_trained_on(path: str | os.PathLike, trained_on: dict) -> None:
    """Records ``trained_on`` (``provenance``) in a ``.keras`` file already saved, rewriting
    only its ``config.json`` member (``LabelledOutput``'s config): every other member, the
    weights first of all, keeps its bytes, so the weights digest inside still holds. The
    file is replaced atomically and its ``.sha256`` sidecar, if any, updated.

    Raises:
        ModelError: not a ``.keras`` file of ours (no ``LabelledOutput`` in its config).
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    config_names = [info.filename for info, _ in members]
    if path.suffix != ".keras" or "config.json" not in config_names:
        raise ModelError(f"{path}: not a .keras file (no config.json inside)")
    index = config_names.index("config.json")
    config = json.loads(members[index][1])
    layers = [layer for layer in config.get("config", {}).get("layers", [])
              if layer.get("class_name") == "LabelledOutput"]
    if not layers:
        raise ModelError(f"{path}: no LabelledOutput layer in its config (not built by "
                         "agegender)")
    layers[-1]["config"]["trained_on"] = dict(trained_on)
    members[index] = (members[index][0], json.dumps(config).encode("utf-8"))
    writer = atomic.replacing_checksummed if atomic.checksum_path(path).is_file() \
        else atomic.replacing
    with writer(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for info, data in members:  # same order, names, dates and compression
            archive.writestr(info, data)


def save_keras(model, path: str | os.PathLike) -> None:
    """Writes ``model`` as ``.keras`` with its weights digest inside (not atomic: the caller
    decides where)."""
    model.save(path)
    embed_weights_digest(path, weights_digest(model))


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict, whatever its file format.

    Attributes:
        path: where it was loaded from.
        task: the task it was trained for.
        class_names: one per output.
        features: how its inputs are computed from audio.
        predict: {kind: float32 [batch, ...]} (``model_inputs``: every kind in ``inputs``)
            → probabilities [batch, classes].
        inputs: the kinds of input it reads, in order (``model_inputs.KINDS``).
        trained_on: what it records it was trained on (``provenance``); None: unknown.
    """

    path: str
    task: str
    class_names: tuple[str, ...]
    features: FeatureParams
    predict: Callable[[dict], np.ndarray]
    inputs: tuple[str, ...] = ("spectrogram",)
    trained_on: dict | None = None


def _checked_labels(path: Path, stored_task: str | None, names: list[str] | None,
                    outputs: int, task: str | None) -> tuple[str, tuple[str, ...]]:
    """Reconciles the task stored in a model with the one asked for."""
    if task is not None:
        expected = labels.class_names(task)
        if stored_task is not None and stored_task != task:
            raise ModelError(f"--model_path={path} was trained for cls_task={stored_task!r}, "
                             f"not --cls_task={task!r}")
        if outputs != len(expected):
            raise ModelError(f"--model_path={path} has {outputs} outputs but --cls_task={task!r}"
                             f" has {len(expected)} classes")
    if stored_task is None:
        if task is None:
            raise ModelError(f"--model_path={path} does not store its task; pass --cls_task")
        return task, labels.class_names(task)
    return stored_task, tuple(names)


PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def bfloat16_copy(model):
    """The same network and weights, built under Keras' ``mixed_bfloat16`` policy.

    About 2x faster at batch 64 on CPUs with AVX512_BF16/AMX; the softmax stays float32.
    Measured on the demo models: identical gender labels, 47 of 48 age labels unchanged.
    """
    import keras  # noqa: PLC0415

    from agegender.model import (  # noqa: PLC0415
        build_model,
        model_labels,
        model_params,
        model_trained_on,
    )

    _, _, features = model_labels(model)
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        copy = build_model(model_params(model), features=features,
                           trained_on=model_trained_on(model))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def open_model(path: str | os.PathLike, task: str | None = None, *,
               precision: str = "float32", verify: bool = True) -> LoadedModel:
    """Opens a ``.keras``/``.h5`` file or a SavedModel folder and checks it against ``task``.

    Args:
        path: the model.
        task: expected task; None reads it from the model.
        precision: ``float32`` (exact) or ``bfloat16`` (faster batches on CPUs with bf16
            instructions; ``.keras``/``.h5`` models of this project only).
        verify: check the file against its ``.sha256`` sidecar (see ``load_model``).

    Raises:
        ModelError: the model cannot be loaded, or its task/output size does not match.
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    path = Path(path)
    if path.is_dir():
        if precision != "float32":
            raise ParameterError(f"precision={precision!r} needs a .keras or .h5 model, "
                                 f"not the SavedModel {path}")
        return _open_saved_model(path, task)
    from agegender.model import input_kinds, model_labels, model_trained_on  # noqa: PLC0415
    from agegender.model_inputs import feed  # noqa: PLC0415

    model = load_model(path, verify=verify)
    try:
        stored_task, names, _ = model_labels(model)
    except ModelError:
        stored_task, names = None, None
    outputs = int(model.output_shape[-1])
    task, names = _checked_labels(path, stored_task, names, outputs, task)
    params = model_features(model)
    kinds = input_kinds(model) if stored_task is not None else ("spectrogram",)
    shape = _image_shape(model)
    if shape is not None and params.image_shape[:2] != shape[:2]:
        raise ModelError(f"--model_path={path}: stored image size {params.image_shape[:2]} "
                         f"differs from its input size {shape[:2]}")
    trained_on = model_trained_on(model)
    if precision == "bfloat16":
        if stored_task is None:
            raise ParameterError(f"precision='bfloat16' needs a model built by agegender; "
                                 f"{path} stores no task")
        model = bfloat16_copy(model)

    def predict(inputs: dict) -> np.ndarray:
        return np.asarray(model.predict_on_batch(feed(model, inputs)))

    return LoadedModel(str(path), task, tuple(names), params, predict, kinds, trained_on)


def _image_shape(model) -> tuple[int, int, int] | None:
    """(height, width, channels) of a Keras model's spectrogram input; None without one.
    A model not built by agegender has one input, taken for the spectrogram."""
    named = {i.name.split(":")[0]: i for i in model.inputs}
    image = named.get("spectrogram")
    if image is None and len(named) == 1 and not set(named) & set(INPUT_KINDS):
        image = model.inputs[0]
    return None if image is None else tuple(int(d) for d in image.shape[1:])


def _open_saved_model(path: Path, task: str | None) -> LoadedModel:
    import tensorflow as tf  # noqa: PLC0415

    meta_path = path / "agegender.json"
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"--model_path={path}: folder holds no saved_model.pb (not a "
                         "SavedModel; expected a .keras or .h5 file or a SavedModel folder)")
    if not (path / "variables").is_dir():
        raise ModelError(f"--model_path={path}: SavedModel without its variables/ folder "
                         "(incomplete copy?)")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (ValueError, OSError) as err:
        raise ModelError(f"{meta_path}: not valid JSON ({err})") from err
    try:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures.get("serve") or loaded.signatures["serving_default"]
        _, spec = serve.structured_input_signature
        signature_names = _signature_names(spec, meta)
        (output_spec,) = serve.structured_outputs.values()
    except (*_LOAD_ERRORS, tf.errors.OpError) as err:  # a damaged or foreign SavedModel
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelError(f"--model_path={path}: cannot be loaded: corrupt or incomplete "
                         f"SavedModel (truncated variables?) ({type(err).__name__}: "
                         f"{reason})") from err
    outputs = int(output_spec.shape[-1])
    task, names = _checked_labels(path, meta.get("task"), meta.get("class_names"), outputs, task)
    features = meta.get("features")
    if features:
        params = FeatureParams(**features)
    elif "spectrogram" in signature_names:
        params = FeatureParams(image_size=int(spec[signature_names["spectrogram"]].shape[1]))
    else:
        raise ModelError(f"--model_path={path}: a voice-statistics SavedModel needs its "
                         "agegender.json (the feature settings its statistics were made with)")

    def predict(inputs: dict) -> np.ndarray:
        (result,) = serve(**{signature_names[kind]: tf.constant(value, tf.float32)
                             for kind, value in inputs.items()}).values()
        return result.numpy()

    return LoadedModel(str(path), task, tuple(names), params, predict, tuple(signature_names),
                       meta.get("trained_on") or None)


def _signature_names(spec: dict, meta: dict) -> dict[str, str]:
    """{input kind: the SavedModel signature's argument name}. ``agegender.json`` records
    the kinds in the serving order (``inputs``); exports made before it did are read by
    name: one input is the spectrogram, ``pitch*`` the voice statistics."""
    from agegender.model_inputs import check_kinds  # noqa: PLC0415

    names = sorted(spec)
    if meta.get("inputs"):
        kinds = check_kinds(meta["inputs"])
        by_kind = {kind: next((n for n in names if n == kind or n.startswith(kind)), None)
                   for kind in kinds}
        if None in by_kind.values() or len(names) != len(kinds):
            raise ValueError(f"inputs {names}: agegender.json lists {list(kinds)}")
        return by_kind
    pitch = [n for n in names if n.startswith("pitch")]
    images = [n for n in names if n not in pitch]
    if len(images) > 1 or len(pitch) > 1 or not names:
        raise ValueError(f"inputs {names}: expected a spectrogram, 'pitch' or both")
    return {**({"spectrogram": images[0]} if images else {}),
            **({"pitch": pitch[0]} if pitch else {})}


def model_features(model) -> FeatureParams:
    """The feature settings a model was trained with, to compute its input images.

    ``features.clip_image(path, model_features(model))`` gives exactly the image the model
    saw in training for that clip. Models without stored settings (not built by agegender)
    get the defaults at their input size.
    """
    from agegender.model import model_labels  # noqa: PLC0415

    try:
        _, _, features = model_labels(model)
    except ModelError:
        features = None
    if features:
        return FeatureParams(**features)
    shape = _image_shape(model)
    if shape is None:  # only build_model makes image-free models, and it stores features
        raise ModelError(f"model {model.name!r} reads no image and stores no feature settings")
    return FeatureParams(image_size=shape[0])


def without_optimizer(model):
    """A twin of ``model`` with the same weights and no optimizer (or ``model`` itself when
    it has none).

    A ``.keras`` file stores whatever optimizer the model carries (Keras ignores
    ``include_optimizer`` there), and Adam's two moments double the weights (a 64-px age
    model: 35 MB without, 106 MB with); only resuming needs them, and it has its own backup.
    """
    import keras  # noqa: PLC0415

    if getattr(model, "optimizer", None) is None:
        return model
    twin = keras.Model.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    return twin


def save_h5(model, path: str | os.PathLike, *, include_optimizer: bool = False) -> None:
    """Writes ``model`` as a legacy ``.h5`` file with its weights digest inside (not atomic:
    the caller decides where)."""
    with warnings.catch_warnings():
        # The .h5 copy is asked for on purpose (the original project's format).
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
        logging.getLogger("absl").setLevel(logging.ERROR)
        model.save(path, include_optimizer=include_optimizer)
    embed_weights_digest(path, weights_digest(model))


def save_model_files(model, keras_path: str | os.PathLike, h5_path: str | os.PathLike, *,
                     include_optimizer: bool = False) -> None:
    """Writes ``model`` as ``.keras`` and as ``.h5``, each atomically, each with a
    ``<file>.sha256`` sidecar that ``load_model`` verifies.

    Without the optimizer state by default (see ``without_optimizer``); the saved files
    predict the same either way.

    Args:
        model: a ``keras.Model``.
        keras_path: ``.../best_model_<task>.keras``.
        h5_path: ``.../best_model_<task>.h5``.
        include_optimizer: also store the optimizer state (to continue training from it).
    """
    saved = model if include_optimizer else without_optimizer(model)
    with atomic.replacing_checksummed(keras_path) as tmp:
        save_keras(saved, tmp)
    with atomic.replacing_checksummed(h5_path) as tmp:
        save_h5(saved, tmp, include_optimizer=include_optimizer)


def shown_path(path: str | os.PathLike) -> str:
    """A model's path as JSON and logs show it: no absolute machine path the user did not type.

    Relative to the working folder when the file is under it, else relative to the
    repository root when under it (the shipped models: ``models/pretrained/gender.keras``),
    else exactly as given (a path the user named, absolute or not).
    """
    absolute = Path(path).resolve()
    for base in (Path.cwd().resolve(), Path(__file__).resolve().parents[2]):
        try:
            return str(absolute.relative_to(base))
        except ValueError:
            continue
    return str(path)


def model_identity(path: str | os.PathLike) -> dict:
    """What a report needs to name the model it was made from.

    Args:
        path: a ``.keras``/``.h5`` file or a SavedModel folder.

    Returns:
        ``path`` (``shown_path``: relative where it can be), ``sha256`` (of the file; of ``saved_model.pb`` for a folder),
        ``size`` (bytes; the folder's files summed), and ``epoch``: the best epoch from
        ``best_model_<task>.json`` beside the file (same stem), None when there is none.
    """
    path = Path(path)
    if path.is_dir():
        hashed = path / "saved_model.pb"
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        hashed, size = path, path.stat().st_size
    epoch = None
    state = path.with_suffix(".json") if path.is_file() else None
    if state is not None and state.is_file():
        try:
            epoch = json.loads(state.read_text()).get("epoch")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            epoch = None
    return {"path": shown_path(path), "sha256": atomic.sha256_file(hashed), "epoch": epoch,
            "size": int(size)}


def describe_model(identity: dict, *, short: bool = False) -> str:
    """One line naming a model: ``path (sha256 abc..., epoch 7, 35.4 MB)``.

    Args:
        identity: from ``model_identity``.
        short: the file name and the first 12 hex digits only (figure titles).
    """
    name = Path(identity["path"]).name if short else identity["path"]
    digest = identity["sha256"][:12] if short else identity["sha256"]
    epoch = f", epoch {identity['epoch']}" if identity.get("epoch") is not None else ""
    size = "" if short else f", {identity['size'] / 1e6:.1f} MB"
    return f"{name} (sha256 {digest}{epoch}{size})"


def export_saved_model(model_path: str | os.PathLike, export_dir: str | os.PathLike) -> Path:
    """Writes a TensorFlow SavedModel that serves with ``tf.saved_model.load`` alone.

    The serving function is ``serve``: one float32 argument per input kind the model reads
    (``model_inputs.KINDS``: the image [batch, H, W, 3] in 0-255 as ``spectrogram``, the voice
    statistics as ``pitch``) → probabilities. ``agegender.json`` beside it names the task,
    classes, feature parameters, the inputs in order, every model parameter and what the
    model was trained on (``trained_on``).
    """
    from agegender.model import model_labels, model_params, model_trained_on  # noqa: PLC0415

    model = load_model(model_path)
    task, names, features = model_labels(model)
    export_dir = Path(export_dir)
    if export_dir.exists() and not (export_dir / "agegender.json").is_file():
        raise OutputError(f"--export_dir={export_dir}: exists and is not an agegender export; "
                          "choose another folder")
    with atomic.replacing(export_dir) as tmp:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        (tmp / "agegender.json").write_text(json.dumps(
            {"task": task, "class_names": names, "features": features,
             "input_shape": list(_image_shape(model) or ()),
             "inputs": list(model_params(model).input_kinds),
             "model_params": model_params(model).to_record(),
             "trained_on": model_trained_on(model)},
            indent=2))
        if export_dir.exists():  # an earlier export of ours: replace it whole
            shutil.rmtree(export_dir)
    return export_dir

"""What a training run keeps on disk, laid out so that a kill at any instant loses at most
the epoch in progress and never leaves files that disagree.

Everything here rests on one fact: ``os.replace`` (a rename within one folder) is atomic. A
reader sees the old name or the new one, never a half-written thing. So every artefact is
written whole under a ``.tmp-*`` name and then renamed into place, and artefacts that must
agree with each other (a best model's ``.keras``, ``.h5`` and ``.json``) live in ONE folder
that is published by ONE rename, then made current by flipping ONE symlink. A reader can then
never see a JSON newer or older than the model it describes.

Layout under ``models/<task>/``::

    backup/epoch-0007/            one generation per finished epoch (the last two are kept)
        model.keras               weights + optimizer state (iterations, Adam moments)
        state.json                epoch, run id, settings, best so far, CSV rows so far
    best/<run-id>-e0005/          the best model of run <run-id>, from epoch 5 (1-based)
        best_model_<task>.keras
        best_model_<task>.h5
        best_model_<task>.json    score, epoch, run id, sha256 of the two model files
    best/current -> <run-id>-e0005
    best_model_<task>.keras -> best/current/best_model_<task>.keras   (and .h5, .json)

Only plain functions and one frozen dataclass (``RunSettings``); the Keras callbacks that
call them are in ``agegender.callbacks``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

from agegender import atomic
from agegender.errors import ParameterError

log = logging.getLogger(__name__)

TMP_PREFIX = atomic.TEMP_PREFIX
GENERATION_PREFIX = "epoch-"
STATE_NAME = "state.json"
BACKUP_MODEL_NAME = "model.keras"
CURRENT = "current"
KEEP_GENERATIONS = 2
STATE_VERSION = 1

# Flags a RunSettings field is set by, for the one-line mismatch message.
_FLAG_NAMES = {
    "task": "--cls_task", "features": "shard features (preprocess flags)",
    "image_size": "--image_size", "l2": "--l2", "bn_momentum": "--bn_momentum",
    "dense_units": "--dense_units", "batch_size": "--batch_size",
    "learning_rate": "--learning_rate", "class_weight": "--class_weight", "seed": "--seed",
    "deterministic": "--deterministic", "strategy": "--strategy",
    "mixed_precision": "--mixed_precision", "dataset": "dataset (train/dev shards)",
    "image_width": "image width (preprocess flags)", "augment": "--augment",
    "monitor": "--monitor", "pitch_input": "--pitch_input",
    "image_dropout": "--image_dropout", "architecture": "--architecture",
    "embedding_input": "--embedding_input", "head_units": "--head_units",
}


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that makes two epochs of training belong to the same run.

    ``num_epochs`` and ``early_stopping_patience`` are deliberately absent: changing them only
    extends or shortens a run, so a resume accepts them.

    Attributes:
        task: ``gender``, ``age`` or ``gender_age``.
        features: the shards' ``FeatureParams`` fields (from the train index), or None.
        image_size: input side, pixels.
        l2: L2 factor.
        bn_momentum: BatchNorm momentum.
        dense_units: hidden dense width.
        batch_size: global examples a step.
        learning_rate: Adam's step size.
        class_weight: ``none`` or ``balanced``.
        seed: shuffle and initialisation seed.
        deterministic: op determinism and a deterministic input pipeline.
        strategy: the ``--strategy`` flag.
        mixed_precision: reduced-precision compute.
        dataset: ``dataset_fingerprint`` of the train and dev shards.
        image_width: input width, pixels (None: square, as before non-square presets).
        augment: SpecAugment masks on training batches.
        monitor: the dev metric that picks the best epoch (``TrainParams.monitor``).
        pitch_input: the model reads the clips' voice statistics (``ModelParams.pitch_input``).
        image_dropout: ``ModelParams.image_dropout``.
        architecture: ``ModelParams.architecture``.
        embedding_input: ``ModelParams.embedding_input``.
        head_units: ``ModelParams.head_units``.
    """

    task: str
    features: dict | None
    image_size: int
    l2: float
    bn_momentum: float
    dense_units: int
    batch_size: int
    learning_rate: float
    class_weight: str
    seed: int
    deterministic: bool
    strategy: str
    mixed_precision: bool
    dataset: str
    image_width: int | None = None
    augment: bool = False
    monitor: str = "val_uar"
    pitch_input: bool = False
    image_dropout: float = 0.0
    architecture: str = "mam_cnn"
    embedding_input: bool = False
    head_units: int = 0

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> RunSettings:
        """The inverse of ``to_dict``; fields unknown to this version are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in names})

    def differences(self, new: RunSettings) -> list[str]:
        """``"--learning_rate 0.001 → 0.0001"`` for each field that differs from ``new``."""
        changed = []
        for field in dataclasses.fields(self):
            old_value, new_value = getattr(self, field.name), getattr(new, field.name)
            if old_value != new_value:
                if isinstance(old_value, dict) or isinstance(new_value, dict):
                    old_value, new_value = _dict_change(old_value, new_value)
                changed.append(f"{_FLAG_NAMES.get(field.name, field.name)} "
                               f"{old_value} → {new_value}")
        return changed


def _dict_change(old: dict | None, new: dict | None) -> tuple[str, str]:
    old, new = old or {}, new or {}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return (",".join(f"{k}={old.get(k)}" for k in keys),
            ",".join(f"{k}={new.get(k)}" for k in keys))


def run_settings(model_params, train_params, *, features: dict | None,
                 dataset: str) -> RunSettings:
    """The ``RunSettings`` of a run of ``model_params`` (``ModelParams``, input size, task and
    classes filled in) trained with ``train_params`` (``TrainParams``) on shards with
    ``features`` and fingerprint ``dataset``."""
    return RunSettings(
        task=model_params.task, features=features, image_size=model_params.image_size,
        image_width=model_params.image_width, l2=model_params.l2,
        bn_momentum=model_params.bn_momentum, dense_units=model_params.dense_units,
        batch_size=train_params.batch_size, learning_rate=train_params.learning_rate,
        class_weight=train_params.class_weight, seed=train_params.seed,
        deterministic=train_params.deterministic, strategy=train_params.strategy,
        mixed_precision=train_params.mixed_precision, dataset=dataset,
        augment=train_params.augment, monitor=train_params.monitor,
        pitch_input=model_params.pitch_input, image_dropout=model_params.image_dropout,
        architecture=model_params.architecture, embedding_input=model_params.embedding_input,
        head_units=model_params.head_units)


def check_same_run(old: RunSettings, new: RunSettings, backup_dir: Path) -> None:
    """Raises unless ``new`` continues the run whose settings were ``old``.

    Raises:
        ParameterError: one line naming every differing flag (old → new).
    """
    changed = old.differences(new)
    if changed:
        raise ParameterError(f"{backup_dir} holds an unfinished run with other settings "
                             f"({'; '.join(changed)}); rerun with the same flags to resume it, "
                             "or add --overwrite to start fresh")


def dataset_fingerprint(train_index: dict, dev_index: dict) -> str:
    """A short digest of the train and dev shard indexes (what the run learns and picks on).

    Uses the plan digests ``preprocess`` stores (clip keys + feature metadata); re-made shards
    with other clips or features give another fingerprint.
    """
    digest = hashlib.sha256()
    for index in (train_index, dev_index):
        digest.update(str(index.get("digest", "")).encode() + b"\n")
        digest.update(str(index.get("num_examples")).encode() + b"\n")
    return digest.hexdigest()[:16]


def new_run_id() -> str:
    """A short random id naming one run (its best-model folders carry it)."""
    return uuid.uuid4().hex[:8]


def _fsync_tree(folder: Path) -> None:
    """Flushes a fresh folder's files and the folder itself, so a rename published after this
    survives a power cut too (a kill -9 alone keeps the page cache anyway)."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as stream:
                os.fsync(stream.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def publish_folder(parent: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Creates ``parent/name`` whole: ``fill(tmp)`` writes into a ``.tmp-*`` folder, which is
    then renamed into place. A kill leaves either no ``name`` or a complete one. When ``name``
    exists already, ``name-2``, ``name-3``... is used (returned).

    Raises:
        OutputError: the disk (or quota) is full; names ``parent/name`` (a write error of
            Keras or h5py names no file).
        Whatever else ``fill`` raises (the temporary folder is removed first).
    """
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / atomic.temp_name(name)
    tmp.mkdir()
    try:
        _fill_naming_a_full_disk(parent / name, fill, tmp)
        # A redone epoch (killed after publishing, before its backup) may find its own earlier
        # folder, which `best/current` may point at: never replace it, take the next free name.
        target, attempt = parent / name, 1
        while target.exists() or target.is_symlink():
            attempt += 1
            target = parent / f"{name}-{attempt}"
        os.replace(tmp, target)
        _fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fill_naming_a_full_disk(target: Path, fill: Callable[[Path], None], tmp: Path) -> None:
    """``fill(tmp)`` and an fsync of it; a full disk becomes ``atomic.disk_full_error``
    naming ``target``."""
    try:
        fill(tmp)
        _fsync_tree(tmp)
    except OSError as err:
        if err.errno in atomic.DISK_FULL or "No space left on device" in str(err):
            raise atomic.disk_full_error(target, err) from err
        raise


def point_symlink(link: Path, target: str) -> None:
    """Makes ``link`` a symlink to ``target`` (relative text) in one atomic step: a temporary
    symlink renamed over ``link``."""
    tmp = link.with_name(atomic.temp_name(link.name))
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    finally:
        if tmp.is_symlink():
            tmp.unlink()
    _fsync_dir(link.parent)


# --- backup generations -------------------------------------------------------------------


def generation_name(epoch: int) -> str:
    """``epoch-0007`` for the 0-based finished epoch 7."""
    return f"{GENERATION_PREFIX}{epoch:04d}"


def generations(backup_dir: Path) -> list[Path]:
    """Complete generation folders, newest first."""
    if not backup_dir.is_dir():
        return []
    found = [p for p in backup_dir.iterdir()
             if p.name.startswith(GENERATION_PREFIX) and p.is_dir()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def write_generation(backup_dir: Path, epoch: int, save_model: Callable[[Path], None],
                     state: dict) -> Path:
    """Publishes the generation of finished (0-based) ``epoch`` and prunes older ones.

    Args:
        backup_dir: ``models/<task>/backup``.
        epoch: the epoch just finished.
        save_model: writes the model (with optimizer state) to the path it is given.
        state: JSON-ready run state (``epoch`` is set here).

    Returns:
        The generation folder.
    """
    def fill(tmp: Path) -> None:
        save_model(tmp / BACKUP_MODEL_NAME)
        content = {"version": STATE_VERSION, **state, "epoch": epoch}
        (tmp / STATE_NAME).write_text(json.dumps(content, indent=2), encoding="utf-8")

    folder = publish_folder(backup_dir, generation_name(epoch), fill)
    for old in generations(backup_dir)[KEEP_GENERATIONS:]:
        _remove(old)
    return folder


def load_generation(backup_dir: Path, load_model: Callable[[Path], None], *,
                    check: Callable[[dict], None] | None = None,
                    clean: bool = True) -> dict | None:
    """Loads the newest generation that loads; returns its state (None: no usable backup).

    A generation whose state or model cannot be read (a damaged disk, a foreign file) is
    skipped with a warning and the next older one is tried.

    Args:
        backup_dir: ``models/<task>/backup``.
        load_model: restores the model (and optimizer) from the path given; raises on a bad
            file.
        check: called with a readable state before its model is loaded; what it raises (a
            settings mismatch) propagates, nothing is removed then.
        clean: remove ``.tmp-*`` leftovers, skipped generations and generations older than the
            one used (only the chief writes; other workers pass False).
    """
    if clean:
        atomic.remove_leftovers(backup_dir)
    for folder in generations(backup_dir):
        try:
            state = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
            if not isinstance(state, dict) or "run_id" not in state:
                raise ValueError("not a backup state")
        except (OSError, ValueError) as err:
            _skip(folder, err, clean)
            continue
        if check is not None:
            check(state)
        try:
            load_model(folder / BACKUP_MODEL_NAME)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            # OSError: truncated or missing HDF5; BadZipFile/EOFError: a cut .keras zip;
            # ValueError: content of the wrong shape.
            _skip(folder, err, clean)
            continue
        if clean:
            for old in generations(backup_dir):
                if old.name < folder.name:
                    _remove(old)
        return state
    return None


def _skip(folder: Path, err: Exception, clean: bool) -> None:
    log.warning("backup %s cannot be loaded (%s: %s); trying an older one", folder,
                type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    if clean:
        _remove(folder)


def discard_backup(backup_dir: Path) -> None:
    """Removes the backup folder (``--overwrite`` or a finished run)."""
    if backup_dir.exists():
        shutil.rmtree(backup_dir)


# --- the best model ---------------------------------------------------------------------------


def best_dir(model_dir: Path) -> Path:
    """``models/<task>/best``."""
    return model_dir / "best"


def user_paths(model_dir: Path, task: str) -> dict[str, Path]:
    """The user-facing best-model paths (symlinks through ``best/current/``)."""
    return {suffix: model_dir / f"best_model_{task}.{suffix}" for suffix in ("keras", "h5", "json")}


def publish_best(model_dir: Path, task: str, *, run_id: str, epoch: int,
                 save_keras: Callable[[Path], None], save_h5: Callable[[Path], None],
                 info: dict, replace_plain_files: bool) -> Path:
    """Writes a best model (.keras, .h5, .json) as one folder and makes it current.

    Order: the three files in ``best/.tmp-*``; rename to ``best/<run>-e<epoch>``; flip
    ``best/current``; make sure the user-facing symlinks exist; drop older best folders.
    A kill at any step leaves ``current`` on a complete folder, so ``best_model_<task>.json``
    always describes the ``.keras``/``.h5`` beside it (its sha256 fields say which bytes).

    Args:
        model_dir: ``models/<task>``.
        task: names the files.
        run_id: the run's id.
        epoch: 1-based epoch of this model.
        save_keras: writes the ``.keras`` file to the path given.
        save_h5: writes the ``.h5`` file to the path given.
        info: JSON-ready content (score, metrics, task, class names...).
        replace_plain_files: a plain file left at a user-facing path by an older version is
            replaced by the symlink (True for a fresh run only).

    Returns:
        The new best folder.
    """
    files = {suffix: f"best_model_{task}.{suffix}" for suffix in ("keras", "h5", "json")}

    def fill(tmp: Path) -> None:
        save_keras(tmp / files["keras"])
        save_h5(tmp / files["h5"])
        content = {**info, "run_id": run_id, "epoch": epoch,
                   "sha256": {suffix: atomic.sha256_file(tmp / files[suffix]) for suffix in ("keras", "h5")}}
        (tmp / files["json"]).write_text(json.dumps(content, indent=2), encoding="utf-8")

    parent = best_dir(model_dir)
    folder = publish_folder(parent, f"{run_id}-e{epoch:04d}", fill)
    point_symlink(parent / CURRENT, folder.name)
    link_user_paths(model_dir, task, replace_plain_files=replace_plain_files)
    clean_best(model_dir)
    return folder


def link_user_paths(model_dir: Path, task: str, *, replace_plain_files: bool) -> None:
    """Points ``best_model_<task>.{keras,h5,json}`` at ``best/current/`` (once, atomically)."""
    for suffix, path in user_paths(model_dir, task).items():
        target = f"{best_dir(model_dir).name}/{CURRENT}/{path.name}"
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.exists() and not path.is_symlink() and not replace_plain_files:
            log.warning("%s is a plain file from an older version; it is replaced by a link "
                        "to the best model when a fresh run starts (--overwrite)", path)
            continue
        point_symlink(path, target)


def current_best(model_dir: Path) -> dict | None:
    """The JSON of the current best model, or None when there is none."""
    path = best_dir(model_dir) / CURRENT
    try:
        return json.loads(next(path.glob("best_model_*.json")).read_text(encoding="utf-8"))
    except (OSError, StopIteration, ValueError):
        return None


def clean_best(model_dir: Path) -> None:
    """Removes best folders other than the current one, and ``.tmp-*`` leftovers (the best
    folder's and the user-facing links')."""
    parent = best_dir(model_dir)
    atomic.remove_leftovers(model_dir)
    if not parent.is_dir():
        return
    current = os.readlink(parent / CURRENT) if (parent / CURRENT).is_symlink() else None
    for path in parent.iterdir():
        if path.name not in (CURRENT, current):
            _remove(path)

"""Training: distribution strategy, resume or fresh start, and the fit loop.

The callbacks are in ``agegender.callbacks``, the on-disk run state in ``agegender.runstate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from agegender import atomic, compat, labels, provenance, report_dirs, runlock, runstate
from agegender.callbacks import (  # noqa: F401  (BestCheckpoint, LivePlot: re-exported)
    BestCheckpoint,
    CsvLog,
    EpochBackup,
    LivePlot,
    RunRecord,
    StopOnNonFinite,
    TensorBoardScalars,
    display_available,
)
from agegender.config import ModelParams, TrainParams
from agegender.errors import OutputError, ParameterError, TrainingError

log = logging.getLogger(__name__)


def choose_strategy(name: str = "auto"):
    """Picks the ``tf.distribute`` strategy.

    ``auto``: MultiWorkerMirrored when ``TF_CONFIG`` names a cluster, Mirrored when more than
    one GPU is visible, the default (one-device) strategy otherwise. ``mirrored`` mirrors over
    all GPUs, or over the logical CPU devices when there are no GPUs (how tests run it).

    Raises:
        ParameterError: unknown name, or ``multiworker`` without a ``TF_CONFIG`` cluster.
    """
    import tensorflow as tf  # noqa: PLC0415

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster")
    # Physical, not logical, devices: listing logical ones starts the TF runtime, after which
    # MultiWorkerMirroredStrategy fails ("Collective ops must be configured at program
    # startup"). Call this before anything else touches TensorFlow.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "multiworker" if cluster else "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if name == "multiworker":
        if not cluster:
            raise ParameterError("--strategy=multiworker needs TF_CONFIG naming a cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ParameterError(f"--strategy={name!r} is not one of auto, mirrored, multiworker, default")


def balanced_class_weight(codes: np.ndarray, num_classes: int) -> dict[int, float]:
    """``n / (k · count_c)`` per class (scikit-learn's 'balanced'); absent classes get 1.0."""
    counts = np.bincount(codes, minlength=num_classes).astype(float)
    total = counts.sum()
    return {c: (total / (num_classes * counts[c]) if counts[c] else 1.0)
            for c in range(num_classes)}


def _writable_dir(path: Path, flag: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{flag}={path}: cannot write there ({err.strerror})") from err
    return path


def output_paths(task: str, models_dir: str | os.PathLike,
                 results_dir: str | os.PathLike) -> dict[str, Path]:
    """Where training writes, creating (and checking) the folders: the model in
    ``models_dir/<task>/``, its reports in ``report_dirs.report_dir`` (``results_dir/<task>/
    best_model_<task>/``, where its test reports go too)."""
    model_dir = _writable_dir(Path(models_dir) / task, "--models_dir")
    keras_path = model_dir / f"best_model_{task}.keras"
    result_dir = _writable_dir(report_dirs.claim(results_dir, task, keras_path), "--results_dir")
    return {
        "keras": keras_path,
        "h5": model_dir / f"best_model_{task}.h5",
        "state": model_dir / f"best_model_{task}.json",
        "backup": model_dir / "backup",
        "csv": result_dir / f"train_logs_{task}.csv",
        "plot": result_dir / f"training_metrics_{task}.png",
        "tensorboard": result_dir / "tensorboard",
    }


def _is_chief(strategy) -> bool:
    """True on the one worker that writes (every strategy but MultiWorkerMirrored: always)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def _mixed_precision_policy() -> str:
    """float16 where GPUs have fast float16 units; bfloat16 on CPUs (no loss scaling needed)."""
    import tensorflow as tf  # noqa: PLC0415

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def _set_determinism(enabled: bool) -> None:
    import tensorflow as tf  # noqa: PLC0415

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        # Undo an earlier deterministic run in this process (tests, notebooks).
        from agegender.compat import disable_op_determinism  # noqa: PLC0415

        disable_op_determinism()


def train(dataset_dir: str | os.PathLike, task: str, *, train_params: TrainParams,
          model_params: ModelParams | None = None, image_size: int | None = None,
          models_dir: str | os.PathLike = "models", results_dir: str | os.PathLike = "results",
          show_summary: bool = False, show_live_plot: bool = False,
          verbose: int | str = "auto", extra_callbacks: list | None = None,
          overwrite: bool = False, tensorboard: bool = False, save_optimizer: bool = False,
          skip_corrupt: bool = False) -> dict:
    """Trains the MAM-CNN (or the voice-statistics model) on ``DIR/TFRecord`` train,
    validating on dev.

    Resumes automatically after an interruption: each finished epoch is a backup generation
    in ``models/<task>/backup/`` (model, optimizer state, best so far, log rows), so a kill
    costs at most the epoch in progress. A backup made with other settings stops the run
    (``ParameterError`` naming the flags) unless ``overwrite``. See ``agegender.runstate`` for
    the on-disk layout and why it is safe at every instant.

    With ``MultiWorkerMirroredStrategy`` every worker runs this; only the chief writes (the
    others write into temporary folders, removed at the end) and each worker reads its own
    part of every batch (``AutoShardPolicy.DATA``). Resuming there needs ``models_dir`` on a
    file system all workers see.

    Args:
        dataset_dir: dataset folder holding ``TFRecord/`` (train and dev splits).
        task: ``gender``, ``age`` or ``gender_age``.
        train_params: optimisation settings.
        model_params: the network (architecture, ``l2``, ``bn_momentum``, ``dense_units``,
            ``pitch_input``, ``image_dropout``); its input size, task and classes are taken
            from the shards and ``task``. None: the paper's MAM-CNN with the defaults.
        image_size: image height the shards must have (None: the shards' size).
        models_dir: checkpoints go to ``models_dir/<task>/``.
        results_dir: CSV log, curves and TensorBoard logs go to
            ``results_dir/<task>/best_model_<task>/`` (``report_dirs``).
        show_summary: print the model summary.
        show_live_plot: also show the curves in a window when a display exists.
        verbose: Keras ``fit`` verbosity.
        extra_callbacks: appended to the project's callbacks.
        overwrite: discard an existing backup and start a new run.
        tensorboard: also write TensorBoard scalars to
            ``results_dir/<task>/best_model_<task>/tensorboard/``.
        save_optimizer: keep the optimizer state in the best checkpoints (only needed to
            continue training from them; resuming uses the backup).
        skip_corrupt: leave corrupt shard records out (counted in ``corrupt``) instead of
            stopping with a DatasetError naming the first.

    Returns:
        Paths written, ``monitor`` (the dev metric that picked the best epoch), its best
        value ``best_score`` and ``best_epoch``, the run id and the replica count.

    Raises:
        ParameterError: settings differ from the backup's.
    """
    # Long because: a 42-line docstring (fourteen arguments, resume and multi-worker rules);
    # the try/finally holding the run lock, precision policy and scratch folder spans the
    # run; data and callbacks are in _datasets and _callbacks.
    import tensorflow as tf  # noqa: PLC0415

    from agegender.model import build_model, compile_model  # noqa: PLC0415
    from agegender.pipeline import (  # noqa: PLC0415
        labelled_count,
        split_index,
        split_labels,
        split_labels_and_speakers,
    )
    from agegender.split_checks import check_dev_split  # noqa: PLC0415

    names = labels.class_names(task)
    train_index = split_index(dataset_dir, "train", task, image_size)
    dev_index = split_index(dataset_dir, "dev", task, image_size)
    image_size, image_width = train_index["image_shape"][:2]
    train_count = labelled_count(train_index, task)
    if train_count < train_params.batch_size:
        log.warning("--batch_size=%d is larger than the %d training examples: one partial "
                    "batch an epoch", train_params.batch_size, train_count)
    features = train_index.get("features")
    model_params = dataclasses.replace(model_params or ModelParams(), image_size=image_size,
                                       image_width=image_width, num_classes=len(names),
                                       task=task, class_names=names)
    settings = runstate.run_settings(model_params, train_params, features=features,
                                     dataset=runstate.dataset_fingerprint(train_index,
                                                                          dev_index))

    strategy = choose_strategy(train_params.strategy)  # first: see choose_strategy
    keras.utils.set_random_seed(train_params.seed)
    _set_determinism(train_params.deterministic)
    chief = _is_chief(strategy)
    log.info("strategy %s over %d replica(s)%s", type(strategy).__name__,
             strategy.num_replicas_in_sync, "" if chief else " (not the chief: writes nothing)")
    real_paths = output_paths(task, models_dir, results_dir) if chief else None
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="agegender-worker-"))
    paths = real_paths or output_paths(task, scratch / "models", scratch / "results")
    # One run per MODELS_DIR/<task> (a second one's sweep would remove this one's temporary
    # files); taken before anything is written, released by the finally below.
    lock = runlock.RunLock(Path(models_dir) / task, what="training") if chief else None
    if chief:
        # .tmp-* beside the CSV, plot and links are what a kill left of an atomic write.
        for folder in (paths["keras"].parent, paths["csv"].parent):
            atomic.remove_leftovers(folder)
    backup_dir = Path(models_dir) / task / "backup"  # read by every worker, written by the chief
    check_dev_split(dataset_dir, task, paths["csv"].parent)  # warns when dev is thin
    # Stored in the model: which dataset (synthetic demo or real), speakers and clips.
    trained_on = provenance.trained_on(
        dataset_dir, split_labels_and_speakers(dataset_dir, "train", task)[1])
    log.info("training on %s (%s)", provenance.describe(trained_on), trained_on["kind"])

    previous_policy = keras.mixed_precision.global_policy()
    if train_params.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_precision_policy())
    try:
        def build():
            with strategy.scope():
                model = build_model(model_params, features=features, trained_on=trained_on)
                compile_model(model, train_params.learning_rate)
            return model

        model = build()
        record, model = _resume_or_start(model, build, settings, backup_dir, strategy,
                                         overwrite=overwrite, chief=chief)
        model_dir = paths["keras"].parent
        if not record.fresh:
            _adopt_orphan_best(record, model_dir)
        if show_summary:
            model.summary()

        train_data, train_read, dev_data, dev_read = _datasets(
            dataset_dir, task, train_params, model_params, train_index, train_count, strategy,
            skip_corrupt=skip_corrupt)
        steps = max(1, train_count // train_params.batch_size)
        log.info("worker %s: %d steps an epoch, %d examples a replica a step",
                 _worker_name(strategy), steps,
                 train_params.batch_size // strategy.num_replicas_in_sync)
        class_weight = None
        if train_params.class_weight == "balanced":
            class_weight = balanced_class_weight(split_labels(dataset_dir, "train", task),
                                                 len(names))
            log.info("class weights: %s", {names[c]: round(w, 3)
                                           for c, w in class_weight.items()})

        best, guard, callbacks = _callbacks(
            paths, record, model_dir, task, model_params, features, train_params,
            save_optimizer=save_optimizer, show_live_plot=show_live_plot and chief,
            tensorboard=tensorboard and chief, extra_callbacks=extra_callbacks)
        patched = (compat.multiworker_fit(model, strategy, train_data)
                   if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                   else contextlib.nullcontext())
        with patched:
            model.fit(train_data, validation_data=dev_data, epochs=train_params.num_epochs,
                      initial_epoch=record.next_epoch, class_weight=class_weight,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
        if guard.stopped:
            raise TrainingError(guard.message(best.best_epoch, model_dir))
        if chief:
            # Finished: the next run with these flags is a new run, not a resume.
            runstate.discard_backup(paths["backup"])
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if lock is not None:
            lock.release()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    result_paths = real_paths or output_paths(task, models_dir, results_dir)
    return {**{k: str(v) for k, v in result_paths.items() if k not in ("backup", "tensorboard")},
            **({"tensorboard": str(result_paths["tensorboard"])} if tensorboard else {}),
            "monitor": train_params.monitor, "best_score": best.best,
            "best_epoch": best.best_epoch,
            "run_id": record.run_id, "replicas": strategy.num_replicas_in_sync,
            "corrupt": {"train": train_read["corrupt"], "dev": dev_read["corrupt"]}}


def _datasets(dataset_dir, task: str, train_params: TrainParams, model_params: ModelParams,
              train_index: dict, train_count: int, strategy, *, skip_corrupt: bool) -> tuple:
    """The train and dev datasets of ``train``, each worker reading its part of a batch.

    Returns:
        ``(train_data, train_index, dev_data, dev_index)`` as ``pipeline.make_dataset`` gives.
    """
    import tensorflow as tf  # noqa: PLC0415

    from agegender.pipeline import make_dataset  # noqa: PLC0415

    # Decoded images are 12 KB each at 64 px: cache corpora that fit in ~2 GB.
    cache = train_count * int(np.prod(train_index["image_shape"])) < 2**31
    train_data, train_read = make_dataset(dataset_dir, "train", task,
                                          batch_size=train_params.batch_size, training=True,
                                          seed=train_params.seed, cache=cache,
                                          deterministic=train_params.deterministic,
                                          skip_corrupt=skip_corrupt,
                                          augment=train_params.augment,
                                          inputs=model_params.input_kinds)
    dev_data, dev_read = make_dataset(dataset_dir, "dev", task,
                                      batch_size=train_params.batch_size, training=False,
                                      cache=cache, deterministic=train_params.deterministic,
                                      skip_corrupt=skip_corrupt,
                                      inputs=model_params.input_kinds)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # DATA: every worker reads all shards and keeps its part of each batch; FILE
        # sharding would give workers unequal step counts with few shards.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        train_data, dev_data = train_data.with_options(options), dev_data.with_options(options)
    return train_data, train_read, dev_data, dev_read


def _callbacks(paths: dict, record, model_dir: Path, task: str, model_params: ModelParams,
               features, train_params: TrainParams, *, save_optimizer: bool,
               show_live_plot: bool, tensorboard: bool, extra_callbacks: list | None) -> tuple:
    """The callbacks of ``train``'s fit, in the order they must run.

    Returns:
        ``(best, guard, callbacks)``: the ``BestCheckpoint``, the ``StopOnNonFinite`` (first in
        the list) and the whole list.
    """
    title = "MAM-CNN" if "spectrogram" in model_params.input_kinds else "voice statistics"
    info = {**model_params.to_record(), "features": features}
    best = BestCheckpoint(model_dir, task, record, extra_info=info,
                          monitor=train_params.monitor, save_optimizer=save_optimizer)
    callbacks = [best, EpochBackup(paths["backup"], record),
                 CsvLog(paths["csv"], record),
                 LivePlot(paths["csv"], paths["plot"], show=show_live_plot,
                          title=f"{title}, {task}", best=best)]
    if tensorboard:
        callbacks.append(TensorBoardScalars(paths["tensorboard"]))
    callbacks += list(extra_callbacks or [])
    guard = StopOnNonFinite()  # first, so it has stopped fit before the others look
    callbacks.insert(0, guard)
    if train_params.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=train_params.monitor, mode="max",
            patience=train_params.early_stopping_patience))
    return best, guard, callbacks


def _worker_name(strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return "0"
    return f"{resolver.task_type}:{resolver.task_id}"


def _resume_or_start(model, build, settings: runstate.RunSettings, backup_dir: Path, strategy,
                     *, overwrite: bool, chief: bool):
    """Restores the newest usable backup generation into ``model``, or starts a new run.

    Returns:
        ``(record, model)``: the model is rebuilt when a damaged generation was partly loaded
        and no older one was usable.
    """
    if overwrite:
        if chief and backup_dir.exists():
            log.info("--overwrite: discarding the backup in %s", backup_dir)
            runstate.discard_backup(backup_dir)
        return RunRecord(run_id=runstate.new_run_id(), settings=settings.to_dict()), model
    tried = []

    def check(state: dict) -> None:
        runstate.check_same_run(runstate.RunSettings.from_dict(state["settings"]), settings,
                                backup_dir)

    def load(path: Path) -> None:
        tried.append(path)
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model.load_weights(path)

    state = runstate.load_generation(backup_dir, load, check=check, clean=chief)
    if state is None:
        return (RunRecord(run_id=runstate.new_run_id(), settings=settings.to_dict()),
                build() if tried else model)
    record = RunRecord.from_state(state)
    log.info("resuming run %s after epoch %d from %s (optimizer step %d)", record.run_id,
             record.next_epoch, backup_dir, int(model.optimizer.iterations))
    return record, model


def _adopt_orphan_best(record: RunRecord, model_dir: Path) -> None:
    """A kill after publishing a best model but before its backup leaves a best of this run
    from an epoch the backup does not know; it is a real model of this run, so it stays the
    best to beat (the redone epoch replaces it only by beating it)."""
    current = runstate.current_best(model_dir)
    if not current or current.get("run_id") != record.run_id:
        return
    score, tie = float(current.get("score", -np.inf)), float(current.get("tie", np.inf))
    if score > record.best or (score == record.best and tie < record.best_tie):
        record.best, record.best_tie, record.best_epoch = score, tie, current.get("epoch")

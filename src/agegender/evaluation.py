"""The two test drivers: a model scored on a split's shards, or on audio listed in a table.

Both end in one path (``_report``): ``analysis.analyse`` computes every number from arrays
and ``reports.write_report`` writes the log, CSVs and figures, so ``evaluate`` (shards,
``test.py``) and ``evaluate_clips`` (audio, ``test.py --manifest``) give the same report.
The probabilities are those inference ships (``AgeGenderDetector``); for gender, the pitch
baseline's threshold is fitted by ``pitch``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import atomic
from agegender.analysis import analyse
from agegender.errors import DatasetError
from agegender.metrics import N_RESAMPLES
from agegender.reports import write_report
from agegender.split_checks import check_model_features

log = logging.getLogger(__name__)


def manifest_audio_paths(dataset_dir: str | os.PathLike, split: str,
                         keys: Sequence[str]) -> list[str] | None:
    """Audio path (relative to ``dataset_dir``) of each clip key from the split's manifest;
    "" for keys it lacks; None without a manifest."""
    from agegender.commonvoice import read_clean_manifest  # noqa: PLC0415

    try:
        manifest = read_clean_manifest(dataset_dir, split)
    except DatasetError as err:
        log.warning("no audio paths for the %s clips: %s", split, err)
        return None
    paths = dict(zip(manifest["key"], manifest["audio_path"], strict=True))
    return [paths.get(key, "") for key in keys]


def _gender_f0(audio_paths: list[str] | None, root, cache) -> np.ndarray | None:
    from agegender import pitch  # noqa: PLC0415

    if audio_paths is None:
        return None
    known = [i for i, path in enumerate(audio_paths) if path]
    f0 = np.full(len(audio_paths), np.nan)
    f0[known] = pitch.cached_median_f0([audio_paths[i] for i in known], root=root, cache=cache)
    return f0


def evaluate(dataset_dir: str | os.PathLike, model_path: str | os.PathLike, task: str | None,
             *, split: str = "test", results_dir: str | os.PathLike = "results",
             batch_size: int = 128, n_resamples: int = N_RESAMPLES,
             skip_corrupt: bool = False, verify: bool = True,
             max_crops: int | None = None) -> dict:
    """Evaluates a model on a split's TFRecords and writes the reports (``write_report``).

    The report scores what inference ships: for a model with a constant time scale
    (``voice``) and ``max_crops`` > 1, each clip's probabilities are the mean over the crops
    ``AgeGenderDetector(max_crops=...)`` takes, computed from the clip's audio (found through
    ``DIR/Manifest``); a clip whose audio cannot be read keeps its shard image's
    probabilities (counted in the log and the report). Otherwise the shard image is the
    very image the detector makes (one per clip). ``max_crops`` None: the detector's default.

    The model's stored feature settings must equal the shards'
    (``split_checks.check_model_features``).
    ``skip_corrupt`` leaves corrupt records out (``result["corrupt"]`` says which) instead of
    stopping; ``verify`` checks the model file against its ``.sha256`` sidecar.

    For gender, the clips' audio (found through ``DIR/Manifest``) gives the pitch baseline,
    its threshold fitted on train+dev (``pitch.pitch_threshold_from_splits``).

    Raises:
        ModelError: the model does not fit ``task`` (checked before any data is read).
        DatasetError: no shards for the split.
    """
    # Long because: the docstring documents nine arguments and the outputs; the code is 42 lines.
    from tqdm import tqdm  # noqa: PLC0415

    from agegender import pitch  # noqa: PLC0415
    from agegender.checkpoints import open_model  # noqa: PLC0415
    from agegender.pipeline import make_dataset  # noqa: PLC0415

    model = open_model(model_path, task, verify=verify)
    task, names = model.task, list(model.class_names)
    from agegender.pipeline import split_index  # noqa: PLC0415

    check_model_features(model, split_index(dataset_dir, split, task), dataset_dir, split)
    data, index = make_dataset(dataset_dir, split, task, batch_size=batch_size, training=False,
                               with_keys=True, image_size=model.features.image_size,
                               skip_corrupt=skip_corrupt, inputs=model.inputs)
    keys, speakers, truth, probabilities = [], [], [], []
    # disable=None: a bar only on a terminal, where it is redrawn in place. In a pipe or log
    # file every redraw stays, and tqdm draws the last state twice (last update, then close),
    # so "evaluating test" showed up twice at 100 %; there the log line below says it once.
    started = time.monotonic()
    for inputs, codes, batch_keys, batch_speakers in tqdm(data, desc=f"evaluating {split}",
                                                          unit="batch", disable=None):
        probabilities.append(model.predict({kind: value.numpy()
                                            for kind, value in inputs.items()}))
        truth.append(codes.numpy())
        keys += [k.decode() for k in batch_keys.numpy()]
        speakers += [s.decode() for s in batch_speakers.numpy()]
    probabilities = np.concatenate(probabilities)
    y_true = np.concatenate(truth)
    log.info("evaluated %d %s clips in %.1f s", len(y_true), split, time.monotonic() - started)
    audio_paths = manifest_audio_paths(dataset_dir, split, keys)
    probabilities, scoring = _as_detector_scores(model, probabilities, audio_paths, dataset_dir,
                                                 max_crops=max_crops, batch_size=batch_size)
    f0 = threshold = None
    if task == "gender":
        f0 = _gender_f0(audio_paths, dataset_dir, pitch.cache_path(dataset_dir))
        threshold = pitch.pitch_threshold_from_splits(dataset_dir) if f0 is not None else None
    result = _report(y_true, probabilities, names, task=task, split=split,
                     model_path=str(model_path), results_dir=results_dir, keys=keys,
                     speakers=speakers, audio_paths=audio_paths, f0_hz=f0, threshold=threshold,
                     n_resamples=n_resamples, scoring=scoring)
    result = _with_leakage_line(result, dataset_dir)
    return {**result, "corrupt": index.get("corrupt", {"records": 0, "shards": []})}


def _as_detector_scores(model, shard_probabilities: np.ndarray, audio_paths: list[str] | None,
                        root: str | os.PathLike, *, max_crops: int | None,
                        batch_size: int) -> tuple[np.ndarray, str]:
    """The detector's probabilities for the clips, where they differ from the shard image's.

    Returns:
        (probabilities [clips, classes], how they were made, in words).
    """
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415

    detector = AgeGenderDetector.from_model(model, batch_size=min(batch_size, 64),
                                            max_crops=max_crops)
    scoring = detector.scoring()
    if not (model.features.fixed_time and detector.max_crops > 1):
        return shard_probabilities, f"{scoring}; from the shard images"
    if audio_paths is None:
        log.warning("no manifest: the %d clips are scored on their shard image (one crop), "
                    "not on %d crops as inference does", len(shard_probabilities),
                    detector.max_crops)
        return shard_probabilities, "the centre crop of each clip (shard images; no manifest " \
                                    "to find the audio for more crops)"
    files = [str(Path(root) / path) if path else "" for path in audio_paths]
    results = detector.predict_files([f for f in files if f])
    by_file = iter(results)
    names = list(model.class_names)
    probabilities = np.array(shard_probabilities, dtype=np.float64)
    kept = 0
    for i, file in enumerate(files):
        result = next(by_file) if file else None
        if result is not None and result["error"] is None:
            probabilities[i] = [result["probabilities"][name] for name in names]
            kept += 1
    if kept < len(files):
        log.warning("%d of %d clips were refused by the detector (no speech, or the audio "
                    "could not be read): scored on their shard image (one crop)",
                    len(files) - kept, len(files))
    return probabilities, (f"{scoring}; from the audio"
                           + (f" ({len(files) - kept} clips the detector refused, no speech "
                              "or unreadable audio: their shard image)" if kept < len(files)
                              else ""))


def _with_leakage_line(result: dict, dataset_dir: str | os.PathLike) -> dict:
    """Adds the line on speaker leakage (``leakage.report_line``) to the test log."""
    from agegender import leakage  # noqa: PLC0415

    line = leakage.report_line(dataset_dir)
    if line is None:
        return result
    log.info("%s", line)
    text = result["text"].rstrip("\n") + "\n" + line + "\n"
    atomic.write_text(result["paths"]["log"], text)
    return {**result, "text": text}


def _report(y_true, probabilities, names, *, task, split, model_path, results_dir, keys,
            speakers, audio_paths, f0_hz, threshold, n_resamples, scoring) -> dict:
    """``analyse`` + ``write_report``: the one path both evaluations end in."""
    if f0_hz is not None and not np.isfinite(f0_hz).any():
        # Every clip unvoiced means no audio was found, not a baseline worth reporting.
        log.warning("pitch baseline left out: no clip's audio gave an F0")
        f0_hz = threshold = None
    result = analyse(y_true, probabilities, names, speakers=speakers, f0_hz=f0_hz,
                     pitch_threshold=threshold, n_resamples=n_resamples)
    result["scoring"] = scoring
    written = write_report(result, names, task=task, split=split, model_path=model_path,
                           results_dir=results_dir, keys=keys, speakers=speakers,
                           audio_paths=audio_paths, f0_hz=f0_hz, probabilities=probabilities)
    return {**result, **written, "task": task}


def evaluate_clips(model_path: str | os.PathLike, clips: pd.DataFrame, *,
                   task: str | None = None, root: str | os.PathLike | None = None,
                   results_dir: str | os.PathLike = "results", split: str = "clips",
                   pitch_threshold: float | None = None, fit_clips: pd.DataFrame | None = None,
                   pitch_cache: str | os.PathLike | None = None, batch_size: int = 64,
                   n_resamples: int = N_RESAMPLES, max_crops: int | None = None,
                   min_voiced: float = 0.1) -> dict:
    """Evaluates a model on audio files listed in a table; the same report as ``evaluate``.

    The probabilities are ``AgeGenderDetector.predict``'s, with the same ``max_crops`` (None:
    the detector's default), so the report scores exactly what inference ships. Clips that
    cannot be decoded are left out (logged).

    Args:
        model_path: the model.
        clips: one row per clip: ``audio_path`` (absolute or relative to ``root``),
            ``speaker_id`` ("" or missing column: unknown), the label as ``<task>_code``
            or as a name in column ``<task>``; optional ``key`` (default: the file stem).
        task: expected task; None reads it from the model.
        root: base folder of relative audio paths.
        results_dir: reports go to ``results_dir/<task>/<model name>/`` (``report_dirs``).
        split: names the clips in the report.
        pitch_threshold: gender: fixed threshold, Hz. None: fitted on ``fit_clips`` (same
            columns) when given, else 165 Hz.
        fit_clips: gender: labelled clips to fit the pitch threshold on (train/dev).
        pitch_cache: F0 cache CSV (e.g. ``pitch.cache_path(root)``); None: no cache.
        batch_size: images per model call.
        n_resamples: bootstrap resamples.
        max_crops: crops averaged per clip (``AgeGenderDetector``); None: its default.
        min_voiced: the speech gate (``agegender.speech``, as in preprocessing and
            inference): clips with fewer voiced frames are left out and listed in the
            result's ``no_speech`` ({key: voiced share}); 0 = no gate.

    Raises:
        ModelError: the model does not fit ``task``.
        DatasetError: a column is missing, or no clip could be decoded.
    """
    # Long because: a 30-line docstring (arguments and the table's columns); the code is 55 lines.
    from agegender import pitch  # noqa: PLC0415
    from agegender.checkpoints import open_model  # noqa: PLC0415
    from agegender.inference import AgeGenderDetector  # noqa: PLC0415
    from agegender.config import check_min_voiced  # noqa: PLC0415

    check_min_voiced(min_voiced)
    model = open_model(model_path, task)
    detector = AgeGenderDetector.from_model(model, batch_size=batch_size,
                                            min_voiced=min_voiced, max_crops=max_crops)
    task, names = model.task, list(model.class_names)
    codes = _label_codes(clips, task, names)
    if (codes < 0).any():  # task-aware tables: rows without this task's label take no part
        log.info("%d of %d clips have no %s label and are left out", int((codes < 0).sum()),
                 len(codes), task)
        clips, codes = clips[codes >= 0], codes[codes >= 0]
    if not len(clips):
        raise DatasetError(f"no clip has a {task} label")
    base = Path(root) if root is not None else None
    paths = [str(p) for p in clips["audio_path"]]
    files = [str(base / p) if base is not None else p for p in paths]
    speakers = (clips["speaker_id"].fillna("").astype(str).tolist()
                if "speaker_id" in clips.columns else [""] * len(clips))
    keys = (clips["key"].astype(str).tolist() if "key" in clips.columns
            else [Path(p).stem for p in paths])
    kept, probabilities, no_speech = [], [], {}
    for i, result in enumerate(detector.predict_files(files)):
        if not result.get("speech", True):
            no_speech[keys[i]] = result["voiced"]
            log.warning("left out: %s", result["error"])
            continue
        if result["error"] is not None:
            log.warning("left out: %s", result["error"])
            continue
        kept.append(i)
        probabilities.append([result["probabilities"][name] for name in names])
    if not kept:
        raise DatasetError(f"none of the {len(clips)} clips could be decoded")
    f0 = threshold = None
    if task == "gender":
        f0 = pitch.cached_median_f0([paths[i] for i in kept], root=base, cache=pitch_cache)
        if pitch_threshold is not None:
            threshold = {"hz": float(pitch_threshold), "unvoiced_code": 0,
                         "source": f"given ({float(pitch_threshold):.1f} Hz)"}
        elif fit_clips is not None:
            threshold = pitch.pitch_threshold_from_clips(
                [str(p) for p in fit_clips["audio_path"]], _label_codes(fit_clips, task, names),
                root=base, cache=pitch_cache, what="fit")
        else:
            threshold = pitch.fallback_threshold("no clips to fit it on were given")
    result = _report(codes[kept], np.asarray(probabilities), names, task=task, split=split,
                     model_path=str(model_path), results_dir=results_dir,
                     keys=[keys[i] for i in kept], speakers=[speakers[i] for i in kept],
                     audio_paths=[paths[i] for i in kept], f0_hz=f0, threshold=threshold,
                     n_resamples=n_resamples, scoring=f"{detector.scoring()}; from the audio")
    return {**result, "no_speech": no_speech}


def _label_codes(clips: pd.DataFrame, task: str, names: list[str]) -> np.ndarray:
    """Label codes [clips] from ``<task>_code`` or from names in ``<task>``."""
    if "audio_path" not in clips.columns:
        raise DatasetError("clip table has no audio_path column")
    if f"{task}_code" in clips.columns:
        codes = clips[f"{task}_code"].astype(int).to_numpy()
    elif task in clips.columns:
        unknown = sorted(set(clips[task]) - set(names))
        if unknown:
            raise DatasetError(f"clip table: {task} values {unknown[:3]} are not one of "
                               f"{', '.join(names)}")
        codes = clips[task].map(names.index).to_numpy()
    else:
        raise DatasetError(f"clip table has neither {task}_code nor {task} column")
    if codes.size and not -1 <= codes.min() <= codes.max() < len(names):
        raise DatasetError(f"clip table: {task}_code outside -1..{len(names) - 1}")
    return codes

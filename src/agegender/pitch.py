"""Median fundamental frequency (F0) of a clip: the trivial gender baseline.

Adult male voices sit around 85-155 Hz, female around 165-255 Hz, so "median F0 above a
threshold → female" is the signal baseline a gender model must beat (see STYLE.md,
"Reporting like the field does").

The F0 estimator itself (``median_f0``, yin gated by energy and periodicity) is ``f0.py``.

Median F0 per clip is cached in ``DIR/Pitch/median_f0.csv`` (DIR: the preprocessing output
folder) or ``RESULTS_DIR/cache/`` (``test.py --manifest``: never beside the user's audio),
keyed by audio path, file size and modification time, so re-running an evaluation decodes
nothing twice; a cache that cannot be written is skipped with a warning.

The threshold is fitted for best UAR on labelled clips (``fit_threshold``): on a processed
dataset's train+dev manifests (``pitch_threshold_from_splits``, the shard test report) or on
given clips (``pitch_threshold_from_clips``, ``test.py --manifest``); 165 Hz, said so in the
report, when it cannot be. No TensorFlow here.
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
from agegender.config import FeatureParams
from agegender.errors import AudioError, DatasetError, OutputError, ParameterError
from agegender.f0 import PITCH_RATE, median_f0
from agegender.metrics import classification_metrics

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_HZ = 165.0  # the textbook male/female boundary, used when nothing is fitted
PITCH_FIT_CLIPS = 2000  # train+dev clips the pitch threshold is fitted on, at most
CACHE_COLUMNS = ("audio_path", "size", "mtime_ns", "median_f0_hz")


def clip_median_f0(path: str | os.PathLike, *, max_duration_s: float = 15.0,
                   method: str = "yin") -> float:
    """Median F0 of an audio file, decoded by ``features.load_clip`` (as the model's input).

    Raises:
        AudioError: the file cannot be decoded.
    """
    from agegender.features import load_clip  # noqa: PLC0415

    # load_clip resamples straight to 8 kHz: one resampling, not two.
    params = FeatureParams(sample_rate=PITCH_RATE, max_duration_s=max_duration_s)
    return median_f0(load_clip(path, params), PITCH_RATE, method=method)


def cache_path(dataset_dir: str | os.PathLike) -> Path:
    """``DIR/Pitch/median_f0.csv``."""
    return Path(dataset_dir) / "Pitch" / "median_f0.csv"


def results_cache_path(results_dir: str | os.PathLike, audio_root: str | os.PathLike) -> Path:
    """``RESULTS_DIR/cache/median_f0-<12 hex>.csv``: the F0 cache of the audio under
    ``audio_root`` (named by a digest of its absolute path), kept where outputs go, so a
    read-only audio folder is never written."""
    import hashlib  # noqa: PLC0415

    tag = hashlib.sha256(str(Path(audio_root).absolute()).encode("utf-8")).hexdigest()[:12]
    return Path(results_dir) / "cache" / f"median_f0-{tag}.csv"


def cached_median_f0(audio_paths: Sequence[str], *, root: str | os.PathLike | None = None,
                     cache: str | os.PathLike | None = None) -> np.ndarray:
    """Median F0 of many files, reusing and extending a CSV cache.

    Args:
        audio_paths: files, absolute or relative to ``root``.
        root: base folder of relative paths (and the cache key's base).
        cache: the CSV (``cache_path(root)``); None: no cache.

    Returns:
        float64 [files], Hz; nan for unvoiced clips and for files that cannot be decoded
        (logged, not raised: one bad file must not stop a report).
    """
    root = Path(root) if root is not None else None
    table = pd.DataFrame(columns=list(CACHE_COLUMNS))
    if cache is not None and Path(cache).is_file():
        table = pd.read_csv(cache, dtype={"audio_path": str}, keep_default_na=False,
                            na_values=[""])
    known = {(row.audio_path, int(row.size), int(row.mtime_ns)): float(row.median_f0_hz)
             for row in table.itertuples(index=False)}
    values, fresh, bad = np.full(len(audio_paths), np.nan), [], 0
    started = time.perf_counter()
    from tqdm import tqdm  # noqa: PLC0415

    # The pitch baseline's first fit decodes every train+dev clip (108 s for 2,000 Common
    # Voice clips): a bar on a terminal says so; the cache makes later runs instant.
    for i, name in enumerate(tqdm(audio_paths, desc="pitch baseline: median F0", unit="clip",
                                  disable=None, leave=False)):
        full = root / name if root is not None else Path(name)
        try:
            stat = full.stat()
        except OSError:
            bad += 1
            continue
        key = (str(name), stat.st_size, stat.st_mtime_ns)
        if key in known:
            values[i] = known[key]
            continue
        try:
            values[i] = clip_median_f0(full)
        except AudioError as err:
            bad += 1
            log.debug("pitch: %s", err)
            continue
        known[key] = values[i]
        fresh.append(key)
    if bad:
        log.warning("pitch: %d of %d files missing or undecodable; their F0 is unknown", bad,
                    len(audio_paths))
    if fresh:
        log.info("pitch: median F0 of %d clips in %.1f s", len(fresh),
                 time.perf_counter() - started)
        if cache is not None:
            rows = [(*key, value) for key, value in known.items()]
            _write_cache(cache, pd.DataFrame(rows, columns=list(CACHE_COLUMNS)))
    return values


def _write_cache(cache: str | os.PathLike, table: pd.DataFrame) -> None:
    """Writes the cache; a folder that cannot be written (read-only, full) costs only the
    cache: a WARNING, and the values are still returned."""
    try:
        atomic.write_text(cache, table.to_csv(index=False))
    except (OSError, OutputError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        log.warning("pitch: cache %s cannot be written (%s); going on without caching",
                    cache, reason)


def threshold_predictions(f0_hz: np.ndarray, threshold_hz: float, *,
                          unvoiced_code: int = 0) -> np.ndarray:
    """Gender codes from median F0: above the threshold → female (1), else male (0).

    Args:
        f0_hz: [clips], nan where unvoiced.
        threshold_hz: the boundary.
        unvoiced_code: what a clip without F0 is called; default 0, male. The test report's
            fitted baseline passes the training majority class
            (``pitch_threshold_from_clips``).

    Returns:
        int [clips].
    """
    f0_hz = np.asarray(f0_hz, dtype=float)
    codes = (f0_hz > threshold_hz).astype(int)
    codes[~np.isfinite(f0_hz)] = unvoiced_code
    return codes


def fit_threshold(f0_hz: np.ndarray, female: np.ndarray) -> float:
    """The threshold that maximises UAR (mean of male and female recall) on labelled clips.

    Args:
        f0_hz: [clips] median F0, nan allowed (ignored).
        female: [clips] bool or 0/1, True for female.

    Returns:
        Hz, midway between the two F0 values that bound the best split.

    Raises:
        ParameterError: fewer than one voiced clip of each gender.
    """
    f0_hz, female = np.asarray(f0_hz, dtype=float), np.asarray(female).astype(bool)
    keep = np.isfinite(f0_hz)
    f0_hz, female = f0_hz[keep], female[keep]
    if not female.any() or female.all():
        raise ParameterError("fit_threshold needs voiced clips of both genders, "
                             f"got {int(female.sum())} female of {female.shape[0]}")
    order = np.argsort(f0_hz, kind="stable")
    f0_hz, female = f0_hz[order], female[order]
    # Threshold after position i (clips 0..i male): male recall = males so far / all males.
    male_recall = np.cumsum(~female) / (~female).sum()
    female_recall = 1.0 - np.cumsum(female) / female.sum()
    uar = (male_recall + female_recall) / 2  # [clips]
    # Cut only between distinct values (the last cut, "all male", scores 0.5 like any
    # constant rule, so the best is never worse than chance).
    distinct = np.append(f0_hz[1:] > f0_hz[:-1], True)
    best = int(np.argmax(np.where(distinct, uar, -1.0)))
    upper = f0_hz[best + 1] if best + 1 < f0_hz.shape[0] else f0_hz[best] + 1.0
    return float((f0_hz[best] + upper) / 2)


def pitch_threshold_from_splits(dataset_dir: str | os.PathLike, *,
                                max_clips: int = PITCH_FIT_CLIPS, seed: int = 0) -> dict:
    """Fits the gender pitch threshold on the train and dev manifests' clips.

    Up to ``max_clips`` clips (seeded sample) are measured, through the F0 cache. Falls back
    to 165 Hz when the manifests, their audio or one of the genders is missing.

    Returns:
        ``{"hz", "source" (text for the report), "unvoiced_code"}``.
    """
    from agegender.commonvoice import read_clean_manifest  # noqa: PLC0415

    try:
        table = pd.concat([read_clean_manifest(dataset_dir, split)
                           for split in ("train", "dev")], ignore_index=True)
    except DatasetError as err:
        return fallback_threshold(f"no train/dev manifest ({err})")
    return pitch_threshold_from_clips(table["audio_path"].tolist(),
                                      table["gender_code"].to_numpy(), root=dataset_dir,
                                      cache=cache_path(dataset_dir), max_clips=max_clips,
                                      seed=seed, what="train+dev")


def pitch_threshold_from_clips(audio_paths: Sequence[str], gender_codes: np.ndarray, *,
                               root: str | os.PathLike | None = None,
                               cache: str | os.PathLike | None = None,
                               max_clips: int = PITCH_FIT_CLIPS, seed: int = 0,
                               what: str = "fit") -> dict:
    """Fits the pitch threshold (max UAR) on labelled clips; 165 Hz if that is impossible.

    Args:
        audio_paths: files [clips], absolute or relative to ``root``.
        gender_codes: 0 male, 1 female [clips].
        root: base of relative paths.
        cache: F0 cache CSV.
        max_clips: seeded sample size.
        seed: sample seed.
        what: names the clips in the report ("train+dev").
    """
    codes = np.asarray(gender_codes, dtype=int)
    labelled = np.flatnonzero(codes >= 0)  # -1: the clip has no gender label
    audio_paths, codes = [audio_paths[i] for i in labelled], codes[labelled]
    if len(codes) == 0:
        return fallback_threshold(f"no {what} clips with a gender label")
    pick = np.random.default_rng(seed).permutation(len(codes))[:max_clips]
    f0 = cached_median_f0([audio_paths[i] for i in pick], root=root, cache=cache)
    codes = codes[pick]
    majority = int(np.bincount(codes, minlength=2).argmax())
    try:
        hz = fit_threshold(f0, codes == 1)
    except ParameterError as err:
        return fallback_threshold(f"cannot fit on {what} ({err})", unvoiced_code=majority)
    voiced = np.isfinite(f0)
    fitted = threshold_predictions(f0[voiced], hz)
    uar = classification_metrics(codes[voiced], fitted, ("male", "female"))["balanced_accuracy"]
    return {"hz": hz, "unvoiced_code": majority,
            "source": f"fitted for best UAR on {int(voiced.sum())} voiced {what} clips "
                      f"(UAR {uar:.3f} there)"}


def fallback_threshold(why: str, unvoiced_code: int = 0) -> dict:
    """The fixed ``DEFAULT_THRESHOLD_HZ`` baseline, logged as a WARNING with the reason.

    Args:
        why: why nothing was fitted; said in the log and in the report's ``source``.
        unvoiced_code: what a clip without F0 is called (see ``threshold_predictions``).

    Returns:
        ``{"hz", "source", "unvoiced_code"}``, as ``pitch_threshold_from_clips``.
    """
    log.warning("pitch baseline: using the fixed %.0f Hz threshold: %s", DEFAULT_THRESHOLD_HZ,
                why)
    return {"hz": DEFAULT_THRESHOLD_HZ, "unvoiced_code": unvoiced_code,
            "source": f"fixed at {DEFAULT_THRESHOLD_HZ:.0f} Hz ({why})"}

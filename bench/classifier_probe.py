"""Whether any classifier beats a logistic regression on a clip's 45 voice statistics.

The reference is the ``voice_stats_probe`` model: a logistic regression (standardised
inputs, balanced class weights, C=1) on ``agegender.voice_stats.voice_statistics``. Beside
it, on the same clips: a smaller C, an RBF SVM (C 0.3, 1, 3), gradient-boosted trees, the
logistic refitted after dropping training clips whose own label looks wrong (self-reported
labels), a frame-level GMM per class on MFCC 1-20 and their deltas of the loud frames
(``voice_stats.envelope_frames``), and a logistic on the statistics and the GMM's scores
together. Every row is scored by speaker-grouped 5-fold cross-validation on train + dev
(``GroupKFold`` over ``speaker_id``): pooled out-of-fold UAR with the stratified
speaker-bootstrap 95 % interval, and its paired difference from the reference on the same
resamples (``agegender.metrics``). The test split is never fitted on or scored unless
``--test`` is given (its clips' features are cached with the rest), which adds a train →
test table for a closing report; the model is picked from the cross-validation table, never
from that one.

Works on any ``manifest`` folder with ``path,gender,age,speaker_id,split`` columns (e.g.
``../shared/cv-sample``, only read). The statistics are cached per clip under ``--cache``
(default ``~/.cache/agegender/voice_stats_<folder name>.npz``, shared with
``voice_stats_probe.py``), the frames under ``--frames_cache`` (default
``~/.cache/agegender/envelope_frames_<folder name>.npz``). Run from the repo root::

    python bench/classifier_probe.py --dataset_dir ../shared/cv-sample

On cv-sample (3,320 clips) with 2 cores: ~2.5 min for the statistics and ~2 min for the
frames the first time, then ~9 min for the gender rows, ~6 min of it the GMM fits that the
``gmm`` and ``stack`` rows share (``--models`` without them skips the frames too).

The frames' deltas are taken along the loud frames only (``envelope_frames`` drops the quiet
ones first), so a delta can span a pause; the GMMs model them as they are.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import common  # first: puts src/ on the path, quiets TensorFlow
import numpy as np
import pandas as pd
import voice_stats_probe  # the statistics and their cache

MODELS: tuple[str, ...] = ("logistic C=1", "logistic C=0.1", "svm C=0.3", "svm C=1",
                           "svm C=3", "hgb", "clean 0.05", "clean 0.2", "gmm", "stack")
REFERENCE = MODELS[0]
FRAME_MODELS = frozenset({"gmm", "stack"})  # the rows that need the frames and the GMMs
OUTER_FOLDS = 5
CLEAN_FOLDS = 5  # inner folds giving each training clip an out-of-fold label probability
GMM_FOLDS = 4  # inner folds giving the GMM's out-of-fold scores its read-out is fitted on
GMM_COMPONENTS = 32
SCALER_FRAMES = 50  # frames per training clip the frame scaler sees
DELTA_WIDTH = 5
FRAME_DIMS = 40  # MFCC 1-20, then their deltas
SEED = 0


# --------------------------------------------------------------------------- frames


def _frames(job: tuple[int, str]) -> tuple[int, np.ndarray | None]:
    """(row, the clip's frames float32 [loud frames, FRAME_DIMS], or None when it cannot
    be read)."""
    import librosa

    from agegender.config import FeatureParams
    from agegender.errors import AudioError
    from agegender.features import load_clip
    from agegender.voice_stats import envelope_frames

    row, path = job
    params = FeatureParams.preset("voice")
    try:
        waveform = load_clip(path, params)  # [samples]
    except AudioError as err:
        print(f"skipped: {err}", file=sys.stderr)
        return row, None
    cepstra = envelope_frames(waveform, params.sample_rate)  # [loud, 20]
    if len(cepstra) >= DELTA_WIDTH:
        deltas = librosa.feature.delta(cepstra.T, width=DELTA_WIDTH).T  # [loud, 20]
    else:  # librosa refuses a width longer than the clip
        deltas = np.zeros_like(cepstra)
    return row, np.concatenate([cepstra, deltas], axis=1).astype(np.float32)


def clip_frames(dataset_dir: Path, cells: list[str], cache: Path,
                workers: int) -> list[np.ndarray | None]:
    """Each manifest path cell's frames float32 [loud frames, FRAME_DIMS] (None for a clip
    that cannot be read or points outside the dataset), cached by cell in one ``.npz``.

    The cache holds ``cells`` [clips], ``lengths`` int64 [clips] (-1: unreadable) and
    ``frames`` float32 [sum of lengths, FRAME_DIMS], the clips' frames one after another.
    A cell refused by its path (outside the folder, missing) is not cached: it is checked,
    and reported, on every run, and read once its file is there.
    """
    from tqdm import tqdm

    from agegender import atomic
    from agegender.workers import imap_unordered

    known: dict[str, np.ndarray | None] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            if stored["frames"].shape[1:] == (FRAME_DIMS,):
                lengths, frames = stored["lengths"], stored["frames"]
                starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))])
                known = {cell: None if length < 0 else frames[start:start + length]
                         for cell, length, start in zip(stored["cells"].tolist(), lengths,
                                                        starts)}
    todo = sorted(set(cells) - set(known))
    jobs, refused = voice_stats_probe.cell_jobs(dataset_dir, todo)
    if jobs:
        for row, frames in tqdm(imap_unordered(_frames, jobs, workers), total=len(jobs),
                                desc="envelope frames"):
            known[todo[row]] = frames
        usable = [f for f in known.values() if f is not None]
        buffer = io.BytesIO()
        np.savez(buffer, cells=np.array(list(known)),
                 lengths=np.array([-1 if f is None else len(f) for f in known.values()],
                                  np.int64),
                 frames=(np.concatenate(usable) if usable
                         else np.zeros((0, FRAME_DIMS), np.float32)))
        atomic.write_bytes(cache, buffer.getvalue())
    return [None if cell in refused else known[cell] for cell in cells]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Pool:
    """The usable clips of a manifest, in manifest order.

    Attributes:
        task: ``gender`` or ``age``.
        statistics: float32 [clips, 45] voice statistics.
        labels: int [clips] class codes of the task.
        speakers: str [clips] speaker ids.
        splits: str [clips] split names.
        frames: per clip float32 [loud frames, FRAME_DIMS], or None when no frame model runs.
        n_classes: classes of the task.
    """

    task: str
    statistics: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    splits: np.ndarray
    frames: list[np.ndarray] | None
    n_classes: int


def _logistic(c: float = 1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=c, class_weight="balanced", max_iter=5000))


def _estimator(name: str):
    """A fresh unfitted estimator for a row that fits on the statistics alone."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    kind, _, value = name.partition(" C=")
    if kind == "logistic":
        return _logistic(float(value))
    if kind == "svm":
        return make_pipeline(StandardScaler(), SVC(C=float(value), class_weight="balanced"))
    if name == "hgb":
        return HistGradientBoostingClassifier(class_weight="balanced", max_iter=300,
                                              learning_rate=0.05, random_state=SEED)
    raise ValueError(f"model {name!r} is not a statistics-only row")


def _group_folds(indices: np.ndarray, speakers: np.ndarray,
                 folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker-grouped (train, held-out) index arrays into ``indices``."""
    from sklearn.model_selection import GroupKFold

    return [(indices[a], indices[b]) for a, b in
            GroupKFold(folds).split(indices, groups=speakers[indices])]


def own_label_probability(pool: Pool, train: np.ndarray) -> np.ndarray:
    """float [len(train)]: each training clip's out-of-fold probability of its own label
    under the reference logistic (speaker-grouped inner folds); 1 where its class was absent
    from the inner fold's training part, since nothing then says the label is wrong."""
    probability = np.ones(len(train))
    position = {clip: k for k, clip in enumerate(train)}
    for fit, held in _group_folds(train, pool.speakers, CLEAN_FOLDS):
        model = _logistic().fit(pool.statistics[fit], pool.labels[fit])
        column = {code: k for k, code in enumerate(model.classes_)}
        scores = model.predict_proba(pool.statistics[held])  # [held, classes in fit]
        for row, clip in enumerate(held):
            if pool.labels[clip] in column:
                probability[position[clip]] = scores[row, column[pool.labels[clip]]]
    return probability


def gmm_scores(pool: Pool, train: np.ndarray, score: np.ndarray, frames_per_clip: int,
               ) -> np.ndarray:
    """Mean frame log-likelihood of each scored clip under each class's frame GMM.

    The scaler and the GMMs see a seeded random subset of frames per training clip, so a
    long clip counts no more than a short one. A class with fewer training frames than GMM
    components (absent from this training part) gets each clip's lowest score of the other
    classes: as unlikely as the least likely class that could be modelled.

    Args:
        pool: the clips.
        train: indices of the training clips.
        score: indices of the clips to score.
        frames_per_clip: at most this many frames of each training clip fit the GMMs.

    Returns:
        float [len(score), pool.n_classes].
    """
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(SEED)

    def sample(clip: int, limit: int) -> np.ndarray:
        frames = pool.frames[clip]  # [loud, FRAME_DIMS]
        if len(frames) <= limit:
            return frames
        return frames[rng.choice(len(frames), limit, replace=False)]

    scaler = StandardScaler().fit(np.concatenate([sample(c, SCALER_FRAMES) for c in train]))
    scored = scaler.transform(np.concatenate([pool.frames[c] for c in score]))  # [frames, D]
    starts = np.concatenate([[0], np.cumsum([len(pool.frames[c]) for c in score])[:-1]])
    counts = np.array([len(pool.frames[c]) for c in score])
    out = np.full((len(score), pool.n_classes), np.nan)
    for code in range(pool.n_classes):
        members = train[pool.labels[train] == code]
        if not len(members):
            continue
        fit = np.concatenate([sample(c, frames_per_clip) for c in members])
        if len(fit) < GMM_COMPONENTS:
            continue
        gmm = GaussianMixture(GMM_COMPONENTS, covariance_type="diag", reg_covar=1e-3,
                              random_state=SEED, max_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a non-converged fit is still a usable density
            gmm.fit(scaler.transform(fit))
        out[:, code] = np.add.reduceat(gmm.score_samples(scored), starts) / counts
    missing = np.isnan(out).all(axis=0)
    if missing.all():
        raise ValueError("no class has enough training frames for a GMM")
    out[:, missing] = np.nanmin(out, axis=1, keepdims=True)
    return out


def fit_predict(pool: Pool, names: Sequence[str], train: np.ndarray, held: np.ndarray,
                frames_per_clip: int) -> dict[str, tuple[np.ndarray, float]]:
    """Fits each named row on ``train`` and predicts ``held``.

    Returns:
        {name: (predicted codes int [len(held)], CPU seconds of this process)}. The two
        frame rows share one set of GMM fits, whose time is counted in each.
    """
    out = {}
    stats, labels = pool.statistics, pool.labels
    for name in names:
        if name in FRAME_MODELS:
            continue
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name.startswith("clean "):
                keep = own_label_probability(pool, train) >= float(name.split()[1])
                model = _logistic().fit(stats[train[keep]], labels[train[keep]])
            else:
                model = _estimator(name).fit(stats[train], labels[train])
            out[name] = (model.predict(stats[held]), time.process_time() - start)
    if FRAME_MODELS & set(names):
        start = time.process_time()
        inner = np.empty((len(train), pool.n_classes))  # out-of-fold scores of train
        position = {clip: k for k, clip in enumerate(train)}
        for fit, scored in _group_folds(train, pool.speakers, GMM_FOLDS):
            inner[[position[c] for c in scored]] = gmm_scores(pool, fit, scored,
                                                              frames_per_clip)
        outer = gmm_scores(pool, train, held, frames_per_clip)  # [held, classes]
        shared = time.process_time() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "gmm" in names:
                start = time.process_time()
                model = _logistic().fit(inner, labels[train])
                out["gmm"] = (model.predict(outer), shared + time.process_time() - start)
            if "stack" in names:
                start = time.process_time()
                model = _logistic().fit(np.c_[stats[train], inner], labels[train])
                out["stack"] = (model.predict(np.c_[stats[held], outer]),
                                shared + time.process_time() - start)
    return out


# --------------------------------------------------------------------------- reports


def _interval(point: float, interval: tuple[float, float], sign: str = "") -> str:
    return f"{point:{sign}.3f} [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]"


def score_rows(names: Sequence[str], truth: np.ndarray, speakers: np.ndarray,
               predictions: dict[str, np.ndarray], cpu: dict[str, float] | None,
               ) -> list[list[object]]:
    """Table rows: name, UAR [CI], difference from the reference [CI], clips(, CPU s)."""
    from agegender.metrics import bootstrap_ci, paired_bootstrap_difference, uar

    rows = []
    for name in names:
        predicted = predictions[name]
        ci = bootstrap_ci(truth, predicted, speakers.tolist())["balanced_accuracy"]
        paired = paired_bootstrap_difference(truth, predicted, predictions[REFERENCE],
                                             speakers.tolist())
        row = [name, _interval(uar(truth, predicted), ci),
               _interval(paired["difference"], paired["interval"], "+"), len(truth)]
        rows.append(row + ([f"{cpu[name]:.1f}"] if cpu is not None else []))
    return rows


def _describe(pool: Pool, clips: np.ndarray) -> str:
    from agegender import labels

    names = labels.class_names(pool.task)
    counts = np.bincount(pool.labels[clips], minlength=pool.n_classes)
    return (f"{len(clips)} clips, {len(set(pool.speakers[clips]))} speakers ("
            + ", ".join(f"{n} {name}" for n, name in zip(counts, names)) + " clips)")


def cross_validate(pool: Pool, names: Sequence[str], frames_per_clip: int) -> str:
    """The cross-validation table on train + dev, with its header line."""
    clips = np.flatnonzero(np.isin(pool.splits, ["train", "dev"]))
    if len(set(pool.speakers[clips])) < OUTER_FOLDS:
        raise SystemExit(f"train + dev hold {len(set(pool.speakers[clips]))} usable speakers:"
                         f" need at least {OUTER_FOLDS} for {OUTER_FOLDS} speaker folds")
    predictions = {name: np.empty(len(clips), int) for name in names}
    cpu = dict.fromkeys(names, 0.0)
    position = {clip: k for k, clip in enumerate(clips)}
    for train, held in _group_folds(clips, pool.speakers, OUTER_FOLDS):
        rows = [position[c] for c in held]
        for name, (predicted, seconds) in fit_predict(pool, names, train, held,
                                                      frames_per_clip).items():
            predictions[name][rows] = predicted
            cpu[name] += seconds
    rows = score_rows(names, pool.labels[clips], pool.speakers[clips], predictions, cpu)
    header = (f"speaker-grouped {OUTER_FOLDS}-fold cross-validation on train + dev: "
              f"{_describe(pool, clips)}; pooled out-of-fold predictions")
    table = common.format_table(
        ["model", "UAR [95 % CI]", f"UAR - {REFERENCE} [95 % CI]", "clips", "CPU s"], rows)
    note = ("CPU s: this process's CPU time (all its threads) for the row's fits over every "
            "fold; gmm and stack share one set of GMM fits, counted in each.")
    return f"{header}\n{table}\n{note}"


def held_out_test(pool: Pool, names: Sequence[str], frames_per_clip: int) -> str:
    """The train → test table, with its header line."""
    train = np.flatnonzero(pool.splits == "train")
    test = np.flatnonzero(pool.splits == "test")
    if not len(train) or not len(test):
        raise SystemExit(f"--test needs train and test clips: {len(train)} train, "
                         f"{len(test)} test")
    fitted = fit_predict(pool, names, train, test, frames_per_clip)
    rows = score_rows(names, pool.labels[test], pool.speakers[test],
                      {name: predicted for name, (predicted, _) in fitted.items()}, None)
    header = (f"fitted on train ({_describe(pool, train)}), scored on test "
              f"({_describe(pool, test)}): for the closing report only; pick the model "
              "from the cross-validation table")
    table = common.format_table(
        ["model", "test UAR [95 % CI]", f"UAR - {REFERENCE} [95 % CI]", "clips"], rows)
    return f"{header}\n{table}"


def build_pool(table: pd.DataFrame, statistics: np.ndarray,
               frames: list[np.ndarray | None] | None, task: str) -> Pool:
    """The labelled clips with finite statistics (and at least one loud frame, when the
    frame rows run)."""
    from agegender import labels

    normalise = labels.normalise_gender if task == "gender" else labels.normalise_age
    names = labels.class_names(task)
    codes = table[task].map(lambda v: names.index(n) if (n := normalise(v)) in names else -1)
    usable = (codes >= 0).to_numpy() & np.isfinite(statistics).all(axis=1)
    if frames is not None:
        usable &= np.array([f is not None and len(f) > 0 for f in frames])
    keep = np.flatnonzero(usable)
    return Pool(task=task, statistics=statistics[keep], labels=codes.to_numpy()[keep],
                speakers=table["speaker_id"].to_numpy()[keep],
                splits=table["split"].to_numpy()[keep],
                frames=None if frames is None else [frames[k] for k in keep],
                n_classes=len(names))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default="../shared/cv-sample",
                        help="a manifest folder with a split column (only read)")
    parser.add_argument("--task", default="gender", choices=("gender", "age"))
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated rows, from: {', '.join(MODELS)} "
                             f"({REFERENCE} always runs: it is the reference)")
    parser.add_argument("--frames_per_clip", type=int, default=100,
                        help="frames of each training clip the GMMs are fitted on")
    parser.add_argument("--test", action="store_true",
                        help="also fit on train and score the test split (closing report)")
    parser.add_argument("--cache", default=None, help="the statistics' cache file (.npz)")
    parser.add_argument("--frames_cache", default=None, help="the frames' cache file (.npz)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    names = voice_stats_probe.chosen("--models", args.models, MODELS, REFERENCE)
    if args.frames_per_clip < 1:
        raise SystemExit(f"--frames_per_clip={args.frames_per_clip}: need >= 1")
    dataset_dir = Path(args.dataset_dir)
    table, statistics = voice_stats_probe.manifest_statistics(dataset_dir, args.cache,
                                                              args.workers)
    frames = None
    if FRAME_MODELS & set(names):
        frames = clip_frames(dataset_dir, table["path"].tolist(), Path(
            args.frames_cache or Path.home() / ".cache" / "agegender"
            / f"envelope_frames_{dataset_dir.resolve().name}.npz"), args.workers)
    pool = build_pool(table, statistics, frames, args.task)
    print(f"task: {args.task}")
    print(cross_validate(pool, names, args.frames_per_clip))
    if args.test:
        print()
        print(held_out_test(pool, names, args.frames_per_clip))


if __name__ == "__main__":
    main()

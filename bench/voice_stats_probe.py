"""How much gender and age the voice statistics alone carry, on real speakers.

The statistics are the second input of a ``--pitch_input`` model
(``agegender.voice_stats.voice_statistics``: F0 percentiles and voiced share, then mean and
spread of MFCC 1-20 at 8 kHz), computed by the same call as preprocessing and inference
(``features.load_clip`` with the ``voice`` preset, then ``features.waveform_pitch``). For
each group of them (F0 only, envelope only, both) a logistic regression (standardised
inputs, balanced class weights, C picked on the dev split's UAR from a fixed grid) is fitted
on the train split and scored on the test split: UAR with the stratified speaker-bootstrap
95 % interval (``agegender.metrics``). No network: the table says what a model reading these
numbers can reach by them alone, before any spectrogram.

Works on any ``manifest`` folder with ``path,gender,age,speaker_id,split`` columns (e.g.
``../shared/cv-sample``, only read). The statistics are cached per clip under ``--cache``
(default ``~/.cache/agegender/voice_stats_<folder name>.npz``). Run from the repo root::

    python bench/voice_stats_probe.py --dataset_dir ../shared/cv-sample
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import common  # first: puts src/ on the path, quiets TensorFlow
import numpy as np
import pandas as pd

C_GRID = (0.01, 0.1, 1.0, 10.0)


def _statistics(job: tuple[int, str]) -> tuple[int, np.ndarray | None]:
    """(row, the clip's voice statistics or None when it cannot be read)."""
    from agegender.config import FeatureParams
    from agegender.errors import AudioError
    from agegender.features import load_clip, waveform_pitch

    row, path = job
    params = FeatureParams.preset("voice")
    try:
        return row, waveform_pitch(load_clip(path, params), params)
    except AudioError as err:
        print(f"skipped: {err}", file=sys.stderr)
        return row, None


def manifest_statistics(dataset_dir: Path, cache: str | None,
                        workers: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The manifest (every cell a string) and its clips' statistics (``clip_statistics``;
    cache default ``~/.cache/agegender/voice_stats_<folder name>.npz``).

    Raises:
        SystemExit: the manifest lacks a column the probes need, named.
    """
    table = pd.read_csv(dataset_dir / "manifest.csv", dtype=str, keep_default_na=False)
    missing = {"path", "gender", "age", "speaker_id", "split"} - set(table.columns)
    if missing:
        raise SystemExit(f"{dataset_dir / 'manifest.csv'}: no column(s) {sorted(missing)}")
    path = Path(cache or Path.home() / ".cache" / "agegender"
                / f"voice_stats_{dataset_dir.resolve().name}.npz")
    return table, clip_statistics(dataset_dir, table["path"].tolist(), path, workers)


def chosen(flag: str, text: str, known: tuple[str, ...], reference: str) -> list[str]:
    """The comma-separated names of ``text`` in ``known``'s order, ``reference`` always
    among them (every other row is compared with it).

    Raises:
        SystemExit: an unknown name, with the flag and the known names.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"{flag}: unknown {unknown}; known: {', '.join(known)}")
    return [n for n in known if n in names or n == reference]


def cell_jobs(dataset_dir: Path, todo: list[str]) -> tuple[list[tuple[int, str]], set[str]]:
    """Jobs (position in ``todo``, the file's path) for the manifest path cells in ``todo``,
    and the cells refused by their path (outside the folder, missing), each reported on one
    line: a cell is data, and one outside the folder is never opened."""
    from agegender.dataset_paths import resolve_path_cell

    jobs, refused = [], set()
    for row, cell in enumerate(todo):
        relative, problem = resolve_path_cell(dataset_dir, cell, [dataset_dir])
        if problem:
            print(f"skipped: manifest.csv path {cell!r}: {problem}", file=sys.stderr)
            refused.add(cell)
        else:
            jobs.append((row, str(dataset_dir / relative)))
    return jobs, refused


def clip_statistics(dataset_dir: Path, cells: list[str], cache: Path,
                    workers: int) -> np.ndarray:
    """float32 [clips, len(STAT_NAMES)] for the manifest's path cells (NaN rows for clips
    that cannot be read or point outside the dataset), cached by cell. A cell refused by its
    path (outside the folder, missing) is not cached: it is checked again on every run, and
    read once its file is there."""
    from tqdm import tqdm

    from agegender import atomic
    from agegender.voice_stats import STAT_NAMES
    from agegender.workers import imap_unordered

    unusable = np.full(len(STAT_NAMES), np.nan, np.float32)
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            if stored["values"].shape[1:] == (len(STAT_NAMES),):
                known = dict(zip(stored["paths"].tolist(), stored["values"]))
    todo = sorted(set(cells) - set(known))
    jobs, refused = cell_jobs(dataset_dir, todo)
    if jobs:
        for row, values in tqdm(imap_unordered(_statistics, jobs, workers), total=len(jobs),
                                desc="voice statistics"):
            known[todo[row]] = unusable if values is None else values
        buffer = io.BytesIO()
        np.savez(buffer, paths=np.array(list(known)), values=np.stack(list(known.values())))
        atomic.write_bytes(cache, buffer.getvalue())
    return np.stack([unusable if cell in refused else known[cell] for cell in cells])


def probe(table: pd.DataFrame, values: np.ndarray, task: str) -> list[list[object]]:
    """Rows of (task, group, C, dev UAR, test UAR [CI], clips) for each feature group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from agegender import labels
    from agegender.metrics import bootstrap_ci, uar
    from agegender.pitch import PITCH_FEATURES
    from agegender.voice_stats import STAT_NAMES

    normalise = labels.normalise_gender if task == "gender" else labels.normalise_age
    names = labels.class_names(task)
    y = table[task].map(lambda v: names.index(n) if (n := normalise(v)) in names else -1)
    usable = (y >= 0).to_numpy() & np.isfinite(values).all(axis=1)
    split = {s: (table["split"] == s).to_numpy() & usable for s in ("train", "dev", "test")}
    pitch = len(PITCH_FEATURES)
    groups = {"F0 only": slice(0, pitch), "envelope only": slice(pitch, len(STAT_NAMES)),
              "F0 + envelope": slice(0, len(STAT_NAMES))}
    rows = []
    for group, columns in groups.items():
        fits = []
        for c in C_GRID:
            model = make_pipeline(StandardScaler(), LogisticRegression(
                C=c, class_weight="balanced", max_iter=5000))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(values[split["train"], columns], y[split["train"]])
            dev = uar(y[split["dev"]].to_numpy(), model.predict(values[split["dev"], columns]))
            fits.append((dev, c, model))
        dev, c, model = max(fits, key=lambda fit: fit[0])  # first best C on ties
        test = split["test"]
        predicted = model.predict(values[test, columns])
        truth = y[test].to_numpy()
        ci = bootstrap_ci(truth, predicted, table.loc[test, "speaker_id"].tolist())
        low, high = ci["balanced_accuracy"]
        rows.append([task, group, c, f"{dev:.3f}",
                     f"{uar(truth, predicted):.3f} [{low:.3f}, {high:.3f}]", int(test.sum())])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default="../shared/cv-sample",
                        help="a manifest folder with a split column (only read)")
    parser.add_argument("--tasks", default="gender,age", help="comma-separated: gender,age")
    parser.add_argument("--cache", default=None, help="the statistics' cache file (.npz)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    table, values = manifest_statistics(Path(args.dataset_dir), args.cache, args.workers)
    rows = [row for task in args.tasks.split(",") for row in probe(table, values, task)]
    print(common.format_table(["task", "statistics", "C", "dev UAR", "test UAR [95 % CI]",
                               "test clips"], rows))


if __name__ == "__main__":
    main()

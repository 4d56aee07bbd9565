"""Reading Common Voice layouts into one clip table, and cleaning it.

Three layouts are understood (see ``read_clips``); all become a DataFrame with the columns
of ``CLIP_COLUMNS``. Paths in CSV/TSV files are data, not trusted: a row whose path leaves
the dataset folder is rejected, never opened.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import labels
from agegender.config import SPLITS, split_dirname
from agegender.errors import DatasetError, ParameterError

# split, stable clip key (file stem), audio path relative to the dataset folder (POSIX),
# speaker id ("" when the layout has none), raw label cells, where the row came from,
# and a problem found while resolving the path ("" when none).
CLIP_COLUMNS: tuple[str, ...] = (
    "split", "key", "audio_path", "speaker_id", "gender_raw", "age_raw",
    "source_file", "source_row", "problem",
)
# A clean clip table has these columns in addition.
CLEAN_COLUMNS: tuple[str, ...] = ("gender", "age", "gender_code", "age_code", "gender_age_code")

_RAW_REQUIRED = ("filename", "age", "gender")
_CV_REQUIRED = ("client_id", "path", "age", "gender")
_CV_SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def _read_table(path: Path, required: tuple[str, ...], *, tsv: bool) -> pd.DataFrame:
    """Reads a CSV/TSV as strings (empty cell = ""), checking the required columns."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        if tsv:
            # Common Voice TSVs are unquoted: a '"' inside a sentence is a literal character.
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                                quoting=csv.QUOTE_NONE, on_bad_lines="error")
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"{path}: cannot be parsed ({str(err).splitlines()[0]})") from err
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required column {missing[0]!r} (found: {', '.join(table.columns)})"
        )
    return table


def _inside(root_real: str, candidate: Path) -> bool:
    """True when ``candidate`` (symlinks resolved) lies inside ``root_real``."""
    real = os.path.realpath(candidate)
    return real == root_real or real.startswith(root_real + os.sep)


def _resolve(root: Path, cell: str, bases: list[Path]) -> tuple[str, str]:
    """Turns a path cell into (path relative to root, problem).

    The first candidate ``base / cell`` that exists wins; when none does, the first is kept
    with the problem "missing file". A cell that is absolute or escapes ``root`` gives the
    problem "path outside dataset" and is never opened.
    """
    root_real = os.path.realpath(root)
    cell = cell.strip().replace("\\", "/")
    if not cell:
        return "", "empty path"
    if cell.startswith("/") or os.path.isabs(cell) or (len(cell) > 1 and cell[1] == ":"):
        return cell, "path outside dataset"
    candidates = [base / cell for base in bases]
    if not all(_inside(root_real, candidate) for candidate in candidates):
        return cell, "path outside dataset"
    chosen = next((c for c in candidates if c.is_file()), candidates[0])
    relative = Path(os.path.relpath(chosen, root)).as_posix()
    return relative, "" if chosen.is_file() else "missing file"


def _clip_rows(table: pd.DataFrame, *, split: str, root: Path, source: Path, path_column: str,
               bases: list[Path], speaker_column: str | None) -> pd.DataFrame:
    """Builds the clip table of one split from one source table."""
    resolved = [_resolve(root, cell, bases) for cell in table[path_column]]
    keys = [Path(cell.strip().replace("\\", "/")).stem for cell in table[path_column]]
    speakers = (table[speaker_column] if speaker_column and speaker_column in table.columns
                else pd.Series([""] * len(table), index=table.index))
    return pd.DataFrame({
        "split": split,
        "key": keys,
        "audio_path": [path for path, _ in resolved],
        "speaker_id": speakers.to_numpy(),
        "gender_raw": table["gender"].to_numpy(),
        "age_raw": table["age"].to_numpy(),
        "source_file": str(source),
        # +2: one for the header line, one because people count rows from 1.
        "source_row": table.index.to_numpy() + 2,
        "problem": [problem for _, problem in resolved],
    }, columns=list(CLIP_COLUMNS))


def _read_raw(root: Path) -> pd.DataFrame:
    """Kaggle Common Voice v1: ``cv-valid-{split}.csv`` + ``cv-valid-{split}/cv-valid-{split}/``."""
    parts = []
    for split in SPLITS:
        name = split_dirname(split)
        source = root / f"{name}.csv"
        table = _read_table(source, _RAW_REQUIRED, tsv=False)
        # The Kaggle archive nests each folder once more; accept it one level up too.
        parts.append(_clip_rows(table, split=split, root=root, source=source,
                                path_column="filename", bases=[root / name, root],
                                speaker_column="client_id"))
    return pd.concat(parts, ignore_index=True)


def _with_prefix(cell: str, prefix: str) -> str:
    """Adds the split folder to a bare file name; empty or absolute cells are left as written
    so that ``_resolve`` judges them."""
    cell = cell.strip()
    posix = cell.replace("\\", "/")
    if not cell or posix.startswith((prefix, "/")) or (len(cell) > 1 and cell[1] == ":"):
        return cell
    return prefix + cell


def _read_clean(root: Path) -> pd.DataFrame:
    """Original project: ``Audio/cv-valid-{split}.csv`` + ``Audio/cv-valid-{split}/*.mp3``."""
    parts = []
    audio = root / "Audio"
    for split in SPLITS:
        name = split_dirname(split)
        source = audio / f"{name}.csv"
        table = _read_table(source, _RAW_REQUIRED, tsv=False)
        prefix = f"{name}/"
        # The filename column may keep its "cv-valid-split/" prefix or not.
        table = table.assign(filename=[_with_prefix(cell, prefix) for cell in table["filename"]])
        parts.append(_clip_rows(table, split=split, root=root, source=source,
                                path_column="filename", bases=[audio],
                                speaker_column="client_id"))
    return pd.concat(parts, ignore_index=True)


def _speaker_splits(speakers: list[str], seed: int) -> dict[str, str]:
    """Assigns each speaker to train/dev/test, about 80/10/10 of speakers, seeded."""
    order = sorted(set(speakers))
    np.random.default_rng(seed).shuffle(order)
    n = len(order)
    n_dev = max(1, round(0.1 * n)) if n >= 3 else 0
    n_test = max(1, round(0.1 * n)) if n >= 3 else 0
    assignment = {}
    for index, speaker in enumerate(order):
        assignment[speaker] = ("test" if index < n_test
                               else "dev" if index < n_test + n_dev else "train")
    return assignment


def _read_cv(root: Path, *, split_by_speaker: bool, seed: int) -> pd.DataFrame:
    """Modern Common Voice release: ``{train,dev,test,validated}.tsv`` + ``clips/``."""
    clips = root / "clips"
    if split_by_speaker:
        source = root / "validated.tsv"
        table = _read_table(source, _CV_REQUIRED, tsv=True)
        assignment = _speaker_splits(list(table["client_id"]), seed)
        split_of_row = table["client_id"].map(assignment)
        parts = [
            _clip_rows(table[split_of_row == split], split=split, root=root, source=source,
                       path_column="path", bases=[clips], speaker_column="client_id")
            for split in SPLITS
        ]
        return pd.concat(parts, ignore_index=True)
    parts = []
    for split in SPLITS:
        source = root / _CV_SPLIT_FILES[split]
        table = _read_table(source, _CV_REQUIRED, tsv=True)
        parts.append(_clip_rows(table, split=split, root=root, source=source,
                                path_column="path", bases=[clips], speaker_column="client_id"))
    return pd.concat(parts, ignore_index=True)


def guess_layout(dataset_dir: str | os.PathLike) -> str | None:
    """Which ``--dataset_type`` a folder looks like, from its file names alone.

    ``raw``: ``cv-valid-*.csv`` at the top; ``clean``: ``Audio/cv-valid-*.csv``; ``cv``:
    ``*.tsv`` files and a ``clips/`` folder; ``manifest``: ``manifest.csv``/``manifest.tsv``.

    Returns:
        The first layout that fits, in that order; None when none does.
    """
    root = Path(dataset_dir)
    if any(root.glob("cv-valid-*.csv")):
        return "raw"
    if any((root / "Audio").glob("cv-valid-*.csv")):
        return "clean"
    if (root / "clips").is_dir() and any(root.glob("*.tsv")):
        return "cv"
    if (root / "manifest.csv").is_file() or (root / "manifest.tsv").is_file():
        return "manifest"
    return None


def _first_label_file(root: Path, dataset_type: str, split_by_speaker: bool) -> Path | None:
    """The first file ``read_clips`` opens for a layout (None: a layout not known here)."""
    first = {"raw": root / f"{split_dirname(SPLITS[0])}.csv",
             "clean": root / "Audio" / f"{split_dirname(SPLITS[0])}.csv",
             "cv": root / ("validated.tsv" if split_by_speaker else _CV_SPLIT_FILES[SPLITS[0]])}
    return first.get(dataset_type)


def _layout_mismatch(root: Path, dataset_type: str, missing: Path) -> DatasetError:
    """``missing: file not found`` plus what the folder looks like and the flag to use."""
    guess = guess_layout(root)
    if guess is None:
        hint = ("no known layout there (raw: cv-valid-train.csv, clean: "
                "Audio/cv-valid-train.csv, cv: train.tsv + clips/)")
    elif guess == dataset_type:
        hint = f"the folder has other {dataset_type} files, but not this one"
    else:
        hint = (f"{root} looks like the {guess} layout: run python src/preprocess_dataset.py "
                f"--dataset_dir={root} --dataset_type={guess}")
    return DatasetError(f"{missing}: file not found for --dataset_type={dataset_type}; {hint}")


def read_clips(dataset_dir: str | os.PathLike, dataset_type: str, *,
               split_by_speaker: bool = False, seed: int = 42) -> pd.DataFrame:
    """Reads a dataset folder's label files into one clip table.

    Args:
        dataset_dir: the dataset folder.
        dataset_type: ``raw`` (Kaggle Common Voice v1), ``clean`` (original project's
            ``Audio/`` layout) or ``cv`` (a modern Common Voice language release).
        split_by_speaker: ``cv`` only: rebuild train/dev/test from ``validated.tsv`` so no
            speaker is in two splits (seeded, about 80/10/10 of speakers).
        seed: for the speaker split.

    Returns:
        DataFrame with ``CLIP_COLUMNS``, one row per label-file row, nothing dropped yet.

    Raises:
        DatasetError: missing folder/file or missing required column (named).
        ParameterError: unknown dataset_type.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    first = _first_label_file(root, dataset_type, split_by_speaker)
    if first is not None and not first.is_file():
        raise _layout_mismatch(root, dataset_type, first)
    if dataset_type == "raw":
        return _read_raw(root)
    if dataset_type == "clean":
        return _read_clean(root)
    if dataset_type == "cv":
        return _read_cv(root, split_by_speaker=split_by_speaker, seed=seed)
    raise ParameterError(f"--dataset_type={dataset_type!r} is not one of raw, clean, cv")


def clean_clips(clips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keeps the clips of the 12 gender-age groups with a usable path.

    Args:
        clips: table from ``read_clips``.

    Returns:
        (kept, dropped): ``kept`` adds ``CLEAN_COLUMNS``; ``dropped`` adds ``reason``.
    """
    genders = clips["gender_raw"].map(labels.normalise_gender)
    ages = clips["age_raw"].map(labels.normalise_age)
    reason = pd.Series("", index=clips.index, dtype=object)
    reason[ages.isna()] = "age not one of the 6 groups: " + clips["age_raw"].map(repr)
    reason[genders.isna()] = "gender not male/female: " + clips["gender_raw"].map(repr)
    has_problem = clips["problem"] != ""
    reason[has_problem] = clips["problem"]
    # Only usable rows compete for a key, so a bad first row does not shadow a good second one.
    usable = reason == ""
    duplicate = clips[usable].duplicated(subset=["split", "key"], keep="first")
    reason[duplicate[duplicate].index] = "duplicate clip key in split"
    dropped = clips[reason != ""].assign(reason=reason[reason != ""])
    kept = clips[reason == ""].copy()
    kept["gender"] = genders[reason == ""]
    kept["age"] = ages[reason == ""]
    codes = [labels.encode(g, a) for g, a in zip(kept["gender"], kept["age"], strict=True)]
    for task in labels.TASKS:
        kept[f"{task}_code"] = [code[task] for code in codes]
    return kept.reset_index(drop=True), dropped.reset_index(drop=True)


def group_counts(clips: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """Counts clips of every gender-age group in every split, before and after cleaning.

    Returns:
        DataFrame with columns split, group, before, after; groups outside the 12 appear
        with their raw spelling ("?" for an empty cell) and ``after`` 0.
    """
    def group_of(gender: object, age: object) -> str:
        g = labels.normalise_gender(gender) or (str(gender).strip() or "?")
        a = labels.normalise_age(age) or (str(age).strip() or "?")
        return f"{g}-{a}"

    before = (clips.assign(group=[group_of(g, a) for g, a in
                                  zip(clips["gender_raw"], clips["age_raw"], strict=True)])
              .groupby(["split", "group"]).size().rename("before"))
    after = (kept.assign(group=kept["gender"] + "-" + kept["age"])
             .groupby(["split", "group"]).size().rename("after"))
    index = pd.MultiIndex.from_product([SPLITS, labels.GENDER_AGES], names=["split", "group"])
    table = pd.concat([before, after], axis=1).reindex(index.union(before.index)).fillna(0)
    table = table.astype(int).reset_index()
    order = {split: i for i, split in enumerate(SPLITS)}
    known = {group: i for i, group in enumerate(labels.GENDER_AGES)}
    table["_s"] = table["split"].map(order)
    table["_g"] = table["group"].map(lambda g: known.get(g, len(known)))
    return table.sort_values(["_s", "_g", "group"]).drop(columns=["_s", "_g"]).reset_index(
        drop=True)

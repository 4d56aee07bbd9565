"""Reading a dataset folder's label files, in any of four layouts, into one clip table.

``read_clips`` reads ``raw`` (Kaggle Common Voice v1), ``clean`` (the original project's
``Audio/`` folder), ``cv`` (a modern Common Voice release) or ``manifest`` (one labelled
table); every layout becomes a ``ClipTable``: a DataFrame with the columns of ``CLIP_COLUMNS``,
one row per label-file row, nothing dropped yet, and the split tables that were missing (cleaning: ``commonvoice.clean_clips``). Path cells go
through ``dataset_paths``; ``--split_by_speaker`` and empty split cells through
``speaker_split``. (``clean_layout`` *writes* the clean layout after a raw run.)
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agegender.config import SPLITS, split_dirname
from agegender.dataset_paths import resolve_path_cell
from agegender.errors import DatasetError, ParameterError
from agegender.speaker_split import assign_splits

log = logging.getLogger(__name__)

# split, stable clip key (file stem), audio path relative to the dataset folder (POSIX),
# speaker id ("" when the layout has none), raw label cells, where the row came from,
# and a problem found while resolving the path ("" when none).
CLIP_COLUMNS: tuple[str, ...] = (
    "split", "key", "audio_path", "speaker_id", "gender_raw", "age_raw",
    "source_file", "source_row", "problem",
)
# Columns naming the speaker, first found wins, in every layout.
SPEAKER_COLUMNS: tuple[str, ...] = ("speaker", "speaker_id", "client_id")
# The one table of --dataset_type=manifest, in DIR.
MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.tsv")

_RAW_REQUIRED = ("filename", "age", "gender")
_CV_REQUIRED = ("client_id", "path", "age", "gender")
_CV_SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


@dataclass(frozen=True)
class ClipTable:
    """A dataset folder's clips as ``read_clips`` read them, and what the reading noticed.

    Kept beside the table, not in ``DataFrame.attrs``, which pandas drops on ``concat`` and
    some merges.

    Attributes:
        clips: ``CLIP_COLUMNS``, one row per label-file row, nothing dropped yet.
        missing_tables: one line per split table (or manifest split) not found; that split
            is empty.
    """

    clips: pd.DataFrame
    missing_tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class _SplitTable:
    """Where one split's rows of a fixed-split layout come from.

    Attributes:
        split: ``train``, ``dev`` or ``test``.
        source: the CSV/TSV.
        path_column: column holding the audio path.
        bases: folders the path may be relative to, tried in order.
        prefix: added to bare file names (the clean layout's ``cv-valid-{split}/``).
    """

    split: str
    source: Path
    path_column: str
    bases: tuple[Path, ...]
    prefix: str = ""


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
    if not isinstance(table.index, pd.RangeIndex):
        # pandas reads rows longer than the header by making the extra first cells an index.
        raise DatasetError(_long_row(path, tsv=tsv))
    duplicated = duplicate_columns(table.columns)
    if duplicated:
        raise DatasetError(f"{path}: column {duplicated[0]!r} appears more than once; "
                           "keep one (which one is meant cannot be guessed)")
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required column {missing[0]!r} (found: {', '.join(table.columns)})"
        )
    return table


def _long_row(path: Path, *, tsv: bool) -> str:
    """One line naming the first row with more cells than the header (row 1 = header)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = (csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv
                  else csv.reader(handle))
        header = next(reader, [])
        for number, row in enumerate(reader, start=2):
            if len(row) > len(header):
                hint = ("a tab inside a cell?" if tsv else
                        "an unquoted comma in a path? put that cell in double quotes")
                return (f"{path}: row {number} has {len(row)} cells, the header "
                        f"{len(header)} ({hint}): {','.join(row)[:120]!r}")
    return f"{path}: a row has more cells than the header"


def duplicate_columns(columns) -> list[str]:
    """Column names a table header repeats (pandas reads a repeat of ``age`` as ``age.1``)."""
    names = [str(column) for column in columns]
    present = set(names)
    return sorted({name.rsplit(".", 1)[0] for name in names
                   if "." in name and name.rsplit(".", 1)[1].isdigit()
                   and name.rsplit(".", 1)[0] in present})


def _speaker_column(table: pd.DataFrame) -> str | None:
    """The first of ``SPEAKER_COLUMNS`` the table has, or None."""
    return next((column for column in SPEAKER_COLUMNS if column in table.columns), None)


def _clip_rows(table: pd.DataFrame, *, split: str | pd.Series, root: Path, source: Path,
               path_column: str, bases: list[Path] | tuple[Path, ...],
               follow_symlinks: bool = False) -> pd.DataFrame:
    """Builds the clip table of one source table (speaker under any of SPEAKER_COLUMNS,
    a missing gender/age column read as empty cells)."""
    resolved = [resolve_path_cell(root, cell, bases, follow_symlinks=follow_symlinks)
                for cell in table[path_column]]
    keys = [Path(cell.strip().replace("\\", "/").replace("\0", "\\0")).stem
            for cell in table[path_column]]
    empty = pd.Series([""] * len(table), index=table.index, dtype=object)
    speaker_column = _speaker_column(table)
    speakers = table[speaker_column].str.strip() if speaker_column else empty
    return pd.DataFrame({
        "split": split.to_numpy() if isinstance(split, pd.Series) else split,
        "key": keys,
        "audio_path": [path for path, _ in resolved],
        "speaker_id": speakers.to_numpy(),
        "gender_raw": table.get("gender", empty).to_numpy(),
        "age_raw": table.get("age", empty).to_numpy(),
        "source_file": str(source),
        # +2: one for the header line, one because people count rows from 1.
        "source_row": table.index.to_numpy() + 2,
        "problem": [problem for _, problem in resolved],
    }, columns=list(CLIP_COLUMNS))


def _with_prefix(cell: str, prefix: str) -> str:
    """Adds the split folder to a bare file name; empty or absolute cells are left as written
    so that ``resolve_path_cell`` judges them."""
    cell = cell.strip()
    posix = cell.replace("\\", "/")
    if not cell or posix.startswith((prefix, "/")) or (len(cell) > 1 and cell[1] == ":"):
        return cell
    return prefix + cell


def _read_fixed(root: Path, layout: str, tables: list[_SplitTable],
                required: tuple[str, ...], *, tsv: bool, split_by_speaker: bool, seed: int,
                follow_symlinks: bool) -> ClipTable:
    """Reads a fixed-split layout; missing split tables are a warning while one exists.

    With ``split_by_speaker`` the rows of every table are pooled and split again by speaker.
    """
    present = [table for table in tables if table.source.is_file()]
    if not present:
        raise DatasetError(f"{root}: no split table of the {layout} layout found (expected "
                           f"{', '.join(str(t.source) for t in tables)})")
    missing = [table for table in tables if not table.source.is_file()]
    for table in missing:
        log.warning("%s: not found; the %s split will be empty", table.source, table.split)
    parts = []
    for spec in present:
        table = _read_table(spec.source, required, tsv=tsv)
        if split_by_speaker and _speaker_column(table) is None:
            raise DatasetError(
                f"{spec.source}: --split_by_speaker needs a speaker column "
                f"({', '.join(SPEAKER_COLUMNS)}); this {layout} table has none")
        if spec.prefix:
            table = table.assign(**{spec.path_column: [_with_prefix(cell, spec.prefix)
                                                      for cell in table[spec.path_column]]})
        parts.append(_clip_rows(table, split=spec.split, root=root, source=spec.source,
                                path_column=spec.path_column, bases=spec.bases,
                                follow_symlinks=follow_symlinks))
    clips = pd.concat(parts, ignore_index=True)
    if split_by_speaker:
        clips = assign_splits(clips.assign(split=""), seed=seed)
    return ClipTable(clips, tuple(f"{table.source}: not found" for table in missing))


def _read_raw(root: Path, **options) -> ClipTable:
    """Kaggle Common Voice v1: ``cv-valid-{split}.csv`` + ``cv-valid-{split}/cv-valid-{split}/``."""
    # The Kaggle archive nests each folder once more; accept it one level up too.
    tables = [_SplitTable(split, root / f"{split_dirname(split)}.csv", "filename",
                          (root / split_dirname(split), root)) for split in SPLITS]
    return _read_fixed(root, "raw", tables, _RAW_REQUIRED, tsv=False, **options)


def _read_clean(root: Path, **options) -> ClipTable:
    """Original project: ``Audio/cv-valid-{split}.csv`` + ``Audio/cv-valid-{split}/*.mp3``."""
    audio = root / "Audio"
    # The filename column may keep its "cv-valid-split/" prefix or not.
    tables = [_SplitTable(split, audio / f"{split_dirname(split)}.csv", "filename", (audio,),
                          prefix=f"{split_dirname(split)}/") for split in SPLITS]
    return _read_fixed(root, "clean", tables, _RAW_REQUIRED, tsv=False, **options)


def _read_cv(root: Path, *, split_by_speaker: bool, seed: int,
             follow_symlinks: bool) -> ClipTable:
    """Modern Common Voice release: ``{train,dev,test,validated}.tsv`` + ``clips/``."""
    clips = root / "clips"
    if split_by_speaker:
        # validated.tsv holds every row of train/dev/test (and more): split it afresh.
        tables = [_SplitTable("", root / "validated.tsv", "path", (clips,))]
        if not tables[0].source.is_file():
            raise DatasetError(f"{tables[0].source}: file not found (--split_by_speaker "
                               "rebuilds the splits from it)")
    else:
        tables = [_SplitTable(split, root / _CV_SPLIT_FILES[split], "path", (clips,))
                  for split in SPLITS]
    return _read_fixed(root, "cv", tables, _CV_REQUIRED, tsv=True,
                       split_by_speaker=split_by_speaker, seed=seed,
                       follow_symlinks=follow_symlinks)


def manifest_file(dataset_dir: str | os.PathLike) -> Path:
    """The one table of ``--dataset_type=manifest``: ``DIR/manifest.csv`` or ``.tsv``.

    Raises:
        DatasetError: neither exists, or both do.
    """
    root = Path(dataset_dir)
    found = [root / name for name in MANIFEST_NAMES if (root / name).is_file()]
    if not found:
        raise DatasetError(f"{root}: no {' or '.join(MANIFEST_NAMES)} "
                           "(--dataset_type=manifest reads one labelled table)")
    if len(found) > 1:
        raise DatasetError(f"{root}: both {' and '.join(MANIFEST_NAMES)} exist; keep one")
    return found[0]


def _unique_keys(clips: pd.DataFrame) -> pd.Series:
    """File stems, made unique where one stem names files in different folders.

    A repeated stem gets ``-`` and the first 8 hex digits of the SHA-1 of its relative path:
    stable across runs, and the same file listed twice keeps one key (a duplicate).
    """
    # Rows that will be dropped for their path do not make a stem "repeated".
    usable = clips[clips["problem"] == ""]
    paths_per_stem = usable.groupby("key")["audio_path"].nunique()
    repeated = set(paths_per_stem[paths_per_stem > 1].index)
    return pd.Series([
        f"{key}-{hashlib.sha1(path.encode('utf-8')).hexdigest()[:8]}" if key in repeated
        else key for key, path in zip(clips["key"], clips["audio_path"], strict=True)],
        index=clips.index, dtype=object)


def manifest_clips(source: Path, root: Path, *, split_by_speaker: bool, seed: int,
                    follow_symlinks: bool, default_split: str | None = None) -> pd.DataFrame:
    """Reads one labelled table (paths relative to ``root``) into a clip table.

    The ``manifest`` layout and ``commonvoice.read_user_manifest`` both read through it.

    Args:
        source: the CSV/TSV (``.tsv``: tab-separated, unquoted).
        root: the folder its paths are relative to, and may not leave.
        split_by_speaker: ignore the ``split`` column and split every row by speaker.
        seed: for the speaker split of rows with an empty split.
        follow_symlinks: accept symlinks inside ``root`` that point outside it.
        default_split: the split of rows with an empty split cell, instead of a speaker
            split.

    Returns:
        ``CLIP_COLUMNS`` rows, keys made unique; rows without a split get one
        (``speaker_split.assign_splits``).

    Raises:
        DatasetError: no path column, neither gender nor age, a bad split value, or no
            speaker column for ``split_by_speaker``.
    """
    table = _read_table(source, (), tsv=source.suffix.lower() == ".tsv")
    path_column = next((c for c in ("path", "filename") if c in table.columns), None)
    if path_column is None:
        raise DatasetError(f"{source}: missing required column 'path' (or 'filename') "
                           f"(found: {', '.join(table.columns)})")
    if "gender" not in table.columns and "age" not in table.columns:
        raise DatasetError(f"{source}: needs a 'gender' or an 'age' column "
                           f"(found: {', '.join(table.columns)})")
    if split_by_speaker and _speaker_column(table) is None:
        raise DatasetError(f"{source}: --split_by_speaker needs a speaker column "
                           f"({', '.join(SPEAKER_COLUMNS)}); this manifest has none")
    if "split" in table.columns:
        splits = table["split"].str.strip().str.lower()
        bad = ~splits.isin(("", *SPLITS))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(f"{source}: row {row + 2}: split {table['split'].iloc[row]!r} "
                               f"is not one of {', '.join(SPLITS)} (or empty)")
    else:
        splits = pd.Series([""] * len(table), index=table.index, dtype=object)
    clips = _clip_rows(table, split=splits, root=root, source=source, path_column=path_column,
                       bases=[root], follow_symlinks=follow_symlinks)
    clips["key"] = _unique_keys(clips)
    if split_by_speaker:
        clips["split"] = ""
    if default_split is not None:
        clips["split"] = clips["split"].replace("", default_split)
    return assign_splits(clips, seed=seed)


def _read_manifest_layout(root: Path, *, split_by_speaker: bool, seed: int,
                          follow_symlinks: bool) -> ClipTable:
    source = manifest_file(root)
    clips = manifest_clips(source, root, split_by_speaker=split_by_speaker, seed=seed,
                           follow_symlinks=follow_symlinks)
    missing = [split for split in SPLITS if not (clips["split"] == split).any()]
    if len(missing) == len(SPLITS):
        raise DatasetError(f"{source}: holds no rows")
    for split in missing:
        log.warning("%s: no row in the %s split; it will be empty", source, split)
    return ClipTable(clips, tuple(f"{source}: no row with split={split}" for split in missing))


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


def _label_files(root: Path, dataset_type: str, split_by_speaker: bool) -> list[Path]:
    """The label files a layout reads; at least one must exist (a test-only folder may
    lack the others)."""
    if dataset_type == "cv":
        return ([root / "validated.tsv"] if split_by_speaker
                else [root / _CV_SPLIT_FILES[split] for split in SPLITS])
    if dataset_type == "manifest":
        return [root / name for name in MANIFEST_NAMES]
    base = root / "Audio" if dataset_type == "clean" else root
    return [base / f"{split_dirname(split)}.csv" for split in SPLITS]


def _layout_mismatch(root: Path, dataset_type: str, missing: list[Path]) -> DatasetError:
    """``missing[0]: file not found (nor the others)`` plus what the folder looks like and
    the flag to use."""
    guess = guess_layout(root)
    if guess is None:
        hint = ("no known layout there (raw: cv-valid-train.csv, clean: "
                "Audio/cv-valid-train.csv, cv: train.tsv + clips/, manifest: manifest.csv)")
    elif guess == dataset_type:
        hint = f"the folder has other {dataset_type} files, but not this one"
    else:
        hint = (f"{root} looks like the {guess} layout: run python src/preprocess_dataset.py "
                f"--dataset_dir={root} --dataset_type={guess}")
    others = f" (nor {', '.join(path.name for path in missing[1:])})" if missing[1:] else ""
    return DatasetError(f"{missing[0]}: file not found{others} for "
                        f"--dataset_type={dataset_type}; {hint}")


def read_clips(dataset_dir: str | os.PathLike, dataset_type: str, *,
               split_by_speaker: bool = False, seed: int = 42,
               follow_symlinks: bool = False) -> ClipTable:
    """Reads a dataset folder's label files into one clip table.

    Args:
        dataset_dir: the dataset folder.
        dataset_type: ``raw`` (Kaggle Common Voice v1), ``clean`` (original project's
            ``Audio/`` layout), ``cv`` (a modern Common Voice language release) or
            ``manifest`` (one table ``DIR/manifest.csv`` or ``.tsv``, see
            ``commonvoice.read_user_manifest``).
            Missing split tables of raw/clean/cv are a warning while one exists.
        split_by_speaker: rebuild train/dev/test from all rows (``cv``: ``validated.tsv``)
            so no speaker is in two splits (seeded, about 80/10/10 of speakers, stratified
            by gender and age group). Needs a speaker column (``SPEAKER_COLUMNS``).
        seed: for the speaker split.
        follow_symlinks: accept symlinks inside the folder that point outside it.

    Returns:
        ``ClipTable``: ``.clips`` with ``CLIP_COLUMNS``, one row per label-file row,
        nothing dropped yet; ``.missing_tables`` one line per split table (or manifest
        split) not found.

    Raises:
        DatasetError: missing folder, no split table, missing required column, no speaker
            column for ``split_by_speaker``, a bad split value (all named).
        ParameterError: unknown dataset_type.
    """
    root = Path(dataset_dir)
    readers = {"raw": _read_raw, "clean": _read_clean, "cv": _read_cv,
               "manifest": _read_manifest_layout}
    if dataset_type not in readers:
        raise ParameterError(f"--dataset_type={dataset_type!r} is not one of "
                             f"{', '.join(readers)}")
    if not root.is_dir():
        if root.exists():
            raise DatasetError(f"{root}: is a file, not a dataset folder (--dataset_dir names "
                               "the folder holding the tables)")
        raise DatasetError(f"{root}: dataset folder not found")
    files = _label_files(root, dataset_type, split_by_speaker)
    if not any(file.is_file() for file in files):
        raise _layout_mismatch(root, dataset_type, files)
    return readers[dataset_type](root, split_by_speaker=split_by_speaker, seed=seed,
                                 follow_symlinks=follow_symlinks)

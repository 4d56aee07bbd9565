"""Reading Common Voice layouts and labelled tables into one clip table, and cleaning it.

Four layouts are understood (see ``read_clips``); all become a DataFrame with the columns
of ``CLIP_COLUMNS``. Paths in CSV/TSV files are data, not trusted: a row whose path leaves
the dataset folder is rejected, never opened.

Cleaning is task-aware: a row serves the tasks whose labels it has (gender-only rows serve
``gender``, age-only rows ``age``, rows with both all three); it is dropped only when it
has no usable label at all or an unusable path.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import labels
from agegender.config import SPLITS, split_dirname
from agegender.errors import DatasetError, ParameterError

log = logging.getLogger(__name__)

# split, stable clip key (file stem), audio path relative to the dataset folder (POSIX),
# speaker id ("" when the layout has none), raw label cells, where the row came from,
# and a problem found while resolving the path ("" when none).
CLIP_COLUMNS: tuple[str, ...] = (
    "split", "key", "audio_path", "speaker_id", "gender_raw", "age_raw",
    "source_file", "source_row", "problem",
)
# A clean clip table has these columns in addition; a missing label is "" with code -1.
CLEAN_COLUMNS: tuple[str, ...] = ("gender", "age", "gender_code", "age_code", "gender_age_code")
# Columns naming the speaker, first found wins, in every layout.
SPEAKER_COLUMNS: tuple[str, ...] = ("speaker", "speaker_id", "client_id")
# The one table of --dataset_type=manifest, in DIR.
MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.tsv")
OUTSIDE = "path outside dataset"
SYMLINK_OUTSIDE = (f"{OUTSIDE}: a symlink to a file outside the dataset folder; "
                   "--follow_symlinks accepts it")

_RAW_REQUIRED = ("filename", "age", "gender")
_CV_REQUIRED = ("client_id", "path", "age", "gender")
_CV_SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


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


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _resolve(root: Path, cell: str, bases: list[Path] | tuple[Path, ...], *,
             follow_symlinks: bool = False) -> tuple[str, str]:
    """Turns a path cell into (path relative to root, problem).

    The first candidate ``base / cell`` that exists wins; when none does, the first is kept
    with the problem "missing file". A cell that is absolute or escapes ``root`` as written
    (``..``) gives the problem "path outside dataset" and is never opened. A cell inside
    ``root`` as written that is a symlink to somewhere outside is refused too, unless
    ``follow_symlinks``; the relative path returned is then the lexically normalised one, so
    what is opened is what was checked.
    """
    root_abs = os.path.normpath(os.path.abspath(root))
    root_real = os.path.realpath(root)
    cell = cell.strip().replace("\\", "/")
    if not cell:
        return "", "empty path"
    if "\0" in cell:
        return cell.replace("\0", "\\0"), "bad path: contains a NUL byte"
    try:
        return _resolve_cell(root, root_abs, root_real, cell, bases,
                             follow_symlinks=follow_symlinks)
    except (OSError, ValueError) as err:  # a name too long for the file system, ...
        return cell, f"bad path: {getattr(err, 'strerror', None) or err}"


def _resolve_cell(root: Path, root_abs: str, root_real: str, cell: str,
                  bases: list[Path] | tuple[Path, ...], *,
                  follow_symlinks: bool) -> tuple[str, str]:
    """``_resolve`` of a non-empty cell; may raise OSError/ValueError for a bad path."""
    if cell.startswith("/") or os.path.isabs(cell) or (len(cell) > 1 and cell[1] == ":"):
        return cell, OUTSIDE
    # Lexical location first: normpath folds ".." without following any symlink.
    candidates = [Path(os.path.normpath(os.path.join(os.path.abspath(base), cell)))
                  for base in bases]
    if not all(_within(root_abs, str(candidate)) for candidate in candidates):
        return cell, OUTSIDE
    chosen = next((c for c in candidates if c.is_file()), candidates[0])
    if not follow_symlinks and not _within(root_real, os.path.realpath(chosen)):
        return cell, SYMLINK_OUTSIDE
    relative = Path(os.path.relpath(chosen, root_abs)).as_posix()
    return relative, "" if chosen.is_file() else "missing file"


def _speaker_column(table: pd.DataFrame) -> str | None:
    """The first of ``SPEAKER_COLUMNS`` the table has, or None."""
    return next((column for column in SPEAKER_COLUMNS if column in table.columns), None)


def _clip_rows(table: pd.DataFrame, *, split: str | pd.Series, root: Path, source: Path,
               path_column: str, bases: list[Path] | tuple[Path, ...],
               follow_symlinks: bool = False) -> pd.DataFrame:
    """Builds the clip table of one source table (speaker under any of SPEAKER_COLUMNS,
    a missing gender/age column read as empty cells)."""
    resolved = [_resolve(root, cell, bases, follow_symlinks=follow_symlinks)
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
    so that ``_resolve`` judges them."""
    cell = cell.strip()
    posix = cell.replace("\\", "/")
    if not cell or posix.startswith((prefix, "/")) or (len(cell) > 1 and cell[1] == ":"):
        return cell
    return prefix + cell


def _read_fixed(root: Path, layout: str, tables: list[_SplitTable],
                required: tuple[str, ...], *, tsv: bool, split_by_speaker: bool, seed: int,
                follow_symlinks: bool) -> pd.DataFrame:
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
    clips.attrs["missing_tables"] = [f"{table.source}: not found" for table in missing]
    return clips


def _read_raw(root: Path, **options) -> pd.DataFrame:
    """Kaggle Common Voice v1: ``cv-valid-{split}.csv`` + ``cv-valid-{split}/cv-valid-{split}/``."""
    # The Kaggle archive nests each folder once more; accept it one level up too.
    tables = [_SplitTable(split, root / f"{split_dirname(split)}.csv", "filename",
                          (root / split_dirname(split), root)) for split in SPLITS]
    return _read_fixed(root, "raw", tables, _RAW_REQUIRED, tsv=False, **options)


def _read_clean(root: Path, **options) -> pd.DataFrame:
    """Original project: ``Audio/cv-valid-{split}.csv`` + ``Audio/cv-valid-{split}/*.mp3``."""
    audio = root / "Audio"
    # The filename column may keep its "cv-valid-split/" prefix or not.
    tables = [_SplitTable(split, audio / f"{split_dirname(split)}.csv", "filename", (audio,),
                          prefix=f"{split_dirname(split)}/") for split in SPLITS]
    return _read_fixed(root, "clean", tables, _RAW_REQUIRED, tsv=False, **options)


def _read_cv(root: Path, *, split_by_speaker: bool, seed: int,
             follow_symlinks: bool) -> pd.DataFrame:
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


def _manifest_clips(source: Path, root: Path, *, split_by_speaker: bool, seed: int,
                    follow_symlinks: bool, default_split: str | None = None) -> pd.DataFrame:
    """Reads one labelled table (paths relative to ``root``) into a clip table."""
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
                          follow_symlinks: bool) -> pd.DataFrame:
    source = manifest_file(root)
    clips = _manifest_clips(source, root, split_by_speaker=split_by_speaker, seed=seed,
                            follow_symlinks=follow_symlinks)
    missing = [split for split in SPLITS if not (clips["split"] == split).any()]
    if len(missing) == len(SPLITS):
        raise DatasetError(f"{source}: holds no rows")
    for split in missing:
        log.warning("%s: no row in the %s split; it will be empty", source, split)
    clips.attrs["missing_tables"] = [f"{source}: no row with split={split}" for split in missing]
    return clips


def _majority(values: pd.Series) -> str:
    """The most common non-empty value ("?" when none), ties to the first seen."""
    present = [value for value in values if value]
    return Counter(present).most_common(1)[0][0] if present else "?"


def speaker_splits(strata: dict[str, tuple[str, str]], seed: int) -> dict[str, str]:
    """Assigns speakers to train/dev/test: about 80/10/10 of speakers, stratified, seeded.

    Speakers are ordered so that any prefix holds every (gender, age group) stratum in
    proportion (a systematic sample: within a shuffled stratum of size m, speaker i gets the
    rank (i + u) / m, u a random offset); the first 10 % go to test, the next 10 % to dev.
    Then each gender with at least 2 speakers is made present in test and dev, taking a
    train speaker of it (swapped for a speaker of a gender the split holds twice, else added).

    Args:
        strata: speaker -> (gender, age group), "?" for unknown.
        seed: for the shuffles and offsets.

    Returns:
        speaker -> split.
    """
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    for speaker in sorted(strata):
        groups.setdefault(strata[speaker], []).append(speaker)
    ranked = []
    for stratum in sorted(groups):
        members = groups[stratum]
        rng.shuffle(members)
        offset = rng.random()
        ranked += [((i + offset) / len(members), rng.random(), speaker)
                   for i, speaker in enumerate(members)]
    order = [speaker for *_, speaker in sorted(ranked)]
    n = len(order)
    n_held = max(1, round(0.1 * n)) if n >= 3 else 0
    split_of = {speaker: ("test" if i < n_held else "dev" if i < 2 * n_held else "train")
                for i, speaker in enumerate(order)}
    gender_of = {speaker: strata[speaker][0] for speaker in order}
    totals = Counter(gender_of.values())
    for split in ("test", "dev") if n_held else ():
        for gender in labels.GENDERS:
            members = [s for s in order if split_of[s] == split]
            if totals[gender] < 2 or any(gender_of[s] == gender for s in members):
                continue
            donors = [s for s in order if split_of[s] == "train" and gender_of[s] == gender]
            if not donors:
                continue
            held = Counter(gender_of[s] for s in members)
            spare = [s for s in members if held[gender_of[s]] > 1]
            if spare:
                split_of[spare[-1]] = "train"
            split_of[donors[0]] = split
    return split_of


def assign_splits(clips: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Gives every row with an empty split one, by speaker (see ``speaker_splits``).

    A speaker who already has rows in a split keeps their other rows there too. A row
    without a speaker id is its own unit (so it may share a speaker with another split:
    a warning says how many). Rows come back grouped by split (train, dev, test), each in
    its former order.
    """
    todo = (clips["split"] == "").to_numpy()
    if not todo.any():
        return clips
    speakers = clips["speaker_id"].astype(str)
    anonymous = speakers == ""
    if (anonymous & todo).any():
        log.warning("%s: %d rows without a speaker id are split clip by clip; their speakers "
                    "may be in two splits", clips["source_file"].iloc[0],
                    int((anonymous & todo).sum()))
    units = speakers.where(~anonymous, "\0row " + clips.index.astype(str))
    fixed = clips.loc[~todo & ~anonymous].groupby(units[~todo & ~anonymous])["split"].first()
    free = units[todo & ~units.isin(fixed.index)]
    genders = clips["gender_raw"].map(labels.normalise_gender).fillna("")
    ages = clips["age_raw"].map(labels.normalise_age).fillna("")
    table = pd.DataFrame({"unit": units, "gender": genders, "age": ages})[units.isin(free)]
    strata = {unit: (_majority(part["gender"]), _majority(part["age"]))
              for unit, part in table.groupby("unit", sort=True)}
    assignment = {**speaker_splits(strata, seed), **fixed.to_dict()}
    clips = clips.assign(split=np.where(todo, units.map(assignment), clips["split"]))
    order = clips["split"].map({split: i for i, split in enumerate(SPLITS)})
    return clips.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


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
               follow_symlinks: bool = False) -> pd.DataFrame:
    """Reads a dataset folder's label files into one clip table.

    Args:
        dataset_dir: the dataset folder.
        dataset_type: ``raw`` (Kaggle Common Voice v1), ``clean`` (original project's
            ``Audio/`` layout), ``cv`` (a modern Common Voice language release) or
            ``manifest`` (one table ``DIR/manifest.csv`` or ``.tsv``, see ``read_user_manifest``).
            Missing split tables of raw/clean/cv are a warning while one exists.
        split_by_speaker: rebuild train/dev/test from all rows (``cv``: ``validated.tsv``)
            so no speaker is in two splits (seeded, about 80/10/10 of speakers, stratified
            by gender and age group). Needs a speaker column (``SPEAKER_COLUMNS``).
        seed: for the speaker split.
        follow_symlinks: accept symlinks inside the folder that point outside it.

    Returns:
        DataFrame with ``CLIP_COLUMNS``, one row per label-file row, nothing dropped yet;
        ``attrs["missing_tables"]`` has one line per split table (or manifest split) not
        found.

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


def read_user_manifest(path: str | os.PathLike, *, follow_symlinks: bool = False,
                  seed: int = 42, default_split: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads and cleans one labelled table whose audio paths are relative to its folder.

    The table (CSV, or TSV for a ``.tsv`` name, unquoted) has the columns:

    * ``path`` (or ``filename``), required: audio file relative to the table's folder; an
      absolute path or one that leaves the folder is refused (symlinks inside it pointing
      outside are refused unless ``follow_symlinks``).
    * ``gender`` (male/female, also ``male_masculine``/``female_feminine``) and/or ``age``
      (teens ... sixties, or years: 13-19 teens, ..., 60-69 sixties); at least one column.
      An empty or unknown cell is a missing label for that task only.
    * ``speaker``, ``speaker_id`` or ``client_id``, optional.
    * ``split`` (train/dev/test), optional; empty cells are split by speaker (seeded), or
      all go to ``default_split``.

    Args:
        path: the table.
        follow_symlinks: see above.
        seed: for splitting rows with an empty split.
        default_split: the split of rows with an empty (or no) split cell, instead of a
            speaker split: ``test`` when a table is only to be evaluated.

    Returns:
        (kept, dropped). ``kept`` has ``CLIP_COLUMNS`` + ``CLEAN_COLUMNS``: ``split``,
        ``key`` (file stem, plus ``-`` and 8 hex digits of the path's SHA-1 when a stem
        repeats), ``audio_path`` (absolute: the table's folder joined with the cell,
        lexically normalised, symlinks not resolved), ``speaker_id`` ("" when none),
        ``gender``/``age`` names ("" when missing) and ``gender_code``, ``age_code``,
        ``gender_age_code`` (``labels`` codes, -1 when missing). ``dropped`` has the
        ``CLIP_COLUMNS`` and a ``reason``.

    Raises:
        DatasetError: file missing or unparseable, no path column, neither gender nor age
            column, a bad split value (file, row and value named).
    """
    source = Path(path)
    root = source.absolute().parent
    if default_split is not None:
        split_dirname(default_split)  # validates it
    clips = _manifest_clips(source, root, split_by_speaker=False, seed=seed,
                            follow_symlinks=follow_symlinks, default_split=default_split)
    kept, dropped = clean_clips(clips)
    kept["audio_path"] = [os.path.join(root, relative) for relative in kept["audio_path"]]
    return kept, dropped


def _code(names: tuple[str, ...], name: str) -> int:
    return names.index(name) if name in names else -1


def clean_clips(clips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keeps the clips with a usable path and at least one usable label.

    A gender cell other than male/female (or its modern spellings) or an age cell outside
    the 6 groups (or 13-69 years) counts as a missing label for that task only: the row
    still serves the tasks whose labels it has (``gender_age`` needs both).

    Args:
        clips: table from ``read_clips``.

    Returns:
        (kept, dropped): ``kept`` adds ``CLEAN_COLUMNS`` (missing label: name "", code -1);
        ``dropped`` adds ``reason`` ("no usable label: ...", a path problem, or
        "duplicate clip key in split").
    """
    genders = clips["gender_raw"].map(labels.normalise_gender)
    ages = clips["age_raw"].map(labels.normalise_age)
    reason = pd.Series("", index=clips.index, dtype=object)
    unlabelled = genders.isna() & ages.isna()
    reason[unlabelled] = ("no usable label: gender " + clips["gender_raw"].map(repr)
                          + " not male/female, age " + clips["age_raw"].map(repr)
                          + " not one of the 6 groups")
    has_problem = clips["problem"] != ""
    reason[has_problem] = clips["problem"]
    # Only usable rows compete for a key, so a bad first row does not shadow a good second one.
    usable = reason == ""
    duplicate = clips[usable].duplicated(subset=["split", "key"], keep="first")
    reason[duplicate[duplicate].index] = "duplicate clip key in split"
    dropped = clips[reason != ""].assign(reason=reason[reason != ""])
    kept = clips[reason == ""].copy()
    kept["gender"] = genders[reason == ""].fillna("")
    kept["age"] = ages[reason == ""].fillna("")
    kept["gender_code"] = [_code(labels.GENDERS, g) for g in kept["gender"]]
    kept["age_code"] = [_code(labels.AGES, a) for a in kept["age"]]
    kept["gender_age_code"] = [_code(labels.GENDER_AGES, f"{g}-{a}")
                               for g, a in zip(kept["gender"], kept["age"], strict=True)]
    for task in labels.TASKS:
        kept[f"{task}_code"] = kept[f"{task}_code"].astype(int)
    return kept.reset_index(drop=True), dropped.reset_index(drop=True)


# What a label cell may say, for messages (case and surrounding spaces do not matter).
ACCEPTED_LABELS: dict[str, str] = {
    "gender": ", ".join(labels.GENDER_ALIASES),
    "age": (f"{', '.join(labels.AGES)}, or years {labels.AGE_YEARS[0]}-{labels.AGE_YEARS[1]}"),
}


def unrecognised_labels(clips: pd.DataFrame, *, top: int = 5) -> list[str]:
    """One line per label column with non-empty cells that are no label: the most common
    values with their counts, and the spellings accepted.

    Args:
        clips: table from ``read_clips`` (``gender_raw``, ``age_raw``).
        top: values named per column.

    Returns:
        e.g. ``["gender: 75 cells not recognised: 'F' 40, 'M' 35 (accepted: male, female,
        male_masculine, female_feminine; an empty cell is no label)"]``.
    """
    lines = []
    for name, normalise in (("gender", labels.normalise_gender), ("age", labels.normalise_age)):
        cells = clips[f"{name}_raw"].astype(str)
        bad = cells[(cells.str.strip() != "") & clips[f"{name}_raw"].map(normalise).isna()]
        if bad.empty:
            continue
        counts = bad.value_counts()
        named = ", ".join(f"{value!r} {count}" for value, count in counts.iloc[:top].items())
        more = f", {len(counts) - top} other values" if len(counts) > top else ""
        lines.append(f"{name}: {len(bad)} cells not recognised: {named}{more} (accepted: "
                     f"{ACCEPTED_LABELS[name]}; an empty cell is no label)")
    return lines


def task_counts(table: pd.DataFrame) -> dict[str, dict]:
    """Per task: labelled examples, examples per class and distinct speakers.

    Args:
        table: clean clips (``CLEAN_COLUMNS`` and ``speaker_id``), one split.

    Returns:
        ``{task: {"examples": n, "classes": {name: n, ...}, "speakers": k}}`` for every
        task; ``classes`` lists every class of the task, 0 included; ``speakers`` counts
        non-empty speaker ids of the labelled examples.
    """
    counts = {}
    for task in labels.TASKS:
        codes = table[f"{task}_code"].astype(int).to_numpy()
        labelled = codes >= 0
        names = labels.class_names(task)
        per_class = np.bincount(codes[labelled], minlength=len(names))
        speakers = {s for s in table["speaker_id"].astype(str)[labelled] if s}
        counts[task] = {"examples": int(labelled.sum()),
                        "classes": {name: int(n) for name, n in zip(names, per_class,
                                                                    strict=True)},
                        "speakers": len(speakers)}
    return counts


# Below these, a dev/test split says little about a task: warn when preprocessing.
MIN_SPEAKERS = 2
MIN_CLASS_CLIPS = 5


def split_warnings(split: str, counts: dict[str, dict], *, has_speakers: bool) -> list[str]:
    """One line per task whose split is empty or tiny (see ``MIN_SPEAKERS``,
    ``MIN_CLASS_CLIPS``); ``counts`` as from ``task_counts``.

    A split without any labelled example gives one line; otherwise every split warns when a
    task has no example or a class has none in train; dev and test
    also warn with fewer than 2 speakers (when the layout has speakers) or a class with
    fewer than 5 clips.
    """
    if counts and not any(count["examples"] for count in counts.values()):
        return [f"{split}: empty (no labelled examples for any task)"]
    lines = []
    for task, count in counts.items():
        if count["examples"] == 0:
            lines.append(f"{split}/{task}: no labelled examples")
            continue
        problems = []
        if split != "train":
            if has_speakers and count["speakers"] < MIN_SPEAKERS:
                problems.append(f"{count['speakers']} speaker(s)")
            small = {name: n for name, n in count["classes"].items() if n < MIN_CLASS_CLIPS}
        else:
            small = {name: n for name, n in count["classes"].items() if n == 0}
        if small:
            listed = ", ".join(f"{name} {n}" for name, n in small.items())
            limit = "no" if split == "train" else f"< {MIN_CLASS_CLIPS}"
            problems.append(f"classes with {limit} clips: {listed}")
        if problems:
            lines.append(f"{split}/{task}: {count['examples']} examples; tiny: "
                         + "; ".join(problems))
    return lines


def group_counts(clips: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """Counts clips of every gender-age group in every split, before and after cleaning.

    Returns:
        DataFrame with columns split, group, before, after; groups outside the 12 appear
        with their raw spelling ("?" for an empty cell); ``after`` counts the kept rows of
        a group, those kept for one task only (e.g. ``female-seventies``) included.
    """
    def group_of(gender: object, age: object) -> str:
        g = labels.normalise_gender(gender) or (str(gender).strip() or "?")
        a = labels.normalise_age(age) or (str(age).strip() or "?")
        return f"{g}-{a}"

    before = (clips.assign(group=[group_of(g, a) for g, a in
                                  zip(clips["gender_raw"], clips["age_raw"], strict=True)])
              .groupby(["split", "group"]).size().rename("before"))
    # A kept row counts under its raw group: a gender-only "female-seventies" clip is kept.
    after = (kept.assign(group=[group_of(g, a) for g, a in
                                zip(kept["gender_raw"], kept["age_raw"], strict=True)])
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

"""Cleaning a clip table (``layouts.read_clips``) into clean clips, and the counts and
warnings preprocessing reports about it.

Cleaning is task-aware: a row serves the tasks whose labels it has (gender-only rows serve
``gender``, age-only rows ``age``, rows with both all three); it is dropped only when it
has no usable label at all or an unusable path (``dataset_paths``). ``read_user_manifest``
reads and cleans one labelled table of a user's (``test.py --manifest``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import labels
from agegender.config import SPLITS, split_dirname
from agegender.errors import DatasetError
from agegender.layouts import manifest_clips

# A clean clip table has these columns in addition to ``layouts.CLIP_COLUMNS``; a missing
# label is "" with code -1.
CLEAN_COLUMNS: tuple[str, ...] = ("gender", "age", "gender_code", "age_code", "gender_age_code")


def manifest_path(dataset_dir: str | os.PathLike, split: str) -> Path:
    """``DIR/Manifest/cv-valid-{split}.csv``."""
    return Path(dataset_dir) / "Manifest" / f"{split_dirname(split)}.csv"


def read_clean_manifest(dataset_dir: str | os.PathLike, split: str) -> pd.DataFrame:
    """Reads a split's clean manifest ``DIR/Manifest/cv-valid-{split}.csv``, written by
    ``preprocess.run_clean`` (a user's own labelled table is ``read_user_manifest``)."""
    path = manifest_path(dataset_dir, split)
    if not path.is_file():
        raise DatasetError(f"{path}: not found; run the clean stage first (--stage=clean)")
    return pd.read_csv(path, dtype={"key": str, "audio_path": str, "speaker_id": str},
                       keep_default_na=False)


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
        (kept, dropped). ``kept`` has ``layouts.CLIP_COLUMNS`` + ``CLEAN_COLUMNS``: ``split``,
        ``key`` (file stem, plus ``-`` and 8 hex digits of the path's SHA-1 when a stem
        repeats), ``audio_path`` (absolute: the table's folder joined with the cell,
        lexically normalised, symlinks not resolved), ``speaker_id`` ("" when none),
        ``gender``/``age`` names ("" when missing) and ``gender_code``, ``age_code``,
        ``gender_age_code`` (``labels`` codes, -1 when missing). ``dropped`` has the
        ``layouts.CLIP_COLUMNS`` and a ``reason``.

    Raises:
        DatasetError: file missing or unparseable, no path column, neither gender nor age
            column, a bad split value (file, row and value named).
    """
    source = Path(path)
    root = source.absolute().parent
    if default_split is not None:
        split_dirname(default_split)  # validates it
    clips = manifest_clips(source, root, split_by_speaker=False, seed=seed,
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
        clips: table from ``layouts.read_clips``.

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


def unrecognised_counts(clips: pd.DataFrame) -> dict[str, pd.Series]:
    """``{"gender" | "age": value → cells}`` of the non-empty cells that are no label, for
    the columns that have any (most common first)."""
    found = {}
    for name, normalise in (("gender", labels.normalise_gender), ("age", labels.normalise_age)):
        cells = clips[f"{name}_raw"].astype(str)
        bad = cells[(cells.str.strip() != "") & clips[f"{name}_raw"].map(normalise).isna()]
        if not bad.empty:
            found[name] = bad.value_counts()
    return found


def unrecognised_line(name: str, counts: pd.Series, *, top: int = 5) -> str:
    """One column's line from its ``unrecognised_counts``: the ``top`` most common values
    with their counts, and the spellings accepted, e.g. ``gender: 75 cells not recognised:
    'F' 40, 'M' 35 (accepted: male, female, male_masculine, female_feminine; an empty cell is
    no label)``."""
    named = ", ".join(f"{value!r} {count}" for value, count in counts.iloc[:top].items())
    more = f", {len(counts) - top} other values" if len(counts) > top else ""
    return (f"{name}: {int(counts.sum())} cells not recognised: {named}{more} (accepted: "
            f"{ACCEPTED_LABELS[name]}; an empty cell is no label)")


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

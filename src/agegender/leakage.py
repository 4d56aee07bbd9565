"""Leakage between splits: one speaker, or one audio file, in two of train/dev/test.

A test split that shares a speaker (or a recording) with train scores how well the model
remembers that voice, not how well it generalises. The clean stage refuses both, naming the
speaker or file, the splits and the rows; ``--allow_speaker_overlap`` lets speakers through
knowingly (a file in two splits is never allowed). What was found is recorded in
``DIR/Manifest/leakage.json`` so that the test report can say it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from agegender import atomic
from agegender.config import SPLITS
from agegender.errors import DatasetError

log = logging.getLogger(__name__)

RECORD_NAME = "leakage.json"
_ROWS_SHOWN = 3  # rows named per split in a message


def record_path(dataset_dir: str | os.PathLike) -> Path:
    """``DIR/Manifest/leakage.json``."""
    return Path(dataset_dir) / "Manifest" / RECORD_NAME


def _rows(part: pd.DataFrame) -> str:
    """``manifest.csv rows 2, 5, 9`` (file names, row numbers of the user's table)."""
    named = []
    for source, rows in part.groupby("source_file", sort=False)["source_row"]:
        numbers = [str(int(n)) for n in rows.iloc[:_ROWS_SHOWN]]
        more = f" (+{len(rows) - _ROWS_SHOWN} more)" if len(rows) > _ROWS_SHOWN else ""
        named.append(f"{Path(str(source)).name} row{'s' if len(rows) > 1 else ''} "
                     f"{', '.join(numbers)}{more}")
    return "; ".join(named)


def _where(group: pd.DataFrame) -> str:
    """``train (manifest.csv rows 2, 3) and test (manifest.csv row 9)``."""
    parts = [f"{split} ({_rows(group[group['split'] == split])})"
             for split in SPLITS if (group["split"] == split).any()]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _in_two_splits(clips: pd.DataFrame, unit: pd.Series) -> list[pd.DataFrame]:
    """The rows of each unit (in first-row order) that lies in more than one split."""
    splits = clips.groupby(unit.to_numpy(), sort=False)["split"].nunique()
    leaking = set(splits[splits > 1].index)
    if not leaking:
        return []
    positions = clips.groupby(unit.to_numpy(), sort=False).indices
    return [clips.iloc[positions[name]] for name in splits.index if name in leaking]


def file_overlap(clips: pd.DataFrame, root: str | os.PathLike) -> list[str]:
    """One line per audio file (by real path: symlinks and ``..`` resolved) listed in more
    than one split.

    Args:
        clips: kept clips (``commonvoice.clean_clips``): ``split``, ``audio_path`` relative
            to ``root``, ``source_file``, ``source_row``.
        root: the dataset folder.
    """
    if clips.empty:
        return []
    folders: dict[str, str] = {}

    def real(path: str) -> str:
        # realpath costs a stat per path component: resolve each folder once, and a file
        # only when it is itself a link.
        folder, name = os.path.split(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(os.path.join(root, folder))
        full = os.path.join(folders[folder], name)
        return os.path.realpath(full) if os.path.islink(full) else full

    real = {path: real(path) for path in clips["audio_path"].unique()}
    return [f"audio file {group['audio_path'].iloc[0]} is listed in {_where(group)}"
            for group in _in_two_splits(clips, clips["audio_path"].map(real))]


def speaker_overlap(clips: pd.DataFrame) -> list[str]:
    """One line per speaker whose clips lie in more than one split (rows without a speaker
    id are not judged).

    Args:
        clips: kept clips with ``speaker_id``, ``split``, ``source_file``, ``source_row``.
    """
    named = clips[clips["speaker_id"].astype(str) != ""]
    if named.empty:
        return []
    return [f"speaker {str(group['speaker_id'].iloc[0])!r} is in {_where(group)}"
            for group in _in_two_splits(named, named["speaker_id"].astype(str))]


def _first_and_count(lines: list[str], kind: str) -> str:
    more = f" ({len(lines) - 1} more {kind} in two splits)" if len(lines) > 1 else ""
    return f"{lines[0]}{more}"


def check_splits(clips: pd.DataFrame, root: str | os.PathLike, *,
                 allow_speaker_overlap: bool = False) -> dict:
    """Refuses an audio file or (unless allowed) a speaker in two splits.

    Args:
        clips: kept clips after cleaning (splits assigned).
        root: the dataset folder the ``audio_path`` cells are relative to.
        allow_speaker_overlap: go on when a speaker is in two splits (logged, recorded).

    Returns:
        The record ``write_record`` stores: ``speakers`` (``checked``, ``allowed`` or
        ``unchecked`` when no row names a speaker), ``overlapping`` (one line per speaker
        in two splits, when allowed), ``files`` (``checked``).

    Raises:
        DatasetError: one line naming the first file or speaker, its splits and rows.
    """
    files = file_overlap(clips, root)
    if files:
        raise DatasetError(
            f"{_first_and_count(files, 'files')}: a clip in two splits is scored on what the "
            "model was trained on; keep each file in one split")
    if not (clips["speaker_id"].astype(str) != "").any():
        log.warning("%s: the dataset names no speakers (no speaker, speaker_id or client_id "
                    "column): whether a speaker is in two splits cannot be checked", root)
        return {"speakers": "unchecked", "overlapping": [], "files": "checked"}
    speakers = speaker_overlap(clips)
    if speakers and not allow_speaker_overlap:
        raise DatasetError(
            f"{_first_and_count(speakers, 'speakers')}: a speaker in two splits makes the "
            "test score a memory test; put all their rows in one split (or "
            "--split_by_speaker), or pass --allow_speaker_overlap to go on knowingly")
    for line in speakers:
        log.warning("%s: %s (allowed by --allow_speaker_overlap)", root, line)
    return {"speakers": "allowed" if speakers else "checked", "overlapping": speakers,
            "files": "checked"}


def write_record(dataset_dir: str | os.PathLike, record: dict) -> Path:
    """Writes ``record`` (``check_splits``) to ``DIR/Manifest/leakage.json``."""
    path = record_path(dataset_dir)
    atomic.write_text(path, json.dumps(record, indent=2))
    return path


def report_line(dataset_dir: str | os.PathLike) -> str | None:
    """The test report's line on speaker leakage, from ``leakage.json`` (None when the
    dataset was preprocessed before the record existed, or it is unreadable)."""
    try:
        record = json.loads(record_path(dataset_dir).read_text())
    except (OSError, ValueError):
        return None
    state = record.get("speakers")
    if state == "checked":
        return "speaker leakage: none (no speaker in two splits; checked when preprocessing)"
    if state == "unchecked":
        return ("speaker leakage: cannot be checked (the dataset names no speakers); the "
                "score may include speakers heard in training")
    if state == "allowed":
        overlapping = record.get("overlapping") or []
        first = f"; first: {overlapping[0]}" if overlapping else ""
        return (f"speaker leakage: ALLOWED (--allow_speaker_overlap): {len(overlapping)} "
                f"speaker(s) in two splits{first}")
    return None

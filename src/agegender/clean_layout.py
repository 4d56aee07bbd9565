"""After a ``raw`` run, the original project's clean layout, made of links.

The original project left ``DIR/Audio/cv-valid-{split}.csv`` + ``DIR/Audio/cv-valid-{split}/``
behind, and its README's next command (``--dataset_type='clean'``) and inference example read
them. ``write_clean_layout`` gives the same layout without touching the source: each CSV holds
the kept rows (the source rows, Kaggle columns, ``filename`` pointing into the folder), each
folder hard links to the kept clips (symlinks where a hard link is impossible, e.g. across
file systems). Every file is written atomically; files under ``Audio/`` that are not ours
(not listed in ``Audio/.agegender-layout.json``) are never replaced: that split is skipped with
a warning.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pandas as pd

from agegender import atomic
from agegender.config import SPLITS, split_dirname

log = logging.getLogger(__name__)

MARKER = ".agegender-layout.json"  # in DIR/Audio: the files this module wrote


def _link(source: Path, target: Path) -> str:
    """Links ``target`` to ``source`` atomically: hard link, else a relative symlink.

    Returns:
        ``"hard"`` or ``"symbolic"``.
    """
    tmp = target.with_name(atomic.temp_name(target.name))
    try:
        os.link(source, tmp)
        kind = "hard"
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                             errno.EACCES):
            raise
        os.symlink(os.path.relpath(os.path.realpath(source), target.parent), tmp)
        kind = "symbolic"
    try:
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return kind


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _source_rows(root: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The source-table rows (every column, as strings) of kept clips, in their order."""
    out = []
    for source, group in rows.groupby("source_file", sort=False):
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
        picked = table.iloc[group["source_row"].astype(int).to_numpy() - 2].copy()
        picked.index = group.index
        out.append(picked)
    return pd.concat(out).loc[rows.index]


def write_clean_layout(dataset_dir: str | os.PathLike, kept: pd.DataFrame, *,
                       output_dir: str | os.PathLike | None = None) -> list[str]:
    """Writes ``DIR/Audio/cv-valid-{split}.csv`` and links ``DIR/Audio/cv-valid-{split}/<file>``
    for the kept clips of a raw-layout run (``kept`` from ``commonvoice.clean_clips``).

    ``output_dir`` (None: ``dataset_dir``) takes ``Audio/`` instead, linking to the clips in
    ``dataset_dir`` (symlinks where hard links cannot cross file systems).

    Returns:
        One warning line per split left out because a file of the user is in the way.
    """
    root = Path(dataset_dir)
    audio = Path(output_dir if output_dir is not None else root) / "Audio"
    marker = audio / MARKER
    try:
        ours = set(json.loads(marker.read_text())["files"]) if marker.is_file() else set()
    except (ValueError, KeyError, TypeError, OSError):
        ours = set()
    warnings, written, kinds = [], set(ours), set()
    for split in SPLITS:
        rows = kept[kept["split"] == split]
        if rows.empty:
            continue
        folder = split_dirname(split)
        csv_name = f"{folder}.csv"
        links = {f"{folder}/{Path(path).name}": root / path for path in rows["audio_path"]}
        blocking = [name for name in [csv_name, *links] if os.path.lexists(audio / name)
                    and name not in ours
                    and not (name in links and _same_file(audio / name, links[name]))]
        if blocking:
            line = (f"{audio / blocking[0]}: exists and is not ours; the clean layout of the "
                    f"{split} split (Audio/{csv_name}, Audio/{folder}/) is not written")
            log.warning("%s", line)
            warnings.append(line)
            continue
        (audio / folder).mkdir(parents=True, exist_ok=True)
        atomic.remove_leftovers(audio / folder)
        for name, source in links.items():
            if not _same_file(audio / name, source):
                kinds.add(_link(source, audio / name))
            written.add(name)
        table = _source_rows(root, rows)
        table["filename"] = [f"{folder}/{Path(path).name}" for path in rows["audio_path"]]
        atomic.write_text(audio / csv_name, table.to_csv(index=False))
        written.add(csv_name)
        atomic.write_text(marker, json.dumps({"files": sorted(written)}, indent=0))
    if written - ours:
        log.info("clean layout: %s (links to the kept clips: %s)", audio,
                 ", ".join(sorted(kinds)) or "already there")
    return warnings

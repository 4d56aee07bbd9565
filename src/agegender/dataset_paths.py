"""Path cells of a dataset's label tables, confined to the dataset folder.

A path in a CSV/TSV is data, not trusted: ``resolve_path_cell`` turns a cell into a path
relative to the dataset folder, or names the problem (``OUTSIDE``: absolute, or ``..``
leaving the folder; ``SYMLINK_OUTSIDE``: a symlink inside it to a file outside, unless
``--follow_symlinks``), and a row with a problem is dropped, never opened. (What a *user*
names on the command line, files, folders and globs, is ``audio_paths``.)
"""

from __future__ import annotations

import os
from pathlib import Path

OUTSIDE = "path outside dataset"
SYMLINK_OUTSIDE = (f"{OUTSIDE}: a symlink to a file outside the dataset folder; "
                   "--follow_symlinks accepts it")


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_path_cell(root: Path, cell: str, bases: list[Path] | tuple[Path, ...], *,
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
    """``resolve_path_cell`` of a non-empty cell; may raise OSError/ValueError for a bad path."""
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

"""Turning what a user names (files, folders, quoted globs) into audio files.

Shared by ``src/inference.py`` and ``AgeGenderDetector.predict``. Folders are searched
recursively and links to folders are followed, but never into a folder already visited,
so a link back up (``a/loop -> ..``) neither repeats a file nor hangs; a file reached
by two routes (a link and its target) is listed once, by the first route found.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Iterator

AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au")


def walk_files(top: str, *, max_depth: int | None = None) -> Iterator[str]:
    """Files under folder ``top`` (``top``-relative names joined onto it), sorted per folder.

    Links to folders are followed, each real folder is entered once (by ``st_dev`` and
    ``st_ino``): loops end. Unreadable folders are left out.

    Args:
        top: the folder.
        max_depth: folder levels below ``top`` to enter (None: all).
    """
    seen: set[tuple[int, int]] = set()
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            path = os.path.join(folder, entry.name)
            try:
                if entry.is_dir():  # follows links; a dangling link is neither
                    subfolders.append(path)
                elif entry.is_file():
                    yield path
            except OSError:
                continue
        if max_depth is None or depth < max_depth:
            stack += [(path, depth + 1) for path in reversed(subfolders)]


def _name_matches(part: str, name: str) -> bool:
    """One path component against one glob component (as ``glob``: ``*`` skips dot-names)."""
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)


def _parts_match(parts: list[str], names: list[str]) -> bool:
    """Components ``names`` against glob components ``parts`` (``**``: zero or more)."""
    if not parts:
        return not names
    if parts[0] == "**":
        return any(_parts_match(parts[1:], names[skip:]) for skip in range(len(names) + 1)
                   if not any(name.startswith(".") for name in names[:skip]))
    return bool(names) and _name_matches(parts[0], names[0]) and _parts_match(parts[1:],
                                                                              names[1:])


def glob_files(pattern: str) -> list[str]:
    """Files matching ``pattern`` (``**`` = any folders, as ``glob(recursive=True)``), sorted,
    without following a link into a folder already visited."""
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not glob.has_magic(parts[fixed]):
        fixed += 1
    base = os.sep.join(parts[:fixed]) if fixed else ""
    if pattern.startswith(os.sep) and not base:
        base = os.sep
    wanted = [part for part in parts[fixed:] if part]  # "a//b" is "a/b"
    if not os.path.isdir(base or os.curdir):
        return []
    depth = None if "**" in wanted else max(0, len(wanted) - 1)
    found = []
    for path in walk_files(base or os.curdir, max_depth=depth):
        relative = os.path.relpath(path, base or os.curdir)
        if _parts_match(wanted, relative.split(os.sep)):
            found.append(os.path.join(base, relative) if base else relative)
    return sorted(found)


def expand_audio_paths(items: Iterable[str | os.PathLike], *, unique: bool = True) -> list[str]:
    """Expands files, globs and folders (searched recursively) into audio file paths, each
    item in place.

    A name that matches nothing, a glob without a match and a folder without audio files are
    kept as they are, so that each is reported (``input_problem`` says why).

    Args:
        items: what the user named.
        unique: True (``src/inference.py``): each real file once over all items, at its
            first place. False (``AgeGenderDetector.predict``: one result per input): a
            file named twice stays twice; only within one folder or glob is each real
            file listed once.
    """
    paths: list[str] = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            found = [path for path in walk_files(item)
                     if os.path.splitext(path)[1].lower() in AUDIO_SUFFIXES]
            paths += _once(sorted(found)) or [item]
        elif glob.has_magic(item) and not os.path.lexists(item):
            paths += _once(glob_files(item)) or [item]
        else:
            paths.append(item)
    return _once(paths) if unique else paths


def _once(paths: list[str]) -> list[str]:
    """Each real file once, at its first place (a name that is no file: by the name)."""
    first: dict[str, str] = {}  # real path (the name itself if it is no file) -> as named
    for path in paths:
        first.setdefault(os.path.realpath(path) if os.path.isfile(path) else path, path)
    return list(first.values())


def input_problem(item: str) -> str:
    """Why an item left by ``expand_audio_paths`` is not a file to predict ("" if it may be):
    an empty folder or a glob matching nothing."""
    if os.path.isdir(item):
        return (f"{item}: folder holds no audio files "
                f"({', '.join(AUDIO_SUFFIXES)}, searched recursively)")
    if glob.has_magic(item) and not os.path.lexists(item):
        return f"{item}: no audio files match this pattern"
    return ""

"""Atomic file output: write a temporary sibling, then rename over the target.

An interrupted run leaves either the old file or the new one, never half a file, so a
re-run can trust whatever exists.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


_TEMP_PREFIX = ".tmp-"  # + 8 hex digits + "-" + the target's name


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it onto ``path`` on success.

    The temporary name keeps the target's suffix (Keras and matplotlib pick the format from
    it) and is removed if the block raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil  # noqa: PLC0415

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def leftovers(folder: str | os.PathLike) -> Iterator[tuple[Path, str]]:
    """The temporary files that interrupted ``replacing`` blocks (a killed process) left in
    ``folder``, each with the name of the file it was to replace.

    Yields:
        (temporary path, target file name).
    """
    for path in Path(folder).glob(f"{_TEMP_PREFIX}????????-*"):
        yield path, path.name[len(_TEMP_PREFIX) + 9:]


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

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


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it onto ``path`` on success.

    The temporary name keeps the target's suffix (Keras and matplotlib pick the format from
    it) and is removed if the block raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{target.name}")
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


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

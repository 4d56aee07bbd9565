"""Atomic file output: write a temporary sibling, then rename over the target.

An interrupted run leaves either the old file or the new one, never half a file, so a
re-run can trust whatever exists. A full disk ends the write with one ``OutputError`` naming
the file (free space and re-run: finished outputs are kept).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from agegender.errors import OutputError

TEMP_PREFIX = ".tmp-"  # + 8 hex digits + "-" + the target's name (shortened to fit)
PARTIAL_SUFFIX = ".partial"  # ends temporary names made with keep_suffix=False
NAME_MAX = 255  # bytes in one file name on Linux/macOS file systems
_KEPT_SUFFIX_MAX = 16  # longer "suffixes" (a dot deep in a long name) are not format names
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
CHECKSUM_SUFFIX = ".sha256"


def _shortened(name: str, budget: int) -> str:
    """``name`` cut to at most ``budget`` UTF-8 bytes, never inside a character."""
    return name.encode("utf-8")[:max(0, budget)].decode("utf-8", errors="ignore")


def temp_name(target_name: str, *, keep_suffix: bool = True) -> str:
    """The temporary sibling's name for ``target_name``: ``.tmp-<8 hex>-<name>``, with the
    name's stem shortened so the whole fits ``NAME_MAX`` bytes.

    Args:
        target_name: the final file name.
        keep_suffix: end with the target's suffix (Keras and matplotlib choose the format
            from it); False ends the name with ``.partial`` instead, so a glob for the
            target's suffix (``*.tfrecord``) never matches a half-written file.
    """
    prefix = f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-"
    suffix = Path(target_name).suffix if keep_suffix else ""
    if len(suffix.encode("utf-8")) > _KEPT_SUFFIX_MAX:
        suffix = ""
    stem = target_name[:len(target_name) - len(suffix)] if suffix else target_name
    end = "" if keep_suffix else PARTIAL_SUFFIX
    budget = NAME_MAX - len(prefix) - len(suffix.encode("utf-8")) - len(end)
    return prefix + _shortened(stem, budget) + suffix + end


def disk_full_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """The one line a full disk (or quota) gives, naming the file being written."""
    return OutputError(f"{path}: disk full while writing ({err.strerror or 'no space left'}); "
                       "free some space and run the same command again (finished outputs "
                       "are kept, it resumes)")


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, keep_suffix: bool = True) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it onto ``path`` on success.

    The temporary name (``temp_name``) keeps the target's suffix unless ``keep_suffix`` is
    False, always fits the file system's name limit, and is removed if the block raises.

    Raises:
        OutputError: the disk (or quota) is full; names ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise disk_full_error(target, err) from err
        raise
    tmp = target.with_name(temp_name(target.name, keep_suffix=keep_suffix))
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise disk_full_error(target, err) from err
        raise
    finally:
        if tmp.exists() or tmp.is_symlink():
            if tmp.is_dir() and not tmp.is_symlink():
                import shutil  # noqa: PLC0415

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def leftovers(folder: str | os.PathLike) -> Iterator[tuple[Path, str]]:
    """The temporary files that interrupted ``replacing`` blocks (a killed process) left in
    ``folder``, each with the name of the file it was to replace (shortened when the
    target's name was too long to fit beside the prefix).

    Yields:
        (temporary path, target file name).
    """
    for path in Path(folder).glob(f"{TEMP_PREFIX}????????-*"):
        yield path, path.name[len(TEMP_PREFIX) + 9:].removesuffix(PARTIAL_SUFFIX)


def remove_leftovers(folder: str | os.PathLike, *, startswith: tuple[str, ...] = ("",)) -> int:
    """Removes the ``leftovers`` of ``folder`` (files, symlinks, and folders of a killed
    folder publication) whose target name starts with one of ``startswith``; returns how
    many. A missing folder has none."""
    if not Path(folder).is_dir():
        return 0
    removed = 0
    for path, target in list(leftovers(folder)):
        if not target.startswith(startswith):
            continue
        if path.is_dir() and not path.is_symlink():
            import shutil  # noqa: PLC0415

            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: str | os.PathLike) -> Path:
    """The checksum sidecar of ``path``: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def read_checksums(path: str | os.PathLike) -> list[str] | None:
    """The SHA-256 digests ``path``'s sidecar accepts, or None when it has no sidecar.

    The sidecar is in ``sha256sum`` format (``<hex>  <name>`` per line); it lists two digests
    only while a file is being replaced (see ``replacing_checksummed``).
    """
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return None
    return [line.split()[0].lower() for line in sidecar.read_text(errors="replace").splitlines()
            if line.strip()]


@contextlib.contextmanager
def replacing_checksummed(path: str | os.PathLike) -> Iterator[Path]:
    """``replacing`` that also records the file's SHA-256 in ``<file>.sha256``, kill-safely.

    Before the rename the sidecar lists the new digest and the old file's; after it, only the
    new one. A kill at any point leaves a file whose digest its sidecar lists.
    """
    target = Path(path)
    sidecar = checksum_path(target)
    with replacing(target) as tmp:
        yield tmp
        new = sha256_file(tmp)
        lines = [f"{new}  {target.name}"]
        if target.is_file():
            lines.append(f"{sha256_file(target)}  {target.name}")
        write_text(sidecar, "\n".join(lines) + "\n")
    write_text(sidecar, f"{new}  {target.name}\n")

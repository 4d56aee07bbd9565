"""One run at a time per output folder: an advisory ``fcntl.flock`` on ``FOLDER/.lock``.

Two runs writing one folder undo each other: one's sweep of ``.tmp-*`` leftovers removes
the other's temporary file mid-write. Preprocessing locks the dataset's output folder,
training ``MODELS_DIR/<task>`` (preprocessing keeps its lock file in ``Manifest/``, so
the dataset folder gains no new entry); a second run stops at once with one line naming the
folder and the PID written into the lock file. The kernel drops the lock when the
process ends, however it ends (a crash or ``kill -9`` included), so a stale lock file
never blocks the next run; forked children (preprocessing workers) close their inherited
copy, so one orphaned by a killed parent does not keep the lock either.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import weakref
from pathlib import Path

from agegender.errors import OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_HELD: weakref.WeakSet = weakref.WeakSet()  # this process's locks, for _forget_in_child
_fork_hook = False


def _forget_in_child() -> None:
    """In a forked child (a preprocessing worker), closes the inherited lock descriptors:
    an orphaned child must not keep its dead parent's lock held."""
    for lock in list(_HELD):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _HELD.clear()


class RunLock:
    """An exclusive advisory lock on ``FOLDER/.lock``, held until ``release`` (or exit).

    Args:
        folder: the output folder, named in the message.
        what: the run, for the message (``preprocessing``, ``training``).
        lock_path: the lock file (default ``folder/.lock``); its folder is created.

    Raises:
        OutputError: another process holds the lock (names the folder and its PID), or the
            lock file cannot be created.
    """

    def __init__(self, folder: str | os.PathLike, *, what: str,
                 lock_path: str | os.PathLike | None = None):
        self.folder = Path(folder)
        self.path = Path(lock_path) if lock_path is not None else self.folder / LOCK_NAME
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OutputError(f"{self.path}: cannot create the lock file of this run "
                              f"({err.strerror or err})") from err
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{self.path}: cannot lock ({err.strerror or err})") from err
            raise OutputError(
                f"{self.folder}: another {what} run (PID {holder}) is writing this folder; "
                f"wait for it to finish (or stop it), then run the same command again "
                f"(lock: {self.path})") from err
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        global _fork_hook  # noqa: PLW0603  (registered once, on the first lock)
        if not _fork_hook:
            os.register_at_fork(after_in_child=_forget_in_child)
            _fork_hook = True
        _HELD.add(self)
        log.debug("locked %s", self.path)

    def _holder(self) -> str:
        """The PID the holder wrote, or ``unknown`` (it may not have written it yet)."""
        try:
            text = os.pread(self._fd, 32, 0).decode("ascii", errors="replace").strip()
        except OSError:
            text = ""
        return text if text.isdigit() else "unknown"

    def release(self) -> None:
        """Drops the lock (the file stays: removing it would race with a next run's open)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def remove_if_alone(self) -> None:
        """Removes the lock file and its folder when the folder holds nothing else (a run
        that failed before writing anything leaves no trace); call while holding it."""
        try:
            if [p.name for p in self.path.parent.iterdir()] == [self.path.name]:
                self.path.unlink()
                self.path.parent.rmdir()
        except OSError:
            pass  # something appeared: the folder is in use, keep it

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()

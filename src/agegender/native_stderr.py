"""Keeps C libraries' known noise out of stderr, and nothing else.

Two libraries write to file descriptor 2 directly, past Python's ``sys.stderr`` and
``logging``: libmpg123 (inside libsndfile) prints ``[src/libmpg123/layer3.c:…] error:
dequantization failed!`` and ``Note: Illegal Audio-MPEG-Header …`` lines for a corrupt MP3,
beside the one-line ``AudioError`` or WARNING we report for it. Kept for the timeline's
decoding of long, possibly damaged recordings only (issue 32: a partly corrupt MP3 printed
the decoder's resync lines); clips are no longer wrapped (0 such lines over the 3,320
Common Voice clips of cv-sample). Also wraps the first ``import tensorflow`` (the finder in
``agegender/__init__.py``), whose absl and oneDNN start-up lines ``TF_CPP_MIN_LOG_LEVEL``
does not reach.

``filtered_stderr()`` points fd 2 at a temporary file for the duration of a block and then
copies every captured line to the real stderr except those matching ``NOISE``. Our own
messages written meanwhile (by any thread) are therefore delayed to the end of the block,
never lost. Threads may nest and overlap blocks: the first to enter redirects, each leaving
thread passes on the complete lines captured so far, the last one restores fd 2.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# Lines written by the C libraries that say nothing our own messages do not.
NOISE = re.compile(
    r"^(?:\[src/libmpg123/[^\]]*\] "  # libmpg123's decoder errors and warnings
    r"|Note: (?:Illegal Audio-MPEG-Header|Trying to resync|Skipped \d+ bytes in input"
    r"|Giving up resync)"
    r"|Warning: Xing stream size off by more than"  # a damaged MP3's Xing header
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on)"
)

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None  # the real stderr while _depth > 0
_capture_fd: int | None = None  # the temporary file fd 2 points at while _depth > 0
_offset = 0  # bytes of the capture already passed on
_pending = b""  # an unfinished last line, kept until its end arrives
_fork_hook = False  # the fork handler is registered with the first capture file


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # None, or closed
            stream.flush()


def _capture() -> int:
    """The process's capture file: unnamed, in append mode (writers through fd 2 always add
    at the end, and ``os.pread`` reads it without moving their shared offset), made once."""
    global _capture_fd, _fork_hook
    if _capture_fd is None:
        fd, name = tempfile.mkstemp(prefix="agegender-stderr-")
        os.unlink(name)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        if not _fork_hook:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook = True
        _capture_fd = fd
    return _capture_fd


def _pass_on(final: bool) -> None:
    """Copies the captured lines (all of them when ``final``; else only complete ones) that
    are not noise to the real stderr. Call with ``_lock`` held."""
    global _offset, _pending
    size = os.fstat(_capture_fd).st_size
    data = _pending + (os.pread(_capture_fd, size - _offset, _offset) if size > _offset else b"")
    _offset = size
    if final or data.endswith(b"\n"):
        _pending = b""
    else:
        data, newline, _pending = data.rpartition(b"\n")
        data += newline
    if final:
        os.ftruncate(_capture_fd, 0)
        _offset = 0
    kept = [line for line in data.splitlines(keepends=True)
            if not NOISE.match(line.decode("utf-8", "replace"))]
    if kept:
        os.write(_saved_fd, b"".join(kept))


def _enter() -> bool:
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            try:
                capture = _capture()
                saved = os.dup(2)
            except OSError:
                return False
            _flush_python_streams()
            _saved_fd = saved
            os.dup2(capture, 2)
        _depth += 1
        return True


def _leave() -> None:
    global _depth, _saved_fd
    with _lock:
        _flush_python_streams()
        _depth -= 1
        if _depth == 0:
            os.dup2(_saved_fd, 2)
            _pass_on(final=True)
            os.close(_saved_fd)
            _saved_fd = None
        else:
            _pass_on(final=False)


def _after_fork_in_child() -> None:
    """A child forked inside a block gets the real stderr back and its own capture file."""
    global _lock, _depth, _saved_fd, _capture_fd, _offset, _pending
    if _depth and _saved_fd is not None:
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
    if _capture_fd is not None:
        os.close(_capture_fd)
    _lock, _depth, _saved_fd, _capture_fd, _offset, _pending = (
        threading.Lock(), 0, None, None, 0, b"")


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Within the block, lines matching ``NOISE`` written to fd 2 are dropped; every other
    line reaches stderr when a block ends (complete lines) or the last overlapping one does.

    Where fd 2 cannot be duplicated (closed), the block runs unfiltered.
    """
    entered = _enter()
    try:
        yield
    finally:
        if entered:
            _leave()

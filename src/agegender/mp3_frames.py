"""The MPEG audio frames of an MP3 file: where its good runs are, and the damaged bytes
between them.

libmpg123 (inside libsndfile) gives up on an MP3 at the first stretch of bytes it cannot
resync over, or ends it early without a word; a recording damaged in one spot would be
refused or cut whole. Walking the frame headers (each says its own length) finds the runs of
chained frames; the timeline decodes each run on its own and keeps the bytes between them as
a marked gap (``timeline.audio_blocks``). Layer III only (what ``.mp3`` files hold); anything
else is one run, decoded as before.
"""

from __future__ import annotations

import dataclasses
import mmap
import os

# Bit rates (kbit/s) by index, for MPEG-1 and MPEG-2/2.5 Layer III; 0 = free format, 15 bad.
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES = {1: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000),
          25: (11_025, 12_000, 8_000)}
CHAIN = 3  # frames that must follow one another for a sync word to count as a frame


@dataclasses.dataclass(frozen=True)
class FrameRun:
    """Consecutive chained frames: bytes [start, end), ``frames`` of ``samples`` each."""

    start: int
    end: int
    frames: int
    samples: int
    rate: int

    @property
    def seconds(self) -> float:
        """Duration of the run."""
        return self.frames * self.samples / self.rate


def frame_header(data, pos: int) -> tuple[int, int, int] | None:
    """(frame bytes, samples per frame, sample rate) of a Layer III header at ``pos``, or
    None when there is none."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    version_bits = (data[pos + 1] >> 3) & 3  # 0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1
    layer_bits = (data[pos + 1] >> 1) & 3  # 1: Layer III
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 3
    if version_bits == 1 or layer_bits != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    version = {3: 1, 2: 2, 0: 25}[version_bits]
    rate = _RATES[version][rate_index]
    bitrate = _BITRATES[1 if version == 1 else 2][bitrate_index] * 1000
    padding = (data[pos + 2] >> 1) & 1
    if version == 1:
        return 144 * bitrate // rate + padding, 1152, rate
    return 72 * bitrate // rate + padding, 576, rate


def _chained(data, pos: int) -> bool:
    """``CHAIN`` frames follow one another from ``pos`` (or reach the end of the data)."""
    for _ in range(CHAIN):
        header = frame_header(data, pos)
        if header is None:
            return False
        pos += header[0]
        if pos >= len(data):
            return True
    return True


def _first_frame(data) -> int:
    """Where the audio starts: after an ID3v2 tag, at the first chained frame."""
    pos = 0
    if bytes(data[:3]) == b"ID3" and len(data) >= 10:
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    while pos < len(data) and not _chained(data, pos):
        pos += 1
    return pos


def frame_runs(path: str | os.PathLike) -> list[FrameRun]:
    """The runs of chained Layer III frames of an MP3 file, in order ([] for a file with
    none: not Layer III, or empty). Trailing tags (ID3v1, APE) end the last run."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return []
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            runs = []
            pos = _first_frame(data)
            while pos < len(data):
                start, frames, samples, rate = pos, 0, 0, 0
                while (header := frame_header(data, pos)) is not None and pos < len(data):
                    length, samples, rate = header
                    pos, frames = pos + length, frames + 1
                if frames:
                    runs.append(FrameRun(start, min(pos, len(data)), frames, samples, rate))
                if bytes(data[pos:pos + 3]) in (b"TAG", b"APE", b"LYR"):
                    break  # the file's closing tags, not damage
                while pos < len(data) and not _chained(data, pos):
                    pos += 1
            return runs


class ByteRange:
    """A read-only file object over bytes [start, end) of a file (what ``soundfile`` needs
    to decode one run: read, seek, tell)."""

    def __init__(self, path: str | os.PathLike, start: int, end: int):
        self._handle = open(path, "rb")  # noqa: SIM115  (closed by close())
        self._start, self._end, self._pos = start, end, 0

    def read(self, size: int = -1) -> bytes:
        left = self._end - self._start - self._pos
        size = left if size is None or size < 0 else min(size, left)
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(max(0, size))
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos,
                os.SEEK_END: self._end - self._start}[whence]
        self._pos = max(0, min(self._end - self._start, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ByteRange:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

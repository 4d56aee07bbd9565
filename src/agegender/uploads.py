"""Receiving one uploaded audio file for the web service (``agegender.serve``) within limits.

The multipart body is parsed as it streams in and written straight into a folder the caller
owns (a temporary one, removed after the request), so an upload never lands anywhere else
(Starlette's own form parser spools large files into the system's temp folder) and an
oversized one is stopped at the limit instead of being read whole. Then the file's header is
read (``soundfile.info``: no decoding) and checked against the limits before any model runs.
Every refusal is an ``UploadError`` carrying the HTTP status that answers it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from agegender.errors import AudioError

MIB = 1024 * 1024
# Sample rates the features accept (features.load_clip's MIN_RATE_HZ..MAX_RATE_HZ).
MIN_RATE_HZ = 4_000
MAX_RATE_HZ = 384_000


class UploadError(AudioError):
    """An upload refused before analysis; ``status`` is the HTTP status (4xx) to answer."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    """What one upload may be.

    Attributes:
        max_mb: largest upload, MiB.
        max_minutes: longest recording, minutes.
        max_channels: most channels (mono and stereo by default: the features average them).
    """

    max_mb: float = 100.0
    max_minutes: float = 120.0
    max_channels: int = 2

    def __post_init__(self) -> None:
        for name in ("max_mb", "max_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        if self.max_channels < 1:
            raise ValueError(f"max_channels={self.max_channels!r} must be >= 1")

    @property
    def max_bytes(self) -> int:
        """Largest upload in bytes."""
        return int(self.max_mb * MIB)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """An accepted upload: where it is, its name as the user gave it, and its header."""

    path: Path
    name: str
    size: int          # bytes
    duration: float    # seconds
    sample_rate: int   # Hz
    channels: int


def safe_name(filename: str | None) -> str:
    """The upload's base name with anything but letters, digits, ``.-_`` turned into ``_``
    (no folders, no leading dot), at most 100 characters; ``upload`` when nothing is left."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")[-100:]
    return cleaned or "upload"


def _too_large(limits: UploadLimits, name: str | None = None) -> UploadError:
    return UploadError(f"{name or 'upload'}: larger than --max_mb={limits.max_mb:g} MiB", 413)


async def receive_upload(request, folder: str | os.PathLike, limits: UploadLimits,
                         field: str = "file") -> tuple[Path, str, int]:
    """Streams the multipart form field ``field`` of ``request`` into ``folder``.

    Args:
        request: a Starlette request with a ``multipart/form-data`` body.
        folder: an existing folder that the caller removes afterwards.
        limits: ``max_bytes`` stops the stream as soon as the file passes it.
        field: the form field holding the file.

    Returns:
        (path of the written file, the user's file name made safe, bytes written).

    Raises:
        UploadError: not multipart (415), no such field (400), empty (400), too large (413).
    """
    # Long because: the multipart parser's callbacks are closures over one upload's state, and its
    # try/finally must close the file.
    from python_multipart.multipart import MultipartParser, parse_options_header  # noqa: PLC0415

    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadError(f"request: expected a multipart/form-data upload with a '{field}' "
                          f"field, got content type {content_type.decode() or 'none'!r}", 415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes + 64 * 1024:  # form overhead
        raise _too_large(limits)
    state = {"headers": {}, "field": b"", "value": b"", "out": None, "name": None, "size": 0}
    folder = Path(folder)

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if (disposition.get(b"name", b"").decode(errors="replace") == field
                and b"filename" in disposition and state["name"] is None):
            state["name"] = safe_name(disposition[b"filename"].decode(errors="replace"))
            state["out"] = open(folder / state["name"], "wb")  # noqa: SIM115 (closed below)

    def on_part_data(data, start, end):
        if state["out"] is not None:
            state["size"] += end - start
            if state["size"] > limits.max_bytes:
                raise _too_large(limits, state["name"])
            state["out"].write(data[start:end])

    def on_part_end():
        if state["out"] is not None:
            state["out"].close()
            state["out"] = False  # the file is complete; later parts are ignored
        state["headers"] = {}

    parser = MultipartParser(boundary, {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as err:  # python_multipart's parse errors have no common public base
        raise UploadError(f"request: malformed multipart body ({err})", 400) from err
    finally:
        if state["out"]:
            state["out"].close()
    if state["name"] is None:
        raise UploadError(f"request: no file in form field '{field}'", 400)
    if state["size"] == 0:
        raise UploadError(f"{state['name']}: empty file (0 bytes)", 400)
    return folder / state["name"], state["name"], state["size"]


def check_audio(path: Path, name: str, size: int, limits: UploadLimits) -> AudioInfo:
    """Reads the header of an uploaded file and checks it against ``limits``.

    Raises:
        UploadError: not audio libsndfile reads (415), no samples (400), a rate outside
            4-384 kHz or more channels than ``max_channels`` (422), longer than
            ``max_minutes`` (413). Messages name the file by ``name``, never by its path.
    """
    import soundfile as sf  # noqa: PLC0415

    try:
        info = sf.info(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        raise UploadError(f"{name}: not an audio file this service reads (WAV, FLAC, MP3, "
                          "OGG/Opus, AIFF, AU...)", 415) from err
    if info.samplerate <= 0 or info.channels <= 0 or info.frames <= 0:
        raise UploadError(f"{name}: no audio samples", 400)
    if not MIN_RATE_HZ <= info.samplerate <= MAX_RATE_HZ:
        raise UploadError(f"{name}: unsupported sample rate {info.samplerate} Hz (accepted: "
                          f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)", 422)
    if info.channels > limits.max_channels:
        raise UploadError(f"{name}: unsupported channel count {info.channels} (accepted: "
                          f"1-{limits.max_channels})", 422)
    duration = info.frames / info.samplerate
    if duration > limits.max_minutes * 60:
        raise UploadError(f"{name}: {duration / 60:.1f} minutes long, over --max_minutes="
                          f"{limits.max_minutes:g}", 413)
    return AudioInfo(path, name, size, duration, int(info.samplerate), int(info.channels))

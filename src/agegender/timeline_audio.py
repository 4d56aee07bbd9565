"""The timeline's two streaming passes over a recording: decoding in blocks, resampled block
by block (``soxr.ResampleStream``) so memory does not grow with its length; an MP3 damaged in
places decoded run by run; the speech gate's measurements of every frame (pass 1) and each
model window's audio (pass 2).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np

from agegender import speech
from agegender.errors import AudioError

log = logging.getLogger(__name__)


def audio_blocks(path: str | os.PathLike, rates: tuple[int, ...],
                 block_s: float) -> Iterator[tuple[np.ndarray, ...]]:
    """Decodes a file ``block_s`` seconds at a time, mono, resampled to each of ``rates``.

    An MP3 damaged in places (``mp3_frames.frame_runs`` finds more than one run of frames)
    is decoded run by run; each damaged stretch between runs becomes silence of its
    estimated length, named in one WARNING (the gate then gives it no label), instead of the
    whole recording being refused or silently cut at the first bad byte. The decoder's own
    complaints are kept off stderr (``native_stderr``).

    Yields:
        One tuple per block: float32 [samples'] at each rate; the blocks of one rate join
        seamlessly (the resampler keeps its state across blocks).

    Raises:
        AudioError: the file cannot be opened or decoded, or its header is implausible.
    """
    import soundfile as sf  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    from agegender.features import (  # noqa: PLC0415
        _libsndfile_reason,
        file_problem,
        truncation_problem,
    )

    path = os.fspath(path)
    problem = file_problem(path) or truncation_problem(path)
    if problem:
        raise AudioError(f"{path}: {problem}")
    try:
        streams, native = None, None
        for mono, rate, last in _native_blocks(path, block_s):
            if streams is None:
                native = rate
                streams = [None if want == native else
                           soxr.ResampleStream(native, want, 1, dtype="float32", quality="HQ")
                           for want in rates]
            if not np.isfinite(mono).all():
                raise AudioError(f"{path}: not finite: NaN or infinite samples")
            yield tuple(mono.copy() if stream is None else
                        stream.resample_chunk(mono, last=last) for stream in streams)
    except sf.LibsndfileError as err:
        raise AudioError(f"{path}: {_libsndfile_reason(err)}") from err
    except OSError as err:
        raise AudioError(f"{path}: cannot be read ({err.strerror or err})") from err
    except (RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: corrupt or not an audio file ({err})") from err


def _native_blocks(path: str, block_s: float) -> Iterator[tuple[np.ndarray, int, bool]]:
    """(mono float32 block at the file's rate, that rate, last block?) of a file; an MP3
    with damaged stretches run by run, each stretch as silence (see ``audio_blocks``)."""
    from agegender.mp3_frames import ByteRange, frame_runs  # noqa: PLC0415

    runs = frame_runs(path) if path.lower().endswith(".mp3") else []
    if len(runs) <= 1:
        yield from _file_blocks(path, path, block_s, final=True)
        return
    rate, elapsed, gaps = None, 0.0, []
    for number, run in enumerate(runs):
        if number:  # the damaged bytes before this run: silence of their length
            before = runs[number - 1]
            per_byte = (before.seconds + run.seconds) / max(1, (before.end - before.start)
                                                           + (run.end - run.start))
            seconds = (run.start - before.end) * per_byte
            gaps.append((elapsed, elapsed + seconds))
            yield np.zeros(int(round(seconds * rate)), np.float32), rate, False
            elapsed += seconds
        with ByteRange(path, run.start, run.end) as source:
            for mono, block_rate, last in _file_blocks(source, path, block_s,
                                                       final=number == len(runs) - 1):
                if rate is None:
                    rate = block_rate
                elif block_rate != rate:
                    raise AudioError(f"{path}: sample rate changes from {rate} to "
                                     f"{block_rate} Hz after a damaged stretch")
                elapsed += mono.shape[0] / rate
                yield mono, rate, last
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _WARNED:  # once per file, though each pass decodes it
        _WARNED.add(key)
        log.warning("%s: %d damaged stretch(es) of MP3 data (%s), kept as silence: no label "
                    "there", path, len(gaps),
                    ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in gaps[:5])
                    + (f", ... ({len(gaps) - 5} more)" if len(gaps) > 5 else ""))


_WARNED: set[tuple[str, int]] = set()


def _file_blocks(source, path: str, block_s: float, *, final: bool
                 ) -> Iterator[tuple[np.ndarray, int, bool]]:
    """(mono float32 block, native rate, last block?) of one decodable source (a path or a
    ``ByteRange``); ``final``: the source ends the recording."""
    import soundfile as sf  # noqa: PLC0415

    from agegender.features import MAX_RATE_HZ, MIN_RATE_HZ  # noqa: PLC0415
    from agegender.native_stderr import filtered_stderr  # noqa: PLC0415

    with filtered_stderr():  # libmpg123's lines about a damaged MP3; ours is the message
        audio = sf.SoundFile(source)
    with audio:
        native = audio.samplerate
        if not MIN_RATE_HZ <= native <= MAX_RATE_HZ or audio.channels <= 0:
            raise AudioError(f"{path}: implausible sample rate {native} Hz in the header "
                             f"(accepted: {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)")
        frames = max(1, int(block_s * native))
        while True:
            with filtered_stderr():
                data = audio.read(frames=frames, dtype="float32", always_2d=True)
            last = data.shape[0] < frames
            yield (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), native, \
                last and final
            if last:
                return


def gate_pass(path: str | os.PathLike, block_s: float) -> tuple[speech.FrameVoicing, float]:
    """Pass 1: the gate's measurements of every frame, and the duration, seconds."""
    parts, carry, total = [], np.zeros(0, np.float32), 0
    measured = 0  # frames at the start of ``carry`` already measured
    for (block,) in audio_blocks(path, (speech.GATE_RATE,), block_s):
        total += block.shape[0]
        joined = np.concatenate([carry, block])
        count = 0 if joined.shape[0] < speech.FRAME else (
            1 + (joined.shape[0] - speech.FRAME) // speech.HOP)
        if count > measured:
            voicing = speech.frame_voicing(joined[:(count - 1) * speech.HOP + speech.FRAME])
            parts.append(voicing.tail(measured))
        # The next block's frames are measured beside the last SIMILARITY_LAG of these,
        # so that each has the frame it is compared with (speech.stationary).
        keep = max(0, count - speech.SIMILARITY_LAG) if count > measured else 0
        carry = joined[keep * speech.HOP:]
        measured = max(count, measured) - keep
    return speech.FrameVoicing.concatenate(parts), total / speech.GATE_RATE


def window_audio(path, windows: list[tuple[float, float]], features, block_s: float, *,
                 also_rates: tuple[int, ...] = ()) -> Iterator[tuple[int, np.ndarray]]:
    """Pass 2: (window index, the window's audio float32 [samples]) per window long enough
    to analyse (``features.n_fft`` samples), in order, from a stream resampled to
    ``features.sample_rate``; only the audio of pending windows is kept. With
    ``also_rates``, the audio is a tuple: the window at ``features.sample_rate``, then at
    each of ``also_rates`` (the voice encoder's 16 kHz beside an 8-kHz model), each from its
    own resampled stream of the file."""
    rates = (features.sample_rate, *also_rates)
    buffers = [np.zeros(0, np.float32) for _ in rates]
    offsets = [0] * len(rates)  # sample of the recording where each buffer starts
    index = 0

    def bounds(k: int) -> tuple[int, int]:
        return tuple(int(round(t * rates[k])) for t in windows[index])

    def piece(k: int) -> np.ndarray:
        start, end = bounds(k)
        return buffers[k][max(0, start - offsets[k]):max(0, end - offsets[k])]

    def ready(finished: bool) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal index
        while index < len(windows):
            if not finished and any(bounds(k)[1] > offsets[k] + buffers[k].shape[0]
                                    for k in range(len(rates))):
                return  # more audio is coming
            pieces = tuple(piece(k) for k in range(len(rates)))
            if pieces[0].shape[0] >= features.n_fft:
                yield index, (pieces if also_rates else pieces[0])
            index += 1

    for blocks in audio_blocks(path, rates, block_s):
        for k, block in enumerate(blocks):
            buffers[k] = np.concatenate([buffers[k], block])
        yield from ready(finished=not any(block.shape[0] for block in blocks))
        for k in range(len(rates)):  # keep only the audio of pending windows
            keep_from = bounds(k)[0] if index < len(windows) else offsets[k] + len(buffers[k])
            drop = max(0, min(keep_from, offsets[k] + len(buffers[k])) - offsets[k])
            buffers[k], offsets[k] = buffers[k][drop:], offsets[k] + drop
    yield from ready(finished=True)  # the stream ended (its last block was empty)

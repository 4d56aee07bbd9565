"""Who speaks when: a long recording → segments ``(start, end, label, probability)``.

Two streaming passes over the file, each decoding ``block_s`` seconds at a time and
resampling block by block (``soxr.ResampleStream``), so memory does not grow with the length
of the recording:

1. the speech gate (``agegender.speech``) on every 20-ms frame → speech regions (pauses
   shorter than ``min_pause_s`` bridged, regions shorter than ``min_speech_s`` dropped);
2. the model's crop (``window_s``: a ``voice`` model's 2.56-s image, 3 s for ``paper``
   models, a typical clip's length) slid with ``hop_s`` over each speech region, each window
   turned into an image exactly as a clip is (``features.spectrogram_images``), probabilities
   per window.

Each 0.1-s step of speech gets the mean probabilities of the windows covering it; a Viterbi
pass with a switching penalty (``switch_penalty``, in nats) smooths the labels, and runs of
one label become segments. Everything outside the speech regions is one ``NO_SPEECH``
segment per stretch and never gets a class.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from collections.abc import Iterator

import numpy as np

from agegender import speech
from agegender.errors import AudioError, ParameterError

log = logging.getLogger(__name__)

NO_SPEECH = "no speech"
STEP_FRAMES = 5  # gate frames per decision step: 0.1 s


# Bounds of the flags that size allocations (TimelineParams refuses values outside them).
MIN_HOP_S = 0.05      # hops below the 0.1-s decision step add model calls, not resolution
MIN_WINDOW_S = 0.1
MAX_WINDOW_S = 60.0
MAX_BLOCK_S = 600.0


@dataclasses.dataclass(frozen=True)
class TimelineParams:
    """How a recording is cut into segments.

    Attributes:
        window_s: model window, seconds; 0 = the model's crop (fixed-time presets: the
            image width; ``paper``: ``PAPER_WINDOW_S``); else 0.1-60 s.
        hop_s: window hop, seconds; 0 = the window (windows side by side: half the model
            calls of a half-window hop, for 2x the speed; the Viterbi pass smooths the
            seams); else 0.05-60 s.
        min_pause_s: voiceless gaps shorter than this stay inside a speech region.
        min_speech_s: speech regions shorter than this are dropped.
        pad_s: each region widened by this much either side (onsets, unvoiced consonants).
        switch_penalty: Viterbi cost of a label change, nats; higher = fewer, longer
            segments.
        block_s: seconds decoded at a time, 1-600.
        min_voiced: the gate's share of voiced frames a file needs to be called speech at all
            (as for a clip); 0 = any voiced region counts.
    """

    window_s: float = 0.0
    hop_s: float = 0.0
    min_pause_s: float = 0.5
    min_speech_s: float = 0.3
    pad_s: float = 0.1
    switch_penalty: float = 8.0
    block_s: float = 60.0
    min_voiced: float = 0.0

    def __post_init__(self) -> None:
        for name in ("window_s", "hop_s", "min_pause_s", "min_speech_s", "pad_s",
                     "switch_penalty"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name}={value!r} must be a finite number >= 0")
        # The flags that size allocations, bounded before anything is decoded: a window's
        # audio and a decoded block are held in memory, and every hop adds a model window.
        for name, low, high, why in (
                ("window_s", MIN_WINDOW_S, MAX_WINDOW_S, "the audio of each window is held"),
                ("hop_s", MIN_HOP_S, MAX_WINDOW_S,
                 f"at most {1 / MIN_HOP_S:.0f} model windows per second of speech")):
            value = getattr(self, name)
            if value and not low <= value <= high:
                raise ParameterError(f"{name}={value!r} must be 0 (the default) or from {low} "
                                     f"to {high} s ({why})")
        if not (isinstance(self.block_s, numbers.Real) and math.isfinite(self.block_s)
                and 1 <= self.block_s <= MAX_BLOCK_S):
            raise ParameterError(f"block_s={self.block_s!r} must be from 1 to {MAX_BLOCK_S} s "
                                 f"(a block is decoded whole: {MAX_BLOCK_S} s of 384-kHz "
                                 "audio is 0.9 GB)")
        speech.check_min_voiced(self.min_voiced)


PAPER_WINDOW_S = 3.0  # paper models squeeze a whole clip; Common Voice clips are ~3-6 s


def model_window_s(features) -> float:
    """The span one model input covers, seconds: a fixed-time image's width, else 3 s."""
    if features.fixed_time:
        return features.image_shape[1] * features.hop_length / features.sample_rate
    return PAPER_WINDOW_S


@dataclasses.dataclass(frozen=True)
class Segment:
    """One stretch of a recording: ``label`` is a class name or ``NO_SPEECH`` (then
    ``probability`` is None)."""

    start: float
    end: float
    label: str
    probability: float | None

    def as_dict(self) -> dict:
        """JSON-ready form: times rounded to the millisecond (what the analysis resolves;
        float noise like 12.300000000000001 s helps no reader), probability to 4 places."""
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "probability": None if self.probability is None else round(self.probability, 4)}


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


def local_reference_db(rms_db: np.ndarray, span_s: float = 30.0) -> np.ndarray:
    """Each frame's loud level: the 95th-percentile RMS of its ``span_s`` stretch, so a
    quiet speaker an hour after a loud one is still measured against her own level."""
    span = max(1, int(span_s * speech.GATE_RATE / speech.HOP))
    reference = np.empty_like(rms_db)
    for start in range(0, rms_db.shape[0], span):
        reference[start:start + span] = np.percentile(rms_db[start:start + span], 95)
    return reference


def speech_regions(voiced: np.ndarray, params: TimelineParams, duration_s: float,
                   ) -> list[tuple[float, float]]:
    """Voiced frames [frames] → sorted, disjoint (start, end) seconds of speech."""
    frame_s = speech.HOP / speech.GATE_RATE
    runs = _runs(voiced)
    merged: list[list[float]] = []
    for start, stop in runs:
        begin, end = start * frame_s, stop * frame_s + speech.FRAME / speech.GATE_RATE
        if merged and begin - merged[-1][1] < params.min_pause_s:
            merged[-1][1] = end
        else:
            merged.append([begin, end])
    regions = []
    for begin, end in merged:
        if end - begin < params.min_speech_s:
            continue
        begin, end = max(0.0, begin - params.pad_s), min(duration_s, end + params.pad_s)
        if regions and begin <= regions[-1][1]:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((begin, end))
    return regions


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs of a bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def windows_in(regions: list[tuple[float, float]], window_s: float, hop_s: float,
               duration_s: float) -> list[tuple[float, float]]:
    """Model windows (start, end) seconds covering every region; a region shorter than a
    window gets one window centred on it (within the recording)."""
    windows = []
    for begin, end in regions:
        if end - begin <= window_s:
            centre = 0.5 * (begin + end)
            start = min(max(0.0, centre - 0.5 * window_s), max(0.0, duration_s - window_s))
            windows.append((start, min(duration_s, start + window_s)))
            continue
        count = int(math.ceil((end - begin - window_s) / hop_s)) + 1
        for start in np.linspace(begin, end - window_s, count):
            windows.append((float(start), float(start) + window_s))
    return windows


def window_audio(path, windows: list[tuple[float, float]], features, block_s: float
                 ) -> Iterator[tuple[int, np.ndarray]]:
    """Pass 2: (window index, the window's audio float32 [samples]) per window long enough
    to analyse, in order, from a stream resampled to ``features.sample_rate``; only the audio
    of pending windows is kept."""
    rate = features.sample_rate
    buffer, buffer_start, index = np.zeros(0, np.float32), 0, 0  # buffer_start: samples
    for (block,) in audio_blocks(path, (rate,), block_s):
        buffer = np.concatenate([buffer, block])
        buffer_end = buffer_start + buffer.shape[0]
        while index < len(windows):
            start, end = (int(round(t * rate)) for t in windows[index])
            if end > buffer_end and block.shape[0]:
                break  # more audio is coming
            piece = buffer[max(0, start - buffer_start):max(0, end - buffer_start)]
            if piece.shape[0] >= features.n_fft:
                yield index, piece
            index += 1
        keep_from = (int(round(windows[index][0] * rate)) if index < len(windows)
                     else buffer_end)
        drop = max(0, min(keep_from, buffer_end) - buffer_start)
        buffer, buffer_start = buffer[drop:], buffer_start + drop
    while index < len(windows):  # the stream ended (its last block was empty)
        start, end = (int(round(t * rate)) for t in windows[index])
        piece = buffer[max(0, start - buffer_start):max(0, end - buffer_start)]
        if piece.shape[0] >= features.n_fft:
            yield index, piece
        index += 1


def viterbi(log_probs: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Most likely label path [steps] of per-step log probabilities [steps, classes] when
    each change of label costs ``switch_penalty``."""
    steps, classes = log_probs.shape
    back = np.zeros((steps, classes), np.int32)
    score = log_probs[0].copy()
    for t in range(1, steps):
        best = int(np.argmax(score))
        switch = score[best] - switch_penalty
        stay = score >= switch
        back[t] = np.where(stay, np.arange(classes), best)
        score = np.where(stay, score, switch) + log_probs[t]
    path = np.empty(steps, np.int32)
    path[-1] = int(np.argmax(score))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def predict_windows(model, windows, path, features, block_s: float,
                    batch_size: int = 64) -> np.ndarray:
    """Probabilities [windows, classes] (NaN rows: a window too short to analyse). A
    window's inputs are made from its own audio exactly as a clip's are
    (``model_inputs.waveforms_inputs``, one crop each), ``batch_size`` windows at a time."""
    from agegender.model_inputs import waveforms_inputs  # noqa: PLC0415

    probabilities = np.full((len(windows), len(model.class_names)), np.nan, np.float32)
    indexes, pending = [], []
    for index, piece in window_audio(path, windows, features, block_s):
        indexes.append(index)
        pending.append(piece)
        if len(pending) == batch_size:
            probabilities[indexes] = model.predict(
                waveforms_inputs(pending, features, model.inputs))
            indexes, pending = [], []
    if pending:
        probabilities[indexes] = model.predict(waveforms_inputs(pending, features, model.inputs))
    return probabilities


def timeline(model, path: str | os.PathLike, params: TimelineParams | None = None, *,
             batch_size: int = 64) -> dict:
    """Segments of a recording (see the module docstring).

    Args:
        model: a loaded model (``checkpoints.open_model``): ``features``, ``class_names``,
            ``predict``.
        path: audio file of any length and format libsndfile reads.
        params: TimelineParams; None = defaults.
        batch_size: windows per model call.

    Returns:
        ``file``, ``duration`` (s), ``segments`` (list of Segment, covering 0..duration in
        order), ``voiced`` (the share of voiced frames), ``windows`` (model calls' inputs).

    Raises:
        AudioError: the file cannot be decoded (one line naming it).
    """
    params = params or TimelineParams()
    features = model.features
    window_s = params.window_s or model_window_s(features)
    hop_s = params.hop_s or window_s
    voicing, duration = gate_pass(path, params.block_s)
    if not voicing.frames:
        raise AudioError(f"{os.fspath(path)}: too short: {duration * 1000:.0f} ms of audio, "
                         "under one 40-ms frame of the speech gate")
    voiced = speech.voiced_frames(voicing, reference_db=local_reference_db(voicing.rms_db))
    share = float(voiced.mean())
    regions = speech_regions(voiced, params, duration)
    if share < params.min_voiced:
        regions = []
    windows = windows_in(regions, window_s, hop_s, duration)
    probabilities = predict_windows(model, windows, path, features, params.block_s,
                                    batch_size) if windows else np.zeros((0, 0))
    segments = label_segments(regions, windows, probabilities, model.class_names,
                              duration, params.switch_penalty)
    return {"file": os.fspath(path), "duration": duration, "segments": segments,
            "voiced": share, "windows": len(windows)}


def label_segments(regions, windows, probabilities, class_names, duration: float,
                   switch_penalty: float) -> list[Segment]:
    """Speech regions + window probabilities → segments covering [0, duration]."""
    step = STEP_FRAMES * speech.HOP / speech.GATE_RATE
    segments: list[Segment] = []
    cursor = 0.0
    window_starts = np.array([w[0] for w in windows]) if windows else np.zeros(0)
    longest = max((w[1] - w[0] for w in windows), default=0.0)
    for begin, end in regions:
        if begin > cursor:
            segments.append(Segment(cursor, begin, NO_SPEECH, None))
        segments += _region_segments(begin, end, windows, window_starts, longest,
                                     probabilities, class_names, step, switch_penalty)
        cursor = end
    if duration > cursor:
        segments.append(Segment(cursor, duration, NO_SPEECH, None))
    return segments


def _region_segments(begin, end, windows, window_starts, longest, probabilities, class_names,
                     step, switch_penalty) -> list[Segment]:
    """Labels of one speech region: windows' mean probabilities per step, Viterbi, runs."""
    steps = max(1, int(math.ceil((end - begin) / step)))
    centres = begin + (np.arange(steps) + 0.5) * step  # [steps] seconds
    sums = np.zeros((steps, len(class_names)))
    counts = np.zeros(steps)
    # Windows are sorted by start and no longer than the longest: only those starting
    # within [begin - longest, end) can cover this region.
    first = int(np.searchsorted(window_starts, begin - longest))
    last = int(np.searchsorted(window_starts, end))
    for index in range(first, last):
        start, stop = windows[index]
        if stop <= begin or not np.isfinite(probabilities[index]).all():
            continue
        covered = (centres >= start) & (centres < stop)
        sums[covered] += probabilities[index]
        counts[covered] += 1
    if not counts.any():  # every window was too short: the region has no class
        return [Segment(begin, end, NO_SPEECH, None)]
    filled = counts > 0
    if not filled.all():  # steps no window reaches take the nearest covered step's values
        nearest = np.flatnonzero(filled)
        pick = nearest[np.clip(np.searchsorted(nearest, np.arange(steps)), 0,
                               len(nearest) - 1)]
        sums, counts = sums[pick], counts[pick]
    mean = sums / counts[:, np.newaxis]  # [steps, classes]
    path = viterbi(np.log(np.maximum(mean, 1e-6)), switch_penalty)
    segments = []
    for label in np.unique(path):
        for first, stop in _runs(path == label):
            segments.append(Segment(
                begin + first * step, min(end, begin + stop * step), class_names[label],
                float(mean[first:stop, label].mean())))
    return sorted(segments, key=lambda s: s.start)

"""The speech gate: does a clip (or a window of a recording) hold a voice?

One decision per 20-ms frame, made on the waveform resampled to 8 kHz whatever the feature
preset, and used alike by preprocessing, inference, evaluation and the timeline, so that train
and serve never skew. A frame is *voiced* when all of these hold:

* loud enough: its RMS is above ``FLOOR_DBFS`` (an absolute floor: dither, hiss) and within
  ``RELATIVE_DB`` of the clip's loud frames (its 95th-percentile RMS);
* periodic: its normalised autocorrelation peaks above ``MIN_PERIODICITY`` at a lag of
  70-400 Hz (a voice's F0); noise, DC and dither are not periodic;
* not a pure tone: no single spectral peak holds more than ``MAX_PEAK_SHARE`` of its energy
  (a voice spreads its energy over many harmonics);
* not a steady note: it is not within half a run of a stretch of ``STEADY_RUN_S`` whose
  pitch stays within ``STEADY_RANGE``. A voice's F0 glides all the time;
  synthesised tones and most notes of keyboard music hold it. (Sung vowels and instruments
  with vibrato pass as voice: README, "Speech gate", states the limits.)
* not a click: its loudest 10 ms hold at most ``MAX_BURST_SHARE`` of its energy. A click
  or a tone burst (a metronome, a keyboard) is periodic inside its frame but over in a few
  milliseconds; a voice sustains its energy across the 40-ms frame.
* not a stationary sound: its magnitude spectrum is not within ``STATIONARY_SIMILARITY``
  (cosine) of the spectrum ``SIMILARITY_LAG`` frames before it through a run of
  ``STATIONARY_RUN_S``. A buzz or a mains hum repeats its spectrum exactly even when its F0
  estimate jumps an octave; a voice's formants and harmonics move within 0.1 s.
* not a lone flicker: a voiced frame with no voiced neighbour needs a periodicity of at
  least ``LONE_MIN_PERIODICITY``. A syllable holds its period for several frames; a chord's
  common period (near the 70-Hz floor) clears ``MIN_PERIODICITY`` one frame at a time.

A clip holds speech when at least ``min_voiced`` of its frames are voiced.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agegender.config import check_min_voiced  # noqa: F401  (callers use speech.check_min_voiced)
from agegender.errors import AudioError

GATE_RATE = 8_000        # Hz the gate analyses at: one decision whatever the model's rate
FRAME = 320              # samples at GATE_RATE: 40 ms, two periods of a 70 Hz voice
HOP = 160                # samples: 20 ms between decisions
_FFT = 1024              # >= 2 * FRAME: the autocorrelation does not wrap
_LAGS = (GATE_RATE // 400, GATE_RATE // 70 + 1)  # lags of 400..70 Hz
FLOOR_DBFS = -55.0       # ±1 LSB of 16 bit is about -90 dBFS, quiet room hiss -60
RELATIVE_DB = 35.0       # frames this far below the clip's loud frames are pauses
MIN_PERIODICITY = 0.6    # noise stays below 0.3, chords near 0.5, voiced speech 0.65-0.99
MIN_DIP = 0.3            # the autocorrelation must fall this far before its period peak
MAX_PEAK_SHARE = 0.85    # a sine puts all its energy in one peak
STEADY_RANGE = 0.006     # F0 spread (max/min - 1) within which a pitch "holds"
STEADY_RUN_S = 0.12      # a pitch held this long is a note, not a voice
DEFAULT_MIN_VOICED = 0.1  # share of a clip's frames that must be voiced
# Voiced Common Voice frames put 0.38 of their energy in their loudest 10 ms (median), 0.84
# at the 99th percentile; 10-20 ms tone-burst clicks 0.97-1.0.
MAX_BURST_SHARE = 0.93
BURST = 80               # samples at GATE_RATE: the 10 ms a click is over in
# Spectral similarity of a voiced Common Voice frame to the frame 0.1 s before it: 0.63
# (median), 0.98 at the 99.9th percentile, and never for a run of 0.12 s; a steady square
# wave or hum: 0.999+.
SIMILARITY_LAG = 5       # frames: 0.1 s
STATIONARY_SIMILARITY = 0.99
STATIONARY_RUN_S = 0.12
# Lone voiced frames of struck chords (bench/timeline_bench.py's music) peak at 0.60-0.72;
# 0.7 turns 4 of 25 such clips from speech to none and 10 of 3,320 Common Voice clips
# (99.49 % -> 99.19 % called speech).
LONE_MIN_PERIODICITY = 0.7


class NoSpeechError(AudioError):
    """A clip decodes but holds no voice; ``voiced`` is its share of voiced frames."""

    def __init__(self, message: str, voiced: float = 0.0):
        super().__init__(message)
        self.voiced = voiced


@dataclasses.dataclass(frozen=True)
class FrameVoicing:
    """Per-frame measurements of the gate, each [frames] (frame t starts at t * HOP / 8 kHz).

    Attributes:
        rms_db: frame RMS, dBFS (DC removed).
        periodicity: normalised autocorrelation peak at 70-400 Hz, 0..1.
        f0_hz: the lag of that peak as a frequency, Hz.
        peak_share: share of the frame's energy in its strongest spectral peak, 0..1.
        burst_share: share of the frame's energy in its loudest 10 ms, 0.25..1.
        similarity: cosine similarity of the frame's magnitude spectrum to that of the frame
            ``SIMILARITY_LAG`` before it, 0..1 (NaN for the first frames).
    """

    rms_db: np.ndarray
    periodicity: np.ndarray
    f0_hz: np.ndarray
    peak_share: np.ndarray
    burst_share: np.ndarray
    similarity: np.ndarray

    @property
    def frames(self) -> int:
        """Number of frames."""
        return int(self.rms_db.shape[0])

    def tail(self, start: int) -> FrameVoicing:
        """The frames from ``start`` on."""
        return FrameVoicing(*(getattr(self, f.name)[start:] for f in dataclasses.fields(self)))

    @staticmethod
    def concatenate(parts: list[FrameVoicing]) -> FrameVoicing:
        """Joins the measurements of consecutive blocks."""
        return FrameVoicing(*(np.concatenate([getattr(p, f.name) for p in parts]) if parts
                              else np.zeros(0, np.float32)
                              for f in dataclasses.fields(FrameVoicing)))


def to_gate_rate(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """[samples] at ``sample_rate`` → float32 [samples'] at ``GATE_RATE``."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if sample_rate == GATE_RATE:
        return waveform
    import soxr  # noqa: PLC0415

    return soxr.resample(waveform, sample_rate, GATE_RATE, quality="MQ").astype(np.float32,
                                                                            copy=False)


_WINDOW_CACHE: dict[str, np.ndarray] = {}


def _window() -> tuple[np.ndarray, np.ndarray]:
    """Hann window [FRAME] and its own autocorrelation [_LAGS[1]] (to undo its taper),
    float32 both: the frames' autocorrelations stay float32 (half the memory traffic)."""
    if not _WINDOW_CACHE:
        window = np.hanning(FRAME + 2)[1:-1].astype(np.float32)
        spectrum = np.fft.rfft(window, _FFT)
        auto = np.fft.irfft(np.abs(spectrum) ** 2, _FFT)[:_LAGS[1]]
        _WINDOW_CACHE["window"] = window
        _WINDOW_CACHE["auto"] = (auto / auto[0]).astype(np.float32)
    return _WINDOW_CACHE["window"], _WINDOW_CACHE["auto"]


def frame_voicing(waveform: np.ndarray, *, loud_only: bool = False) -> FrameVoicing:
    """Measures every full frame of a waveform at ``GATE_RATE``.

    Args:
        waveform: float32 [samples] at 8 kHz. Frames start every ``HOP`` samples; a tail
            shorter than ``FRAME`` gives no frame. The first ``SIMILARITY_LAG`` frames have
            no ``similarity`` (NaN): a stream measured in blocks overlaps them
            (``timeline.gate_pass``).
        loud_only: measure the spectral cues only where ``voiced_frames`` with the clip's
            own reference can use them: the loud frames (``loud_frames``) and the frames
            their similarity looks back to. Every other frame gets periodicity 0, F0 0,
            peak and burst share 1 and no similarity, so it is never voiced: the same
            decisions, without the spectra of the quiet quarter of a Common Voice clip.

    Returns:
        FrameVoicing of ``1 + (samples - FRAME) // HOP`` frames (0 when shorter than FRAME).
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.shape[0] < FRAME:
        return FrameVoicing.concatenate([])
    frames = np.lib.stride_tricks.sliding_window_view(waveform, FRAME)[::HOP]  # [n, FRAME]
    centred = frames - frames.mean(axis=1, keepdims=True)  # DC is not a voice
    energy_sum = np.einsum("nf,nf->n", centred, centred)  # [n]
    rms_db = 20.0 * np.log10(np.maximum(np.sqrt(energy_sum / FRAME), 1e-7)).astype(np.float32)
    count = rms_db.shape[0]
    if not loud_only:
        return FrameVoicing(rms_db, *_spectral_cues(centred, energy_sum, None))
    loud = loud_frames(rms_db, percentile_95(rms_db))
    wanted = loud.copy()
    wanted[:-SIMILARITY_LAG] |= loud[SIMILARITY_LAG:]  # each loud frame's look-back
    rows = np.flatnonzero(wanted)
    later = np.flatnonzero(loud[SIMILARITY_LAG:]) + SIMILARITY_LAG  # [m] frame numbers
    index = np.zeros(count, np.intp)
    index[rows] = np.arange(rows.shape[0])  # frame number -> row of the measured frames
    pairs = index[later], index[later - SIMILARITY_LAG]
    cues = _spectral_cues(centred[rows], energy_sum[rows], pairs)
    periodicity, f0, peak_share, burst_share = (
        np.full(count, fill, np.float32) for fill in (0.0, 0.0, 1.0, 1.0))
    similarity = np.full(count, np.nan, np.float32)
    for whole, part in zip((periodicity, f0, peak_share, burst_share), cues[:4], strict=True):
        whole[rows] = part
    similarity[later] = cues[4]
    return FrameVoicing(rms_db, periodicity, f0, peak_share, burst_share, similarity)


def _spectral_cues(centred: np.ndarray, energy_sum: np.ndarray,
                   pairs: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, ...]:
    """The cues of frames [n, FRAME] (DC removed) with their energies [n]: periodicity, F0,
    peak share and burst share, each float32 [n], and the similarity: [n] (NaN for the
    first ``SIMILARITY_LAG``) when ``pairs`` is None, else [m] of the m rows ``pairs[0]``
    against rows ``pairs[1]``."""
    import scipy.fft  # noqa: PLC0415

    window, window_auto = _window()
    # scipy's pocketfft vectorises across rows: half the CPU of numpy's on these [n, 1024]
    # float32 batches (the gate's largest cost on a long recording), same float32 results
    # to rounding.
    spectrum = scipy.fft.rfft(centred * window, _FFT, axis=1)  # [n, _FFT/2 + 1] complex64
    squares = spectrum.view(np.float32)  # [n, _FFT + 2]: re, im interleaved
    squares *= squares
    power = squares[:, 0::2] + squares[:, 1::2]  # [n, _FFT/2 + 1]
    total = power.sum(axis=1)  # [n]
    peak, f0 = _periodicity(power, window_auto)
    peak_share = _peak_share(power) / np.maximum(total, 1e-20)
    burst_share = _loudest_burst(centred) / np.maximum(energy_sum, 1e-20)
    # Cosine of the magnitude spectra: |a|^2 is the frame's total power.
    magnitude = np.sqrt(power)  # [n, bins]
    norms = np.maximum(np.sqrt(total), 1e-12)
    if pairs is None:
        similarity = np.full(len(peak), np.nan, np.float32)
        similarity[SIMILARITY_LAG:] = np.einsum(
            "nf,nf->n", magnitude[SIMILARITY_LAG:], magnitude[:-SIMILARITY_LAG]) / (
            norms[SIMILARITY_LAG:] * norms[:-SIMILARITY_LAG])
    else:
        later, before = pairs
        similarity = np.einsum("nf,nf->n", magnitude[later], magnitude[before]) / (
            norms[later] * norms[before])
    return (np.clip(peak, 0, 1).astype(np.float32), f0.astype(np.float32),
            peak_share.astype(np.float32), burst_share.astype(np.float32),
            similarity.astype(np.float32, copy=False))


def _periodicity(power: np.ndarray, window_auto: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normalised autocorrelation's peak at 70-400 Hz and its F0, each [n], from the
    frames' power spectra [n, _FFT/2 + 1].

    The even bins of the zero-padded ``_FFT``-point spectrum are the ``_FFT / 2``-point
    spectrum, whose inverse is the autocorrelation without wrap-around for lags up to
    ``_FFT / 2 - FRAME`` (192 > the 115 of 70 Hz): half the inverse FFT's work.
    """
    import scipy.fft  # noqa: PLC0415

    low, high = _LAGS
    auto = scipy.fft.irfft(power[:, ::2], _FFT // 2, axis=1)[:, :high]  # [n, lags]
    energy = np.maximum(auto[:, 0], 1e-20)
    normalised = auto / energy[:, np.newaxis] / window_auto  # unbiased by the taper
    best = low + np.argmax(normalised[:, low:high], axis=1)  # [n]
    rows = np.arange(len(best))
    peak = normalised[rows, best]
    # Low-pass noise (rumble) correlates at short lags without a period: a true period's
    # peak rises again after a dip.
    dip = np.minimum.accumulate(normalised[:, 1:high], axis=1)[rows, best - 1]
    peak = np.where(peak - dip >= MIN_DIP, peak, 0.0)
    # Parabolic interpolation of the peak: F0 to a fraction of a lag, for the steadiness cue.
    left = normalised[rows, best - 1]
    right = normalised[rows, np.minimum(best + 1, high - 1)]
    curve = left - 2.0 * peak + right
    shift = np.where(curve < 0, 0.5 * (left - right) / np.where(curve < 0, curve, -1.0), 0.0)
    return peak, GATE_RATE / (best + np.clip(shift, -0.5, 0.5))


_PEAK_HALF_WIDTH = 8  # bins: ±62 Hz around the largest bin (a Hann main lobe)


def _peak_share(power: np.ndarray) -> np.ndarray:
    """Energy in each frame's strongest spectral peak (its largest bin ±``_PEAK_HALF_WIDTH``
    bins, cut at the spectrum's ends), [n], from power spectra [n, bins]."""
    top = np.argmax(power, axis=1)  # [n]
    offsets = np.arange(-_PEAK_HALF_WIDTH, _PEAK_HALF_WIDTH + 1)
    columns = top[:, np.newaxis] + offsets  # [n, 17]
    inside = (columns >= 0) & (columns < power.shape[1])
    band = np.take_along_axis(power, np.clip(columns, 0, power.shape[1] - 1), axis=1)
    return np.where(inside, band, 0.0).sum(axis=1)


def _loudest_burst(centred: np.ndarray) -> np.ndarray:
    """Energy of each frame's loudest ``BURST`` samples, [n], from frames [n, FRAME] with
    their DC removed: the largest running sum of the squares."""
    cumulative = np.cumsum(centred * centred, axis=1)  # [n, FRAME]
    later = (cumulative[:, BURST:] - cumulative[:, :-BURST]).max(axis=1)  # windows from 1 on
    return np.maximum(later, cumulative[:, BURST - 1])  # and the window at 0


def voiced_frames(voicing: FrameVoicing, *, reference_db: float | None = None) -> np.ndarray:
    """The gate's decision per frame, bool [frames].

    Args:
        voicing: ``frame_voicing`` of a clip (or of a whole recording).
        reference_db: the loud level the relative threshold is taken from; None: the 95th
            percentile of these frames' RMS (a clip's own level).
    """
    if not voicing.frames:
        return np.zeros(0, bool)
    if reference_db is None:
        reference_db = percentile_95(voicing.rms_db)
    loud = loud_frames(voicing.rms_db, reference_db)
    voiced = loud & (voicing.periodicity >= MIN_PERIODICITY) & (
        voicing.peak_share <= MAX_PEAK_SHARE) & (voicing.burst_share <= MAX_BURST_SHARE)
    voiced &= ~steady_pitch(voicing.f0_hz, voiced) & ~stationary(voicing.similarity, loud)
    return voiced & ~weak_lone_frames(voicing.periodicity, voiced)


def loud_frames(rms_db: np.ndarray, reference_db: float) -> np.ndarray:
    """Frames above ``FLOOR_DBFS`` and within ``RELATIVE_DB`` of ``reference_db``, bool
    [frames]: the only ones the gate may call voiced."""
    return (rms_db > FLOOR_DBFS) & (rms_db > reference_db - RELATIVE_DB)


def percentile_95(values: np.ndarray) -> float:
    """``np.percentile(values, 95)`` (linear interpolation, numpy's rounding) from the two
    order statistics it needs: a partition, not numpy's general quantile machinery, which
    costs more than the gate's decisions on a clip."""
    values = np.asarray(values)
    position = 0.95 * (values.shape[0] - 1)
    below = int(position)
    above = min(below + 1, values.shape[0] - 1)
    ordered = np.partition(values, (below, above))
    low, high = ordered[below], ordered[above]
    fraction = position - below
    # numpy's _lerp: from the nearer end, so that the result never leaves [low, high].
    step = np.subtract(high, low)
    if fraction >= 0.5:
        return float(high - step * (1 - fraction))
    return float(low + step * fraction)


def weak_lone_frames(periodicity: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Voiced frames without a voiced neighbour whose periodicity is under
    ``LONE_MIN_PERIODICITY``, bool [frames]: the flicker of a chord, not a syllable."""
    padded = np.pad(voiced, 1)  # [frames + 2]
    lone = voiced & ~padded[:-2] & ~padded[2:]
    return lone & (periodicity < LONE_MIN_PERIODICITY)


def stationary(similarity: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """Frames inside a run of ``STATIONARY_RUN_S`` of loud frames whose spectrum each
    repeats the one ``SIMILARITY_LAG`` frames before within ``STATIONARY_SIMILARITY`` (a
    buzz, a hum), widened by the lag, bool [frames]. Loud, not voiced: the other cues
    (an octave jump of F0, a peak share) must not break the run."""
    run = max(2, int(round(STATIONARY_RUN_S * GATE_RATE / HOP)))
    with np.errstate(invalid="ignore"):  # NaN similarity: not stationary
        repeats = loud & (similarity >= STATIONARY_SIMILARITY)
    if repeats.shape[0] < run:
        return np.zeros(loud.shape, bool)
    held = np.flatnonzero(_running(repeats, run, np.logical_and))  # [held, held + run) repeat
    return _covered(np.maximum(held - SIMILARITY_LAG, 0),
                    np.minimum(held + run, loud.shape[0]), loud.shape[0])


def steady_pitch(f0_hz: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Frames inside a stretch of ``STEADY_RUN_S`` of voiced frames whose F0 stays within
    ``STEADY_RANGE``: held notes and tones, bool [frames]. A voice's F0 glides (intonation,
    jitter) by more within 0.2 s."""
    run = max(2, int(round(STEADY_RUN_S * GATE_RATE / HOP)))
    if voiced.shape[0] < run:
        return np.zeros(voiced.shape, bool)
    log_f0 = np.where(voiced, np.log(np.maximum(f0_hz, 1.0)), np.nan)
    with np.errstate(invalid="ignore"):  # NaN (an unvoiced frame in the window) propagates
        spread = _running(log_f0, run, np.maximum) - _running(log_f0, run, np.minimum)
        held = np.flatnonzero(spread < np.log1p(STEADY_RANGE))
    # Every frame of a held window, widened by half a run each side: the glide from one note
    # into the next is music too.
    return _covered(np.maximum(held - run // 2, 0),
                    np.minimum(held + run + run // 2, voiced.shape[0]), voiced.shape[0])


def _running(values: np.ndarray, run: int, combine: np.ufunc) -> np.ndarray:
    """``combine`` (a binary ufunc: maximum, minimum, logical_and) over each window of
    ``run`` consecutive values, [n - run + 1]: ``run - 1`` whole-array calls, cheaper than
    reducing a [n - run + 1, run] window view row by row."""
    count = values.shape[0] - run + 1
    out = values[:count].copy()
    for shift in range(1, run):
        combine(out, values[shift:shift + count], out=out)
    return out


def _covered(starts: np.ndarray, stops: np.ndarray, frames: int) -> np.ndarray:
    """Frames inside any of the spans [starts[i], stops[i]), bool [frames]."""
    marks = (np.bincount(starts, minlength=frames + 1)
             - np.bincount(stops, minlength=frames + 1))  # [frames + 1]
    return np.cumsum(marks[:-1]) > 0


def voiced_share(waveform: np.ndarray, sample_rate: int) -> float:
    """Share of a clip's frames that are voiced, 0..1 (0 for a clip under one frame)."""
    voiced = voiced_frames(frame_voicing(to_gate_rate(waveform, sample_rate), loud_only=True))
    return float(voiced.mean()) if voiced.size else 0.0


def speech_problem(waveform: np.ndarray, sample_rate: int, min_voiced: float) -> str:
    """Why a decoded clip is not speech ("" when it is): ``min_voiced`` of its frames must
    be voiced. 0 turns the gate off."""
    if min_voiced <= 0:
        return ""
    share = voiced_share(waveform, sample_rate)
    if share < min_voiced:
        return no_speech_reason(share, min_voiced)
    return ""


def no_speech_reason(share: float, min_voiced: float) -> str:
    """The one-line reason a clip is not speech."""
    return (f"no speech: {share:.0%} of frames voiced (need {min_voiced:.0%}; "
            "--min_voiced sets it)")


def min_duration_problem(waveform: np.ndarray, sample_rate: int, min_seconds: float) -> str:
    """Why a clip is too short for its preset ("" when it is long enough)."""
    seconds = waveform.shape[0] / sample_rate
    if seconds < min_seconds:
        return (f"too short: {seconds * 1000:.0f} ms of audio, the feature preset needs at "
                f"least {min_seconds * 1000:.0f} ms")
    return ""

"""F0 of a waveform: the voiced frames' F0, their median, and the F0 statistics a
``--pitch_input`` model reads (``pitch_features``). Signal functions only, TF-free.

The estimator is ``librosa.yin`` on 8 kHz audio, gated by frame energy and by periodicity
(normalised autocorrelation at the estimated period), because yin returns a value for every
frame, noise and silence included. Measured against ``librosa.pyin`` (same 8 kHz, 1024-sample
frames) on synthetic 5-s voices, F0 80-300 Hz in 20 Hz steps, 11 harmonics, ±3 % intonation,
30 % unvoiced gaps, noise at 0.02: median F0 within 0.2 % (yin+gate) and 0.33 % (pyin) of the
truth, both nan on white noise and silence; 8-18 ms vs 130-430 ms per clip on a shared
2-core CPU (docs/experiments.md, "F0 estimator"). pyin is kept as ``method="pyin"`` for checking.

The clip-level baseline built on it (cache, threshold fit) is ``pitch.py``.
"""

from __future__ import annotations

import numpy as np

from agegender.errors import ParameterError

PITCH_RATE = 8_000  # Hz; F0 ≤ 400 Hz needs nothing above 4 kHz, and 8 kHz halves the cost
FMIN, FMAX = 60.0, 400.0  # Hz, the range of adult (and most teen) speaking F0
FRAME = 1024  # samples at 8 kHz = 128 ms: several periods of a 60 Hz voice
HOP = 256  # samples = 32 ms


def _frames(waveform: np.ndarray) -> np.ndarray:
    """[samples] → [frames, FRAME], centred with zero padding as librosa.yin frames them."""
    padded = np.pad(waveform, FRAME // 2)
    if padded.shape[0] < FRAME:
        padded = np.pad(padded, (0, FRAME - padded.shape[0]))
    return np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP]


def voiced_f0(waveform: np.ndarray, sample_rate: int, *, min_periodicity: float = 0.5,
              energy_range_db: float = 35.0, method: str = "yin") -> np.ndarray:
    """F0 of each voiced frame.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.
        min_periodicity: a frame counts as voiced when the normalised autocorrelation at its
            estimated period is at least this (1 = perfectly periodic, ~0 = noise).
        energy_range_db: frames quieter than the loudest by more than this are silence.
        method: ``yin`` (fast, gated here) or ``pyin`` (librosa's voicing HMM; ~100x slower).

    Returns:
        F0 of the voiced frames, Hz, shape [voiced_frames] (empty when none).
    """
    from agegender.numba_cache import prepare_numba_cache  # noqa: PLC0415

    prepare_numba_cache()  # before numba loads: a bad compiled-code cache is caught
    import librosa  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    if sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate} must be positive")
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ParameterError(f"waveform must be 1-D [samples], got shape {waveform.shape}")
    if sample_rate != PITCH_RATE:
        waveform = soxr.resample(waveform, sample_rate, PITCH_RATE, quality="HQ")
    if waveform.shape[0] < FRAME // 2 or not np.any(waveform):
        return np.zeros(0)
    if method == "pyin":
        f0, voiced, _ = librosa.pyin(waveform, fmin=FMIN, fmax=FMAX, sr=PITCH_RATE,
                                     frame_length=FRAME, hop_length=HOP)
        return f0[voiced & np.isfinite(f0)]
    if method != "yin":
        raise ParameterError(f"method={method!r} is not one of yin, pyin")
    f0 = librosa.yin(waveform, fmin=FMIN, fmax=FMAX, sr=PITCH_RATE, frame_length=FRAME,
                     hop_length=HOP)  # [frames]
    frames = _frames(waveform)[: f0.shape[0]]  # [frames, FRAME]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))  # [frames]
    loud = (rms > 1e-4) & (20 * np.log10(np.maximum(rms, 1e-12) / rms.max())
                           > -energy_range_db)
    # Periodicity at the estimated period T: corr(x[:-T], x[T:]) over the frame.
    periods = np.clip(np.rint(PITCH_RATE / f0).astype(int), 1, FRAME - 1)  # [frames]
    periodic = np.zeros(f0.shape[0], dtype=np.bool_)
    for i in np.flatnonzero(loud):  # ~150 frames per 5 s: the loop is cheap
        head, tail = frames[i, : FRAME - periods[i]], frames[i, periods[i]:]
        denominator = np.sqrt(np.dot(head, head) * np.dot(tail, tail))
        periodic[i] = denominator > 0 and np.dot(head, tail) / denominator >= min_periodicity
    return f0[loud & periodic]


def median_f0(waveform: np.ndarray, sample_rate: int, *, min_voiced_frames: int = 3,
              method: str = "yin") -> float:
    """Median F0 over the voiced frames of a waveform.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.
        min_voiced_frames: fewer voiced frames than this (about 0.1 s) gives nan.
        method: ``yin`` or ``pyin`` (see ``voiced_f0``).

    Returns:
        Hz, or nan for silence, noise and clips too short to tell.
    """
    f0 = voiced_f0(waveform, sample_rate, method=method)
    return float(np.median(f0)) if f0.shape[0] >= min_voiced_frames else float("nan")


# The clip's F0 statistics that a ``--pitch_input`` model reads beside its spectrogram
# (``model.build_model``): octaves relative to 150 Hz (near the male/female boundary, so the
# values sit around 0 and need no learnt scaling) and the share of voiced frames. A clip
# without enough voiced frames gets 0 for the three F0 values and 0 for ``has_f0``.
PITCH_FEATURES: tuple[str, ...] = ("log2_median_f0", "log2_f0_p10", "log2_f0_p90",
                                   "voiced_share", "has_f0")
PITCH_REFERENCE_HZ = 150.0
# Typical values and spreads of the statistics over adult speech (men ~120 Hz, women
# ~210 Hz, about half the frames voiced), by which a model centres and scales them.
PITCH_CENTRE: tuple[float, ...] = (0.0, -0.2, 0.2, 0.5, 1.0)
PITCH_SPREAD: tuple[float, ...] = (0.5, 0.5, 0.5, 0.25, 0.25)


def pitch_features(waveform: np.ndarray, sample_rate: int, *,
                   min_voiced_frames: int = 3) -> np.ndarray:
    """The F0 statistics of a waveform, as a ``--pitch_input`` model reads them.

    Preprocessing (stored in each PNG, then in the TFRecords) and inference
    (``features.clip_inputs``) both call this on the waveform that the spectrogram is made
    from, so train and serve see the same values.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.
        min_voiced_frames: fewer voiced frames than this (about 0.1 s) count as no F0.

    Returns:
        float32 [len(PITCH_FEATURES)]: log2(median F0 / 150 Hz), log2(10th percentile /
        150 Hz), log2(90th percentile / 150 Hz), voiced frames / all frames (0-1),
        1.0 when the F0 values are measured (0.0 and zeros when not).
    """
    f0 = voiced_f0(waveform, sample_rate)  # [voiced frames], Hz
    frames = max(1, 1 + int(np.asarray(waveform).shape[0] * PITCH_RATE / sample_rate) // HOP)
    share = min(1.0, f0.shape[0] / frames)
    if f0.shape[0] < min_voiced_frames:
        return np.array([0.0, 0.0, 0.0, share, 0.0], np.float32)
    octaves = np.log2(np.percentile(f0, [50, 10, 90]) / PITCH_REFERENCE_HZ)
    return np.array([*octaves, share, 1.0], np.float32)

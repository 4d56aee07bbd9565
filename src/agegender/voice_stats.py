"""A clip's voice statistics: the second input of a ``--pitch_input`` model.

Two kinds of evidence that a spectrogram CNN trained on a few thousand clips uses poorly:

* F0 (``f0.pitch_features``): median, 10th and 90th percentile in octaves around 150 Hz,
  the voiced share, whether F0 was measured.
* The spectral envelope: the mean and standard deviation over the clip's loud frames of
  MFCC 1-20 (c0, the level, is left out) of the 0-4 kHz band. Vocal-tract length shows in
  it (men's formants are ~15 % lower), which tells apart the men whose F0 sits in the
  women's range: on Common Voice (``../shared/cv-sample``, speaker-disjoint), a logistic
  regression on F0 alone gives gender UAR 0.94 on the test speakers, on F0 and the
  envelope 0.96 (dev 0.94 → 0.97).

Both are computed at 8 kHz whatever the preset's rate, so every feature preset stores the
same values, by the one call that preprocessing and inference share
(``features.waveform_pitch``). TF-free.
"""
from __future__ import annotations

import functools

import numpy as np

from agegender.f0 import PITCH_CENTRE, PITCH_FEATURES, PITCH_RATE, PITCH_SPREAD, pitch_features

ENVELOPE_RATE = 8_000  # Hz: the band every preset and telephone channel has
ENVELOPE_N_FFT = 256  # 32 ms at 8 kHz
ENVELOPE_HOP = 80  # 10 ms
ENVELOPE_MELS = 32  # bands over 50-4000 Hz
ENVELOPE_COEFFICIENTS = 20  # MFCC 1-20
ENVELOPE_RANGE_DB = 30.0  # frames within this of the loudest count as the voice

ENVELOPE_FEATURES: tuple[str, ...] = (
    tuple(f"mfcc{i}_mean" for i in range(1, ENVELOPE_COEFFICIENTS + 1))
    + tuple(f"mfcc{i}_std" for i in range(1, ENVELOPE_COEFFICIENTS + 1)))
# Mean and standard deviation of each over the 2,382 training clips of cv-sample (real
# Common Voice speech, 58 languages), by which a model centres and scales them.
ENVELOPE_CENTRE: tuple[float, ...] = (
    52.7, 15.1, 10.0, -1.8, -0.4, -3.8, -0.3, -1.8, -0.8, 0.5,
    -0.6, -0.3, 0.1, -1.1, -0.2, -1.7, -0.4, -1.4, -0.3, -0.9,
    27.3, 21.9, 16.0, 11.5, 10.1, 8.8, 8.1, 7.1, 6.4, 6.0,
    5.5, 5.2, 4.9, 4.7, 4.4, 4.2, 4.0, 3.8, 3.7, 3.5)
ENVELOPE_SPREAD: tuple[float, ...] = (
    17.0, 12.4, 9.6, 7.4, 5.8, 5.1, 4.7, 4.2, 3.8, 3.6,
    2.9, 2.8, 2.6, 2.4, 2.4, 2.0, 2.1, 1.7, 1.7, 1.5,
    7.6, 5.5, 3.8, 2.6, 2.0, 1.7, 1.6, 1.3, 1.1, 1.2,
    1.1, 1.2, 1.2, 1.3, 1.3, 1.4, 1.4, 1.4, 1.4, 1.4)

# The whole vector, in the order it is stored (`.pitch.f32` files, shards) and fed to a model.
STAT_NAMES: tuple[str, ...] = PITCH_FEATURES + ENVELOPE_FEATURES
STAT_CENTRE: tuple[float, ...] = PITCH_CENTRE + ENVELOPE_CENTRE
STAT_SPREAD: tuple[float, ...] = PITCH_SPREAD + ENVELOPE_SPREAD


def envelope_frames(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """MFCC 1-20 of the loud frames of a waveform: what ``envelope_features`` summarises.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.

    Returns:
        float32 [loud frames, ENVELOPE_COEFFICIENTS] (dB-scaled cepstral units), one row per
        10 ms frame of the 8 kHz signal within ``ENVELOPE_RANGE_DB`` of the loudest; [0, 20]
        for a waveform shorter than one frame or without energy.
    """
    import soxr  # noqa: PLC0415

    waveform = np.asarray(waveform, dtype=np.float32)
    if sample_rate != ENVELOPE_RATE:
        waveform = soxr.resample(waveform, sample_rate, ENVELOPE_RATE, quality="HQ")
    if waveform.shape[0] < ENVELOPE_N_FFT or not np.any(waveform):
        return np.zeros((0, ENVELOPE_COEFFICIENTS), np.float32)
    power = _power_frames(waveform)  # [frames, bins]
    energy = power.sum(axis=1)  # [frames]
    loud = 10 * np.log10(energy / energy.max() + 1e-12) > -ENVELOPE_RANGE_DB
    mel_basis, dct = _envelope_bases()
    # np.einsum rather than @: a BLAS call this small costs more in OpenBLAS thread
    # wake-ups than in arithmetic on a shared 2-core machine.
    mel = np.einsum("fb,mb->fm", power, mel_basis)  # [frames, mels]
    # librosa.power_to_db(mel + 1e-10) with its defaults: ref 1, amin 1e-10, top_db 80.
    log_mel = 10.0 * np.log10(np.maximum(mel + 1e-10, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 80.0)
    return np.einsum("fm,cm->fc", log_mel[loud], dct).astype(np.float32)  # [loud, 20]


def _power_frames(waveform: np.ndarray) -> np.ndarray:
    """|STFT|^2 as ``librosa.stft(n_fft=ENVELOPE_N_FFT, hop_length=ENVELOPE_HOP)`` makes it
    (centred, zero padding, periodic Hann), frames first: float32 [frames, n_fft / 2 + 1].
    Done here with numpy's rfft because librosa's STFT set-up costs more than the transform
    on a 5-s clip."""
    padded = np.pad(waveform, ENVELOPE_N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, ENVELOPE_N_FFT)[::ENVELOPE_HOP]
    spectrum = np.fft.rfft(frames * _hann(), axis=1)  # [frames, bins]
    return (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)


@functools.cache
def _hann() -> np.ndarray:
    """Periodic Hann window of ENVELOPE_N_FFT samples (scipy's ``get_window("hann")``)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(ENVELOPE_N_FFT) / ENVELOPE_N_FFT)
            ).astype(np.float32)


@functools.cache
def _envelope_bases() -> tuple[np.ndarray, np.ndarray]:
    """librosa's mel filterbank [ENVELOPE_MELS, bins] over 50-4000 Hz, and the rows 1-20 of
    the orthonormal DCT-II [ENVELOPE_COEFFICIENTS, ENVELOPE_MELS] that ``librosa.feature.mfcc``
    applies, built once."""
    from agegender.numba_cache import prepare_numba_cache  # noqa: PLC0415

    prepare_numba_cache()  # before numba loads: a bad compiled-code cache is caught
    import librosa  # noqa: PLC0415
    import scipy.fft  # noqa: PLC0415

    mel_basis = librosa.filters.mel(sr=ENVELOPE_RATE, n_fft=ENVELOPE_N_FFT,
                                    n_mels=ENVELOPE_MELS, fmin=50.0, fmax=ENVELOPE_RATE / 2)
    dct = scipy.fft.dct(np.eye(ENVELOPE_MELS), type=2, norm="ortho", axis=0)  # [mels, mels]
    return mel_basis.astype(np.float32), dct[1:ENVELOPE_COEFFICIENTS + 1].astype(np.float32)


def envelope_features(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean and standard deviation of MFCC 1-20 over the loud frames of a waveform.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.

    Returns:
        float32 [len(ENVELOPE_FEATURES)]: 20 means, then 20 standard deviations (dB-scaled
        cepstral units). A waveform without energy gets ``ENVELOPE_CENTRE`` (neutral).
    """
    frames = envelope_frames(waveform, sample_rate)  # [loud, 20]
    if frames.shape[0] == 0:
        return np.asarray(ENVELOPE_CENTRE, np.float32)
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


def voice_statistics(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """F0 statistics then the spectral envelope of a waveform.

    Args:
        waveform: mono [samples], float.
        sample_rate: Hz of ``waveform``.

    Returns:
        float32 [len(STAT_NAMES)], in ``STAT_NAMES``' order.
    """
    import soxr  # noqa: PLC0415

    waveform = np.asarray(waveform, dtype=np.float32)
    if (sample_rate != ENVELOPE_RATE and PITCH_RATE == ENVELOPE_RATE and sample_rate > 0
            and waveform.ndim == 1):
        # One 8 kHz resample for both (PITCH_RATE == ENVELOPE_RATE): the same samples
        # each would make on its own.
        waveform = soxr.resample(waveform, sample_rate, ENVELOPE_RATE, quality="HQ")
        sample_rate = ENVELOPE_RATE
    return np.concatenate([pitch_features(waveform, sample_rate),
                           envelope_features(waveform, sample_rate)]).astype(np.float32)


def exercise_compiled() -> None:
    """Runs every numba-compiled function the package calls (librosa's yin, through
    ``voice_statistics``) once: ``numba_cache`` runs it in a child process
    to find out whether the compiled-code cache is sound."""
    from agegender.synthetic import intoned_voice  # noqa: PLC0415

    voice_statistics(intoned_voice(150.0, seconds=1.0, rate=8_000), 8_000)

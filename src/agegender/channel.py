"""Channel simulation: what a telephone line does to a voice, and the waveform copies of
training clips built on it.

``telephone`` checks that a feature preset gives the same picture of a voice whatever the
channel (tests; docs/experiments.md, "Feature presets"); ``waveform_copy`` makes the extra
training examples of ``--augment_copies`` (``preprocess.run_spectrograms``).
"""

from __future__ import annotations

import io

import numpy as np

from agegender.config import CopyParams
from agegender.errors import ParameterError

CODECS: tuple[str, ...] = ("mulaw", "gsm", "none")
TELEPHONE_RATE = 8_000


def mu_law(waveform: np.ndarray, bits: int = 8, mu: float = 255.0) -> np.ndarray:
    """G.711-style μ-law companding and quantisation to ``bits`` bits, decoded back.
    [samples] float in [-1, 1] → [samples] float32."""
    x = np.clip(waveform, -1.0, 1.0)
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)  # [-1, 1]
    levels = 2 ** (bits - 1)
    encoded = np.round(encoded * levels) / levels
    return (np.sign(encoded) * np.expm1(np.abs(encoded) * np.log1p(mu)) / mu).astype(np.float32)


def gsm(waveform: np.ndarray) -> np.ndarray:
    """A round trip through the GSM 06.10 full-rate codec (libsndfile's), at 8 kHz.
    [samples] float → [samples] float32."""
    import soundfile as sf  # noqa: PLC0415

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(waveform, -1.0, 1.0), TELEPHONE_RATE, format="WAV",
             subtype="GSM610")
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return decoded[: waveform.shape[0]]


def telephone(waveform: np.ndarray, rate: int, *, codec: str = "mulaw",
              low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """A narrowband telephone line: resample to 8 kHz, band-pass ``low_hz``-``high_hz``
    (4th-order Butterworth each side), then the ``codec`` (μ-law 8 bit, GSM 06.10 or none).

    Args:
        waveform: [samples] float at ``rate`` Hz.
        rate: its sample rate, Hz.
        codec: ``mulaw``, ``gsm`` or ``none``.

    Returns:
        float32 [samples at 8 kHz].
    """
    import scipy.signal  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    if codec not in CODECS:
        raise ParameterError(f"codec={codec!r} is not one of {', '.join(CODECS)}")
    narrow = soxr.resample(np.asarray(waveform, np.float32), rate, TELEPHONE_RATE)
    sos = scipy.signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=TELEPHONE_RATE,
                              output="sos")
    narrow = scipy.signal.sosfilt(sos, narrow).astype(np.float32)
    if codec == "mulaw":
        return mu_law(narrow)
    if codec == "gsm":
        return gsm(narrow)
    return narrow


def waveform_copy(waveform: np.ndarray, rate: int, rng: np.random.Generator,
                  params: CopyParams) -> np.ndarray:
    """One random copy of a voice, as another recording of a similar speaker would sound.

    In order: a random segment of at most ``params.segment_s`` seconds; a speed factor drawn
    from ``params.speed`` (resampling, so pitch, formants and tempo move together); with
    probability ``params.telephone_p`` a telephone line (μ-law or GSM, then back to ``rate``);
    with probability ``params.noise_p`` white noise at an SNR drawn from ``params.snr_db``;
    finally the peak is kept below full scale.

    Args:
        waveform: [samples] float in [-1, 1] at ``rate`` Hz.
        rate: its sample rate, Hz.
        rng: the source of every random choice (seed it for a reproducible copy).
        params: the ranges.

    Returns:
        float32 [samples'] at ``rate`` Hz (its length changes with the segment and speed).
    """
    import soxr  # noqa: PLC0415

    x = np.asarray(waveform, np.float32)
    keep = int(params.segment_s * rate)
    if keep and x.shape[0] > keep:
        start = int(rng.integers(0, x.shape[0] - keep + 1))
        x = x[start:start + keep]
    speed = float(rng.uniform(*params.speed))
    if speed != 1.0:
        # Read as if recorded at rate*speed, brought back to rate: faster and higher by speed.
        x = soxr.resample(x, rate * speed, rate)
    if rng.random() < params.telephone_p:
        line = telephone(x, rate, codec=str(rng.choice(("mulaw", "gsm"))))
        x = soxr.resample(line, TELEPHONE_RATE, rate) if rate != TELEPHONE_RATE else line
    if rng.random() < params.noise_p:
        power = float(np.mean(np.square(x, dtype=np.float64)))
        snr = float(rng.uniform(*params.snr_db))
        x = x + rng.normal(0.0, np.sqrt(power / 10.0 ** (snr / 10.0)), x.shape[0])
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0.99:  # a copy must stay a valid [-1, 1] waveform, like a decoded file
        x = x * (0.99 / peak)
    return np.ascontiguousarray(x, dtype=np.float32)

"""Channel simulation: what a telephone line does to a voice.

Used to check that a feature preset gives the same picture of a voice whatever the channel
(tests, ``bench/feature_probe.py``).
"""

from __future__ import annotations

import io

import numpy as np

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

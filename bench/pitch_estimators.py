"""Compares the F0 estimators on synthetic voiced 5-s clips (not a test; run by hand).

    python bench/pitch_estimators.py

Voices (``agegender.synthetic.intoned_voice``): 11 harmonics of F0 = 80..300 Hz (20 Hz
steps), ±3 % intonation, 30 % unvoiced gaps, white noise at 0.02. Prints the relative error
of the median F0 and the time per clip.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from agegender.pitch import median_f0  # noqa: E402
from agegender.synthetic import intoned_voice  # noqa: E402

RATE = 16_000


def main() -> None:
    """Prints one line per estimator."""
    truth = np.arange(80, 301, 20)
    noise = 0.1 * np.random.default_rng(9).standard_normal(5 * RATE).astype(np.float32)
    for method in ("yin", "pyin"):
        median_f0(intoned_voice(100.0), RATE, method=method)  # first call: librosa/numba warm-up
        errors, seconds = [], []
        for i, f0 in enumerate(truth):
            clip = intoned_voice(float(f0), seed=i)
            start = time.perf_counter()
            estimate = median_f0(clip, RATE, method=method)
            seconds.append(time.perf_counter() - start)
            errors.append(abs(estimate - f0) / f0)
        print(f"{method}: median F0 error max {max(errors):.2%}, mean {np.mean(errors):.2%}; "
              f"{1000 * np.median(seconds):.1f} ms per 5-s clip; "
              f"noise → {median_f0(noise, RATE, method=method)}, "
              f"silence → {median_f0(np.zeros(5 * RATE, np.float32), RATE, method=method)}")


if __name__ == "__main__":
    main()

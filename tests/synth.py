"""Tiny synthetic corpora for the tests: harmonic tones whose pitch carries gender and whose
vibrato carries age, written in the Common Voice layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from agegender.labels import AGES, GENDERS

HEADER = ["filename", "text", "up_votes", "down_votes", "age", "gender", "accent", "duration"]


def voice(gender: str, age: str, *, seed: int, seconds: float = 1.0, rate: int = 16_000,
          ) -> np.ndarray:
    """A harmonic tone, shape [samples]: F0 ~120 Hz male / ~220 Hz female, vibrato by age."""
    rng = np.random.default_rng(seed)
    f0 = (120.0 if gender == "male" else 220.0) * rng.uniform(0.95, 1.05)
    vibrato = 1 + 0.01 * (AGES.index(age) + 1) * np.sin(2 * np.pi * 5 * np.arange(
        int(seconds * rate)) / rate)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * wave + 0.01 * rng.standard_normal(phase.shape)).astype(np.float32)


def make_raw_corpus(root: Path, *, per_group: dict[str, int] | None = None,
                    fmt: str = "WAV", rate: int = 16_000, seconds: float = 1.0) -> Path:
    """Writes a Kaggle-CV-v1 layout corpus with ``per_group[split]`` clips per gender-age group.

    Returns:
        ``root``.
    """
    per_group = per_group or {"train": 2, "dev": 1, "test": 1}
    suffix = ".mp3" if fmt == "MP3" else ".wav"
    seed = 0
    for split, count in per_group.items():
        name = f"cv-valid-{split}"
        audio_dir = root / name / name
        audio_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for gender in GENDERS:
            for age in AGES:
                for _ in range(count):
                    file = f"sample-{len(rows):06d}{suffix}"
                    sf.write(audio_dir / file, voice(gender, age, seed=seed, rate=rate,
                                                     seconds=seconds), rate, format=fmt)
                    rows.append([f"{name}/{file}", "hello", "1", "0", age, gender, "us", ""])
                    seed += 1
        write_csv(root / f"{name}.csv", rows)
    return root


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Writes rows under the Common Voice v1 header."""
    import csv  # noqa: PLC0415

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)

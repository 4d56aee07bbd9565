"""Tiny synthetic corpora for the tests, written in the Common Voice layouts.

The voices themselves come from ``agegender.synthetic`` (shared with the benchmarks): harmonic
tones whose pitch carries gender and whose vibrato carries age. ``voice`` and ``chords`` are
re-exported here because most tests already take them from this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from agegender.labels import AGES, GENDERS
from agegender.synthetic import struck_chord, voice  # voice: also re-exported to the tests

HEADER = ["filename", "text", "up_votes", "down_votes", "age", "gender", "accent", "duration"]


def make_raw_corpus(root: Path, *, per_group: dict[str, int] | None = None,
                    fmt: str = "WAV", rate: int = 16_000, seconds: float = 1.0,
                    nested: bool = True) -> Path:
    """Writes a Kaggle-CV-v1 layout corpus with ``per_group[split]`` clips per gender-age group.

    Args:
        nested: audio in ``cv-valid-{split}/cv-valid-{split}/`` as in the Kaggle archive;
            False puts it one level up, in ``cv-valid-{split}/``.

    Returns:
        ``root``.
    """
    per_group = per_group or {"train": 2, "dev": 1, "test": 1}
    suffix = ".mp3" if fmt == "MP3" else ".wav"
    seed = 0
    for split, count in per_group.items():
        name = f"cv-valid-{split}"
        audio_dir = root / name / name if nested else root / name
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


def append_csv(path: Path, rows: list[list[str]]) -> None:
    """Appends rows (Common Voice v1 columns) to a CSV written by ``write_csv``."""
    import csv  # noqa: PLC0415

    with open(path, "a", newline="") as handle:
        csv.writer(handle).writerows(rows)


def v1_row(filename: str, *, age: str, gender: str) -> list[str]:
    """One Common Voice v1 CSV row (``HEADER`` order)."""
    return [filename, "hello", "1", "0", age, gender, "us", ""]


def tone(frequency: float, *, seconds: float = 1.0, rate: int = 16_000,
         amplitude: float = 0.5) -> np.ndarray:
    """A pure sine, shape [samples], float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, rate: int = 16_000) -> Path:
    """Writes ``wave`` ([samples] or [samples, channels]); MP3 for a ``.mp3`` name, else WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "MP3" if path.suffix == ".mp3" else "WAV"
    sf.write(path, wave, rate, format=fmt)
    return path


def make_clean_corpus(root: Path, *, per_group: dict[str, int] | None = None,
                      prefix: bool = True, rate: int = 16_000, seconds: float = 0.5) -> Path:
    """Writes the original project's layout: ``Audio/cv-valid-{split}.csv`` + WAV clips.

    Args:
        prefix: the ``filename`` cells keep their ``cv-valid-{split}/`` prefix.

    Returns:
        ``root``.
    """
    per_group = per_group or {"train": 1, "dev": 1, "test": 1}
    seed = 1000
    for split, count in per_group.items():
        name = f"cv-valid-{split}"
        rows = []
        for gender in GENDERS:
            for age in AGES:
                for _ in range(count):
                    file = f"{split}-{len(rows):04d}.wav"
                    write_audio(root / "Audio" / name / file,
                                voice(gender, age, seed=seed, rate=rate, seconds=seconds), rate)
                    rows.append(v1_row(f"{name}/{file}" if prefix else file,
                                       age=age, gender=gender))
                    seed += 1
        write_csv(root / "Audio" / f"{name}.csv", rows)
    return root


CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
             "accents", "locale", "segment"]
CV_GENDERS = {"male": "male_masculine", "female": "female_feminine"}


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Writes an unquoted TSV as Common Voice does (a '"' in a cell is a literal character)."""
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cv_row(client_id: str, path: str, *, age: str, gender: str,
           sentence: str = "hello world") -> list[str]:
    """One modern Common Voice TSV row (``CV_HEADER`` order)."""
    return [client_id, path, sentence, "2", "0", age, gender, "", "en", ""]


def make_cv_corpus(root: Path, *, speakers: int = 10, clips_per_speaker: int = 2,
                   rate: int = 16_000, seconds: float = 0.5) -> Path:
    """Writes a modern Common Voice release: ``clips/`` + ``{validated,train,dev,test}.tsv``.

    Speaker ``i`` is ``male_masculine`` for even ``i``, ``female_feminine`` for odd, of age
    group ``AGES[i // 2 % 6]``. validated.tsv lists every clip; train/dev/test.tsv split the
    speakers 80/10/10 in order (last 10 % test, the 10 % before dev). Clips are WAV data
    under ``.mp3`` names, as libsndfile goes by content.

    Returns:
        ``root``.
    """
    rows = []
    split_rows: dict[str, list[list[str]]] = {"train": [], "dev": [], "test": []}
    n_held = max(1, round(0.1 * speakers))
    seed = 2000
    for speaker in range(speakers):
        gender = GENDERS[speaker % 2]
        age = AGES[speaker // 2 % len(AGES)]
        client = f"client{speaker:03d}"
        split = ("test" if speaker >= speakers - n_held
                 else "dev" if speaker >= speakers - 2 * n_held else "train")
        for clip in range(clips_per_speaker):
            file = f"common_voice_en_{speaker:03d}{clip:02d}.mp3"
            path = root / "clips" / file
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, voice(gender, age, seed=seed, rate=rate, seconds=seconds), rate,
                     format="WAV")
            seed += 1
            row = cv_row(client, file, age=age, gender=CV_GENDERS[gender])
            rows.append(row)
            split_rows[split].append(row)
    write_tsv(root / "validated.tsv", CV_HEADER, rows)
    for split, part in split_rows.items():
        write_tsv(root / f"{split}.tsv", CV_HEADER, part)
    return root


def random_examples(count: int, *, image_size: int = 16, seed: int = 0,
                    tasks: tuple[str, ...] = ("gender", "age", "gender_age")) -> list:
    """``count`` TFRecord examples of random images with labels cycling through the classes.

    Example ``i`` has key ``clip-{i:03d}``, speaker ``speaker-{i % 3}``, gender ``i % 2``,
    age ``i % 6`` and gender-age ``i % 12``; only ``tasks`` get a label.

    Returns:
        list of ``agegender.tfrecords.Example``.
    """
    from agegender.features import png_bytes  # noqa: PLC0415
    from agegender.tfrecords import Example  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    codes = {"gender": 2, "age": 6, "gender_age": 12}
    examples = []
    for i in range(count):
        image = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
        examples.append(Example(
            png=png_bytes(image), height=image_size, width=image_size, channels=3,
            key=f"clip-{i:03d}", speaker_id=f"speaker-{i % 3}",
            label_codes={task: i % codes[task] for task in tasks}))
    return examples


def chords(*, seconds: float = 3.0, rate: int = 16_000) -> np.ndarray:
    """Music without a voice, shape [samples]: four triads of harmonic tones (six partials),
    each struck (10-ms attack) and decaying."""
    triads = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (196.0, 246.9, 293.7),
              (174.6, 220.0, 261.6))
    length = int(seconds * rate) // len(triads)
    parts = [struck_chord(triad, length, rate, decay_s=0.6, amplitude=0.1) for triad in triads]
    return np.concatenate(parts).astype(np.float32)


def espeak(path: Path, text: str = "The quick brown fox jumps over the lazy dog.", *,
           voice_name: str = "en") -> Path:
    """Speaks ``text`` with espeak-ng into a WAV at ``path`` (22.05 kHz); needs espeak-ng."""
    import subprocess  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice_name, "-w", str(path), text], check=True,
                   capture_output=True)
    return path

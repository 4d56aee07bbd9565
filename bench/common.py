"""What the benchmarks share: synthetic corpora (voices from ``agegender.synthetic``), timing,
plain-text tables. Importing it puts ``src/`` on the path and quiets TensorFlow and the
progress bars, so import it before anything of the package."""

from __future__ import annotations

import csv
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # the stages' progress bars would break the tables

from agegender.config import SPLITS
from agegender.labels import AGES, GENDERS
from agegender.synthetic import random_voice

RAW_HEADER = ["filename", "text", "up_votes", "down_votes", "age", "gender", "accent",
              "duration"]


def _write_clip(job: tuple[str, int, float, int, str]) -> None:
    import soundfile as sf

    path, seed, seconds, rate, fmt = job
    sf.write(path, random_voice(seed, seconds=seconds, rate=rate), rate, format=fmt)


def write_clips(jobs: Sequence[tuple[str, int, float, int, str]], workers: int) -> None:
    """Writes ``(path, seed, seconds, rate, format)`` clips, in ``workers`` processes."""
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_clip, jobs, chunksize=4):
                pass
    else:
        for job in jobs:
            _write_clip(job)


def split_counts(clips: int) -> dict[str, int]:
    """About 80/10/10 train/dev/test, at least one clip in dev and test."""
    if clips < 3:
        raise SystemExit(f"--clips={clips}: need at least 3 (one per split)")
    held_out = max(1, clips // 10)
    return {"train": clips - 2 * held_out, "dev": held_out, "test": held_out}


def write_raw_corpus(root: Path, counts: dict[str, int], *, seconds: float, rate: int,
                     fmt: str = "MP3", workers: int | None = None) -> list[Path]:
    """Writes a Kaggle Common Voice v1 layout (``cv-valid-{split}.csv`` and
    ``cv-valid-{split}/cv-valid-{split}/sample-NNNNNN.mp3``), labels cycling through the 12
    gender-age groups; returns the audio files, train first."""
    suffix = {"MP3": ".mp3", "WAV": ".wav", "FLAC": ".flac"}[fmt]
    jobs, files, seed = [], [], 0
    for split in SPLITS:
        name = f"cv-valid-{split}"
        audio_dir = root / name / name
        audio_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for number in range(counts.get(split, 0)):
            group = seed % (len(GENDERS) * len(AGES))
            gender, age = GENDERS[group // len(AGES)], AGES[group % len(AGES)]
            file = f"sample-{number:06d}{suffix}"
            jobs.append((str(audio_dir / file), seed, seconds, rate, fmt))
            files.append(audio_dir / file)
            rows.append([f"{name}/{file}", "synthetic", "1", "0", age, gender, "us",
                         f"{seconds:g}"])
            seed += 1
        with open(root / f"{name}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(RAW_HEADER)
            writer.writerows(rows)
    write_clips(jobs, workers or os.cpu_count() or 1)
    return files


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], *,
                 title: str = "") -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                         for i, cell in enumerate(row)).rstrip()

    rule = "-" * len(line(cells[0]))
    out = ([title] if title else []) + [line(cells[0]), rule] + [line(r) for r in cells[1:]]
    return "\n".join(out)


def met(flag: bool) -> str:
    return "MET" if flag else "missed"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measured(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds incl. reaped child processes, result) of one call."""
    def cpu() -> float:
        usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    before = cpu()
    wall, result = timed(fn)
    return wall, cpu() - before, result


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def available_cores(seconds: float = 0.5) -> float:
    """Cores this benchmark gets right now: CPU s / wall s of one spinning process per core
    (other processes lower it, and so does the kernel's autogroup scheduling)."""
    cores = os.cpu_count() or 1
    context = multiprocessing.get_context("fork")  # the children only spin
    spinners = [context.Process(target=_spin, args=(seconds,)) for _ in range(cores)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for spinner in spinners:
        spinner.start()
    for spinner in spinners:
        spinner.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall


def load_line() -> str:
    """Load average and the cores this benchmark can get now, to judge contention."""
    cores = os.cpu_count() or 1
    free = available_cores()
    busy = ("" if free > 0.9 * cores else
            "  (shared: wall-clock figures are inflated, multi-core scaling understated)")
    return (f"load average {os.getloadavg()[0]:.2f}; {free:.2f} of {cores} cores "
            f"available{busy}")

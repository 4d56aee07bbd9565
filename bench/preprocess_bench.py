"""Preprocessing benchmark: agegender's ``preprocess()`` vs the original project's pipeline.

Synthetic 5-s 48 kHz MP3 clips (Kaggle Common Voice v1 layout), interleaved rounds: ours with
1 and 2 workers, stage by stage, against the original re-created (``librosa.load`` at 16 kHz,
STFT, a matplotlib figure per clip, ``load_img`` 64x64, float32 ``serialize_tensor`` into
TFRecords). ``--manifest ../shared/cv-sample/manifest.csv``: the first ``--clips`` real clips
of ``--split`` instead; a last table gives our CPU cost per clip stage by stage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import format_table, load_line, measured, met, split_counts, timed, write_raw_corpus

CLIP_SECONDS, CLIP_RATE = 5.0, 48_000  # synthetic MP3 clips, Common Voice's rate
# The original project's settings (SpectrogramGenerator / TFRecordDatasetProcessor).
ORIGINAL_RATE = 16_000
ORIGINAL_N_FFT = 256
ORIGINAL_HOP = 128
ORIGINAL_IMAGE = (64, 64)
ORIGINAL_SHARD_SIZE = 300


def original_spectrogram(audio: Path, png: Path) -> None:
    """The original project's SpectrogramGenerator, one clip: audio → full-size PNG figure."""
    import librosa
    import matplotlib.pyplot as plt

    y, _ = librosa.load(audio, sr=ORIGINAL_RATE)  # [samples] at 16 kHz (soxr_hq)
    spec = librosa.stft(y, n_fft=ORIGINAL_N_FFT, hop_length=ORIGINAL_HOP)  # [129, frames]
    spec = librosa.amplitude_to_db(np.abs(spec))
    scaled = (spec - spec.min()) / (spec.max() - spec.min()) * 255.0  # its scale_minmax
    image = scaled.astype(np.uint8)
    plt.figure()  # the default 6.4 × 4.8 in at 100 dpi, as its implicit pyplot figure
    plt.axis("off")
    shown = plt.imshow(image, aspect="auto", origin="lower", interpolation="none")
    shown.axes.get_xaxis().set_visible(False)
    shown.axes.get_yaxis().set_visible(False)
    plt.tight_layout()
    plt.savefig(png, bbox_inches="tight", pad_inches=0)
    plt.close()


def original_example(png: Path, labels: tuple[int, int, int]) -> bytes:
    """The original project's TFRecordDatasetProcessor, one clip: PNG → serialized Example."""
    import tensorflow as tf
    from keras.utils import img_to_array, load_img

    img = img_to_array(load_img(png, target_size=ORIGINAL_IMAGE))  # [64, 64, 3] float32
    tensor = tf.io.serialize_tensor(img).numpy()

    def _bytes(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    age, gender, gender_age = labels
    feature = {
        "fpath": _bytes(str(png).encode("utf-8")), "img": _bytes(tensor),
        "img_h": _int(img.shape[0]), "img_w": _int(img.shape[1]), "chan": _int(img.shape[2]),
        "lab_age": _int(age), "lab_gender": _int(gender), "lab_gender_age": _int(gender_age),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def run_original(clips: Sequence[Path], out_dir: Path, tag: str) -> dict[str, float]:
    """The original's spectrogram then TFRecord stage over ``clips``: ``{stage: wall s}``,
    ``{stage}_cpu: CPU s``, bytes written (``png_bytes``, ``shard_bytes``)."""
    import tensorflow as tf

    png_dir, shard_dir = out_dir / "Spectrograms", out_dir / "TFRecord"
    png_dir.mkdir(parents=True, exist_ok=True)
    shard_dir.mkdir(parents=True, exist_ok=True)
    pngs = [png_dir / f"{tag}-{audio.stem}.png" for audio in clips]

    def spectrograms() -> None:
        for audio, png in zip(clips, pngs, strict=True):
            original_spectrogram(audio, png)

    def shards() -> list[Path]:
        written = []
        for start in range(0, len(pngs), ORIGINAL_SHARD_SIZE):
            path = shard_dir / f"spec_data_{tag}_{start // ORIGINAL_SHARD_SIZE:03d}.tfrecord"
            with tf.io.TFRecordWriter(str(path)) as writer:
                for number, png in enumerate(pngs[start:start + ORIGINAL_SHARD_SIZE]):
                    writer.write(original_example(png, (number % 6, number % 2, number % 12)))
            written.append(path)
        return written

    result: dict[str, float] = {}
    result["spectrograms"], result["spectrograms_cpu"], _ = measured(spectrograms)
    result["tfrecords"], result["tfrecords_cpu"], written = measured(shards)
    result["png_bytes"] = sum(p.stat().st_size for p in pngs)
    result["shard_bytes"] = sum(p.stat().st_size for p in written)
    return result


def write_manifest_corpus(root: Path, manifest: Path, split: str, clips: int) -> list[Path]:
    """Copies the first ``clips`` clips of ``split`` in a cv-sample manifest (path, gender,
    age, split columns) into the Kaggle layout ``write_raw_corpus`` writes, about 80/10/10
    over its splits; returns the copied audio files, train first."""
    import csv
    import shutil

    from common import RAW_HEADER

    with open(manifest, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split][:clips]
    if len(rows) < clips:
        raise SystemExit(f"{manifest}: only {len(rows)} clips in split {split!r}, "
                         f"--clips={clips}")
    files, start = [], 0
    for name, count in split_counts(clips).items():
        folder = f"cv-valid-{name}"
        (root / folder / folder).mkdir(parents=True, exist_ok=True)
        table = []
        for number, row in enumerate(rows[start:start + count]):
            target = root / folder / folder / f"sample-{number:06d}.mp3"
            shutil.copyfile(manifest.parent / row["path"], target)  # the share stays as is
            files.append(target)
            table.append([f"{folder}/{target.name}", "", "1", "0", row["age"], row["gender"],
                          "", f"{CLIP_SECONDS:g}"])
        start += count
        with open(root / f"{folder}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([RAW_HEADER, *table])
    return files


def stage_costs(clips: Sequence[Path]) -> dict[str, float]:
    """Our spectrogram stage's parts, one process, CPU ms per clip: decode and resample
    (``load_clip``), the speech gate, the spectrogram image and PNG, the voice statistics."""
    import time

    from agegender.config import FeatureParams
    from agegender.features import load_clip, png_bytes, spectrogram_image, waveform_pitch
    from agegender.speech import voiced_share

    params = FeatureParams()
    steps = {"decode + resample": lambda path, wave: load_clip(path, params),
             "speech gate": lambda path, wave: voiced_share(wave, params.sample_rate),
             "spectrogram image + PNG": lambda path, wave: png_bytes(
                 spectrogram_image(wave, params)),
             "voice statistics": lambda path, wave: waveform_pitch(wave, params)}
    spent = dict.fromkeys(steps, 0.0)
    for path in clips:
        wave = None
        for name, step in steps.items():
            start = time.process_time()
            out = step(path, wave)
            spent[name] += time.process_time() - start
            wave = out if wave is None else wave
    return {name: seconds / len(clips) * 1e3 for name, seconds in spent.items()}


def run_ours(root: Path, results: Path, workers: int, *, real: bool = False) -> dict[str, float]:
    """The real ``preprocess()`` (default ``--inputs``), stage by stage, remaking every output:
    ``{stage: wall s}``, ``{stage}_cpu: CPU s`` (workers incl.), clips ``kept`` and ``examples``
    written. ``real``: clips the speech gate turns away are expected, not a failure."""
    from agegender.config import FeatureParams, PreprocessParams
    from agegender.preprocess import STAGES, preprocess

    params = PreprocessParams(dataset_type="raw", num_workers=workers, overwrite=True)
    result: dict[str, float] = {}
    summary: dict = {}
    for stage in STAGES:
        result[stage], result[f"{stage}_cpu"], part = measured(lambda stage=stage: preprocess(
            root, params=params, features=FeatureParams(), results_dir=results,
            stages=(stage,)))
        summary.update(part)
    if summary.get("bad_clips") and not real:
        raise SystemExit(f"ours: {summary['bad_clips']} clips failed; see {summary['report']}")
    result["examples"] = sum(summary["examples"].values())
    result["kept"] = summary["kept"] - (summary.get("bad_clips") or 0)
    return result


def ours_bytes(root: Path) -> tuple[int, int, int]:
    """(shard bytes, examples, PNG bytes) of a preprocessed dataset folder."""
    import json

    shard_bytes = examples = 0
    for index_path in (root / "TFRecord").glob("*/shards.json"):
        index = json.loads(index_path.read_text())
        examples += index["num_examples"]
        shard_bytes += sum((index_path.parent / name).stat().st_size
                           for name in index["shards"])
    png_bytes = sum(p.stat().st_size for p in (root / "Spectrograms").rglob("*.png"))
    return shard_bytes, examples, png_bytes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200, help="synthetic clips (default 200)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="cv-sample manifest.csv: real clips instead of synthetic ones")
    parser.add_argument("--split", default="test", help="the manifest's split (default test)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; ours runs every clip each round, the "
                             "original a 1/rounds slice (default 3)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker count compared with 1 worker (default 2)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.workers < 2:
        parser.error("--rounds must be >= 1 and --workers >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agegender-preprocess-bench-") as tmp:
        tmp = Path(tmp)
        root = tmp / "corpus"
        kind = f"real {args.split}-split" if args.manifest else "synthetic"
        print(f"writing {args.clips} {kind} {CLIP_SECONDS:g} s {CLIP_RATE} Hz MP3 clips "
              f"in {root} ...", flush=True)
        gen_s, clips = timed(lambda: write_manifest_corpus(
            root, args.manifest, args.split, args.clips) if args.manifest else write_raw_corpus(
            root, split_counts(args.clips), seconds=CLIP_SECONDS, rate=CLIP_RATE))
        print(f"  written in {gen_s:.1f} s", flush=True)

        import agegender  # noqa: F401  (TensorFlow, keras: imported once, up front)

        # Warm-up: first calls import librosa/soxr/pyplot and fill caches (viridis LUT).
        from agegender.config import FeatureParams
        from agegender.features import clip_image

        clip_image(clips[0], FeatureParams())
        original_spectrogram(clips[0], tmp / "warmup.png")
        original_example(tmp / "warmup.png", (0, 0, 0))

        load_start = load_line()
        ours: dict[int, list[dict[str, float]]] = {1: [], args.workers: []}
        original: list[dict[str, float]] = []
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds}: {load_line()}", flush=True)
            for workers in (1, args.workers) if number % 2 == 0 else (args.workers, 1):
                ours[workers].append(run_ours(root, tmp / "results", workers,
                                              real=args.manifest is not None))
            original.append(run_original(clips[number::args.rounds], tmp / "original",
                                         f"r{number}"))
        stages = stage_costs(clips)
        shard_bytes, examples, png_total = ours_bytes(root)
        load_end = load_line()

    expected = ours[1][0]["kept"] if args.manifest else args.clips  # real: some fail the gate
    if examples != expected:
        raise SystemExit(f"ours kept {ours[1][0]['kept']} clips and wrote {examples} "
                         f"examples, expected {args.clips}")
    report(args, ours, original, shard_bytes, examples, png_total, (load_start, load_end))
    print()
    default = sum(stages.values()) - stages["voice statistics"]  # --inputs=spectrogram
    print(format_table(["our spectrogram stage, one process", "CPU ms per clip"],
                       [[name, f"{ms:.2f}"] for name, ms in stages.items()]
                       + [["sum, default --inputs (spectrogram)", f"{default:.2f}"],
                          ["sum, --inputs=spectrogram,pitch", f"{sum(stages.values()):.2f}"]],
                       title=f"Stage by stage, {len(clips)} clips ({kind}), "
                             f"{examples} past the speech gate"))
    return 0


def report(args: argparse.Namespace, ours: dict[int, list[dict[str, float]]],
           original: list[dict[str, float]], shard_bytes: int,
           examples: int, png_total: int, loads: tuple[str, str]) -> None:
    """Prints the three tables."""
    n, w, cores = args.clips, args.workers, os.cpu_count() or 1

    def ours_ms(workers: int, key: str) -> float:  # median over rounds, per clip
        return statistics.median(r[key] for r in ours[workers]) / n * 1e3

    def orig_ms(key: str) -> float:  # summed over the round slices, per clip
        return sum(r[key] for r in original) / n * 1e3

    def both(key: str) -> dict:
        return {1: ours_ms(1, key), w: ours_ms(w, key), "orig": orig_ms(key)}

    spec, spec_cpu = both("spectrograms"), both("spectrograms_cpu")
    shard, shard_cpu = both("tfrecords"), both("tfrecords_cpu")
    total = {k: spec[k] + shard[k] for k in spec}
    total_cpu = {k: spec_cpu[k] + shard_cpu[k] for k in spec}
    clean = {k: ours_ms(k, "clean") for k in (1, w)}
    whole = {k: statistics.median(r["clean"] + r["spectrograms"] + r["tfrecords"]
                                  for r in ours[k]) for k in (1, w)}

    def row(name: str, values: dict, fmt: str = "{:.2f}") -> list[str]:
        return [name] + [fmt.format(values[k]) if k in values else "-" for k in (1, w, "orig")]

    header = ["per clip", "ours 1 worker", f"ours {w} workers", "original"]
    rows = [
        row("spectrogram stage, wall ms", spec),
        row("spectrogram stage, CPU ms (workers incl.)", spec_cpu),
        row("tfrecord stage (1 process in all), wall ms", shard),
        row("tfrecord stage, CPU ms", shard_cpu),
        row("spectrograms + tfrecords, wall ms", total),
        row("spectrograms + tfrecords, CPU ms", total_cpu),
        row("  cores busy (CPU / wall)", {k: total_cpu[k] / total[k] for k in total}),
        row("clean stage (ours only), wall ms", clean),
        row("spectrograms + tfrecords, clips/s", {k: 1e3 / v for k, v in total.items()},
            "{:.1f}"),
        row("whole preprocess() incl. clean, clips/s", {k: n / v for k, v in whole.items()},
            "{:.1f}"),
        row("PNG bytes per clip (intermediate)",
            {1: png_total / examples, "orig": sum(r["png_bytes"] for r in original) / n},
            "{:,.0f}"),
        row("TFRecord bytes per example",
            {1: shard_bytes / examples, "orig": sum(r["shard_bytes"] for r in original) / n},
            "{:,.0f}"),
    ]
    print()
    print(format_table(header, rows, title=(
        f"Preprocessing {n} {'real' if args.manifest else 'synthetic'} clips of "
        f"{CLIP_SECONDS:g} s {CLIP_RATE} Hz MP3, {cores} cores. Ours (default --inputs): median of "
        f"{args.rounds} round(s), every clip each round; original: one process, 1/{args.rounds} "
        "of the clips each round.")))

    speedup_cpu = total_cpu["orig"] / total_cpu[1]
    speedup_wall = total["orig"] / total[1]
    scaling = spec[1] / spec[w]
    size_ratio = (shard_bytes / examples) / (sum(r["shard_bytes"] for r in original) / n)
    rows = [
        ["speed-up per core, ours vs original (CPU time, spec + tfrecord)",
         f"{speedup_cpu:.1f}x", ">= 10x", met(speedup_cpu >= 10)],
        ["  same, wall time, ours 1 worker vs original", f"{speedup_wall:.1f}x", "", ""],
        [f"1 -> {w} worker scaling, spectrogram stage (wall)", f"{scaling:.2f}x", ">= 1.7x",
         met(scaling >= 1.7)],
        ["  same, whole preprocess() incl. clean + tfrecords (wall)",
         f"{whole[1] / whole[w]:.2f}x", "", ""],
        [f"  CPU cost per clip, {w} workers vs 1 (spectrogram stage)",
         f"{spec_cpu[w] / spec_cpu[1]:.2f}x", "", ""],
        # What the wall-clock ratio cannot show on a shared machine: if the w workers had
        # w idle cores, the stage could go at most w x (CPU per clip, 1) / (CPU per clip, w).
        [f"  projection for {w} idle cores: {w} x CPU(1) / CPU({w})",
         f"{w * spec_cpu[1] / spec_cpu[w]:.2f}x", ">= 1.7x",
         met(w * spec_cpu[1] / spec_cpu[w] >= 1.7) + " (projection)"],
        ["TFRecord bytes per example, ours / original", f"{size_ratio:.3f}", "<= 0.25",
         met(size_ratio <= 0.25)],
    ]
    print()
    print(format_table(["ratio (measured side by side)", "value", "target", "status"], rows))
    print(f"\nbefore the rounds: {loads[0]}\nafter the rounds:  {loads[1]}")
    if cores < w:
        print(f"note: only {cores} core(s); {w}-worker scaling cannot exceed {cores}x here.")


if __name__ == "__main__":
    sys.exit(main())

"""What ``--augment_copies`` costs at preprocessing: the spectrogram and tfrecord stages with
0 and N waveform copies of each training clip, side by side in one run.

Makes synthetic 5-second 48 kHz MP3 clips (Kaggle Common Voice v1 raw layout, about 80 %
of them in train) in a temporary folder, then runs the real ``preprocess()`` stage by stage,
remaking every output, with ``augment_copies=0`` and ``=N`` alternately for a few rounds (so
machine noise hits both alike), one worker, for each feature preset asked. Reports CPU ms
per training clip (the copies' cost falls on train only) and the ratio. Informational:
nothing is asserted.

Run:
    python bench/copies_bench.py                      # 100 clips, 3 copies, 2 rounds, voice
    python bench/copies_bench.py --presets paper,voice --copies 1
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import format_table, load_line, measured, split_counts, write_raw_corpus  # noqa: E402


def run(root: Path, results: Path, preset: str, copies: int) -> dict[str, float]:
    """``preprocess()`` stage by stage (overwrite); CPU s of each stage, examples written."""
    from agegender.config import FeatureParams, PreprocessParams  # noqa: PLC0415
    from agegender.preprocess import STAGES, preprocess  # noqa: PLC0415

    params = PreprocessParams(dataset_type="raw", num_workers=1, overwrite=True,
                              augment_copies=copies)
    features = FeatureParams.preset(preset)
    out: dict[str, float] = {}
    for stage in STAGES:
        _, out[stage], summary = measured(lambda stage=stage: preprocess(
            root, params=params, features=features, results_dir=results, stages=(stage,)))
        if stage == "tfrecords":
            out["train_examples"] = summary["examples"]["train"]
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=100, help="synthetic clips (default 100)")
    parser.add_argument("--copies", type=int, default=3, help="copies per training clip")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--presets", default="voice", help="comma-separated (default voice)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("agegender").setLevel(logging.ERROR)  # tiny-split warnings, every run
    counts = split_counts(args.clips)
    rows = []
    with tempfile.TemporaryDirectory(prefix="agegender-copies-bench-") as tmp:
        root = Path(tmp) / "corpus"
        write_raw_corpus(root, counts, seconds=5.0, rate=48_000)
        start = load_line()
        for preset in args.presets.split(","):
            runs: dict[int, list[dict[str, float]]] = {0: [], args.copies: []}
            for number in range(args.rounds):
                order = (0, args.copies) if number % 2 == 0 else (args.copies, 0)
                for copies in order:
                    runs[copies].append(run(root, Path(tmp) / "results", preset, copies))

            def per_clip(copies: int, stage: str, runs=runs) -> float:
                return statistics.median(r[stage] for r in runs[copies]) / counts["train"] * 1e3

            for stage in ("spectrograms", "tfrecords"):
                base, more = per_clip(0, stage), per_clip(args.copies, stage)
                rows.append([preset, stage, f"{base:.1f}", f"{more:.1f}", f"{more / base:.2f}x"])
            examples = runs[args.copies][0]["train_examples"]
            rows.append([preset, "train examples", str(counts["train"]), str(examples),
                         f"{examples / counts['train']:.2f}x"])
        end = load_line()
    print(format_table(
        ["preset", "stage (CPU ms per training clip)", "0 copies", f"{args.copies} copies",
         "ratio"], rows,
        title=(f"--augment_copies cost: {args.clips} synthetic 5-s 48 kHz MP3 clips "
               f"({counts['train']} train), 1 worker, median of {args.rounds} alternating "
               f"round(s)")))
    print(f"load: {start} → {end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Builds the offline synthetic demo corpus in the Kaggle Common Voice v1 layout.

Usage:
    python src/make_demo_dataset.py --out data/DemoVoice [--num_speakers 120]
        [--sentences_per_speaker 4] [--seed 0] [--num_workers N] [--overwrite]

Every clip is spoken by espeak-ng (``apt-get install espeak-ng``) in one of ``num_speakers``
synthetic voices balanced over the 12 gender x age groups; see ``agegender.demo``.
"""

from __future__ import annotations

import argparse
import os
import sys

from agegender.cli import add_bool_flag, make_parser, run_cli
from agegender.config import SPLITS
from agegender.demo import DemoParams, corpus_csv_name, make_demo_dataset


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    defaults = DemoParams()
    parser = make_parser("Synthesize a small Common Voice v1-style corpus of speakers of known "
        "gender and age with espeak-ng, for running the project offline."
    )
    parser.add_argument("--out", required=True, help="corpus folder to create or resume")
    parser.add_argument(
        "--num_speakers",
        type=int,
        default=defaults.num_speakers,
        help="balanced speakers: a multiple of 12, at least 36 (default: %(default)s)",
    )
    parser.add_argument(
        "--sentences_per_speaker",
        type=int,
        default=defaults.sentences_per_speaker,
        help="clips per speaker, each a different sentence (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=os.cpu_count() or 1,
        help="clips synthesized in parallel (default: all cores, %(default)s)",
    )
    add_bool_flag(
        parser,
        "overwrite",
        default=False,
        help="write into a folder holding other files or a demo corpus made with other "
        "settings, replacing only the demo's own files",
    )
    add_bool_flag(parser, "verbose", default=False, help="log debug messages")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the script; returns the process exit status."""
    args = parse_args(argv)

    def work() -> None:
        params = DemoParams(
            num_speakers=args.num_speakers,
            sentences_per_speaker=args.sentences_per_speaker,
            seed=args.seed,
        )
        summary = make_demo_dataset(
            args.out, params, num_workers=args.num_workers, overwrite=args.overwrite
        )
        print(f"Demo corpus in {summary.out_dir.resolve()}")
        for split in SPLITS:
            print(
                f"  {corpus_csv_name(split):<20} {summary.clips_per_split[split]:5d} clips "
                f"({summary.unlabelled_per_split[split]} without gender/age), "
                f"{summary.speakers_per_split[split]} speakers"
            )
        print(
            f"  synthesized {summary.synthesized} clips, kept {summary.skipped} already made; "
            "voices in speakers.csv, clip -> speaker in clips.csv"
        )

    return run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

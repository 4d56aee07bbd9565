"""Evaluates a trained model on the test (or dev) split's TFRecords, or on a labelled table.

Examples:
    python src/test.py --dataset_dir='data/CommonVoice' \
        --model_path='models/age/best_model_age.keras' --cls_task='age'
    python src/test.py --manifest=my_voices/manifest.csv \
        --model_path='models/gender/best_model_gender.keras'
"""

from __future__ import annotations

import argparse
import sys

from agegender import cli
from agegender.labels import TASKS


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    parser = cli.make_parser(__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset_dir",
                        help="dataset folder holding TFRecord/ (preprocess_dataset.py's "
                             "--output_dir when one was given)")
    source.add_argument("--manifest",
                        help="a labelled table (CSV/TSV: path, gender and/or age, optional "
                             "speaker and split; see README) evaluated straight from its "
                             "audio, through the model's own feature settings; rows without "
                             "a split count as --split, train/dev rows fit the pitch baseline")
    parser.add_argument("--model_path", default=None,
                        help=".keras or .h5 file, or a SavedModel folder (default: the "
                             "shipped model for --cls_task, gender when none is given, from "
                             "models/pretrained/, as inference.py)")
    parser.add_argument("--cls_task", default=None, choices=TASKS,
                        help="task to evaluate (default: the one stored in the model)")
    parser.add_argument("--split", default="test", choices=("dev", "test"),
                        help="split to evaluate on")
    parser.add_argument("--batch_size", type=int, default=128, help="examples per model call")
    parser.add_argument("--max_crops", type=int, default=3,
                        help="as inference.py: for models with a constant time scale (voice "
                             "preset) each clip's probabilities are the mean over up to this "
                             "many crops, taken from its audio, so the report scores what "
                             "inference ships; 1 = the centre crop the shards hold; the report "
                             "says which (default: 3, inference's default)")
    parser.add_argument("--results_dir", default="results",
                        help="reports go to RESULTS_DIR/<task>/<model name>/ (e.g. "
                             "results/gender/gender/ for the shipped gender model), one "
                             "folder per model")
    parser.add_argument("--min_voiced", type=float, default=0.1,
                        help="--manifest: clips with fewer voiced frames than this share are "
                             "left out as 'no speech'; 0: no gate (default: %(default)s)")
    cli.add_skip_corrupt_flag(parser)
    cli.add_bool_flag(parser, "no_verify", default=False,
                      help="load the model even when it does not match its .sha256 sidecar")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluates; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        cli.check_numbers(args, {"batch_size": cli.POSITIVE_INT, "max_crops": cli.POSITIVE_INT,
                                 "min_voiced": cli.Bounds(0, 1)})
        if args.model_path is None:  # the same resolution and message as inference.py
            from agegender.shipped import pretrained_path  # noqa: PLC0415

            args.model_path = str(pretrained_path(args.cls_task))
        if args.manifest:
            result = _evaluate_manifest(args)
        else:
            from agegender.evaluation import evaluate  # noqa: PLC0415

            result = evaluate(args.dataset_dir, args.model_path, args.cls_task,
                              split=args.split, results_dir=args.results_dir,
                              batch_size=args.batch_size, skip_corrupt=args.skip_corrupt,
                              verify=not args.no_verify, max_crops=args.max_crops)
        print(result["text"])
        for name, path in result["paths"].items():
            print(f"  {name}: {path}")
        from agegender.pipeline import corrupt_summary  # noqa: PLC0415

        skipped = corrupt_summary({args.split: result.get("corrupt", {})})
        if skipped:
            print(f"  WARNING: {skipped}")
        silent = result.get("no_speech", {})
        if silent:
            shown = ", ".join(f"{key} ({share:.0%} voiced)" for key, share in
                              list(silent.items())[:5])
            print(f"  no speech: {len(silent)} clips left out (--min_voiced "
                  f"{args.min_voiced:g}): {shown}" + (", ..." if len(silent) > 5 else ""))

    return cli.run_cli(work, verbose=args.verbose)


def _evaluate_manifest(args: argparse.Namespace) -> dict:
    """``--manifest``: the table's ``--split`` rows, straight from audio."""
    from pathlib import Path  # noqa: PLC0415

    from agegender import pitch  # noqa: PLC0415
    from agegender.commonvoice import read_user_manifest  # noqa: PLC0415
    from agegender.errors import DatasetError  # noqa: PLC0415
    from agegender.evaluation import evaluate_clips  # noqa: PLC0415

    kept, dropped = read_user_manifest(args.manifest, default_split=args.split)
    if len(dropped):
        reasons = dropped["reason"].str.split(":").str[0].value_counts().to_dict()
        print(f"{args.manifest}: {len(dropped)} rows left out: {reasons}", file=sys.stderr)
    clips = kept[kept["split"] == args.split]
    if clips.empty:
        raise DatasetError(f"--manifest={args.manifest}: no usable row in the {args.split} "
                           "split")
    fit = kept[kept["split"].isin(("train", "dev"))]
    root = Path(args.manifest).absolute().parent
    return evaluate_clips(args.model_path, clips, task=args.cls_task, root=root,
                          results_dir=args.results_dir, split=args.split,
                          fit_clips=fit if len(fit) else None,
                          pitch_cache=pitch.results_cache_path(args.results_dir, root),
                          batch_size=args.batch_size, max_crops=args.max_crops,
                          min_voiced=args.min_voiced)


if __name__ == "__main__":
    sys.exit(main())

"""Evaluates a trained model on the test (or dev) split's TFRecords.

Example:
    python src/test.py --dataset_dir='data/CommonVoice' \
        --model_path='models/age/best_model_age.keras' --cls_task='age'
"""

from __future__ import annotations

import argparse
import sys

from agegender import cli
from agegender.labels import TASKS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True, help="dataset folder holding TFRecord/")
    parser.add_argument("--model_path", required=True,
                        help=".keras or .h5 file, or a SavedModel folder")
    parser.add_argument("--cls_task", default=None, choices=TASKS,
                        help="task to evaluate (default: the one stored in the model)")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--results_dir", default="results")
    cli.add_bool_flag(parser, "skip_corrupt", default=False,
                      help="leave out corrupt shard records (counted and named at the end) "
                           "instead of stopping at the first")
    cli.add_bool_flag(parser, "no_verify", default=False,
                      help="load the model even when it does not match its .sha256 sidecar")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluates; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        from agegender.evaluation import evaluate  # noqa: PLC0415
        from agegender.pipeline import corrupt_summary  # noqa: PLC0415

        result = evaluate(args.dataset_dir, args.model_path, args.cls_task, split=args.split,
                          results_dir=args.results_dir, batch_size=args.batch_size,
                          skip_corrupt=args.skip_corrupt, verify=not args.no_verify)
        print(result["text"])
        for name, path in result["paths"].items():
            print(f"  {name}: {path}")
        skipped = corrupt_summary({args.split: result["corrupt"]})
        if skipped:
            print(f"  WARNING: {skipped}")

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

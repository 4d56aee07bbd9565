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


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    parser = cli.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True, help="dataset folder holding TFRecord/")
    parser.add_argument("--model_path", required=True,
                        help=".keras or .h5 file, or a SavedModel folder")
    parser.add_argument("--cls_task", default=None, choices=TASKS,
                        help="task to evaluate (default: the one stored in the model)")
    parser.add_argument("--split", default="test", choices=("dev", "test"),
                        help="split to evaluate on")
    parser.add_argument("--batch_size", type=int, default=128, help="examples per model call")
    parser.add_argument("--results_dir", default="results",
                        help="reports go to RESULTS_DIR/<task>/")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluates; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        from agegender.evaluation import evaluate  # noqa: PLC0415

        result = evaluate(args.dataset_dir, args.model_path, args.cls_task, split=args.split,
                          results_dir=args.results_dir, batch_size=args.batch_size)
        print(result["text"])
        for name, path in result["paths"].items():
            print(f"  {name}: {path}")

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy and UAR on the held-out demo speakers, for each task, with the demo settings.

Trains each task on a preprocessed corpus (default: the demo corpus made by scripts/demo.sh)
into a temporary folder and evaluates on its test split. Run by hand:

    python bench/demo_accuracy.py --dataset_dir=data/DemoVoice
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EPOCHS = {"gender": 10, "age": 15, "gender_age": 15}  # as in scripts/demo.sh


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default="data/DemoVoice")
    parser.add_argument("--tasks", nargs="+", default=list(EPOCHS))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs_scale", type=float, default=1.0,
                        help="multiply every task's epochs (0.2 for a quick look)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Trains, evaluates and prints the table."""
    from agegender.config import TrainParams  # noqa: PLC0415
    from agegender.evaluation import evaluate  # noqa: PLC0415
    from agegender.pipeline import split_index  # noqa: PLC0415
    from agegender.training import train  # noqa: PLC0415

    args = parse_args(argv)
    image_size = split_index(args.dataset_dir, "train")["image_shape"][0]
    rows = []
    for task in args.tasks:
        epochs = max(1, round(EPOCHS[task] * args.epochs_scale))
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = train(args.dataset_dir, task, image_size=image_size, models_dir=out,
                           results_dir=out, verbose=0,
                           train_params=TrainParams(batch_size=args.batch_size,
                                                    num_epochs=epochs))
            seconds = time.perf_counter() - start
            test = evaluate(args.dataset_dir, result["keras"], task, results_dir=out)
        rows.append((task, epochs, result["best_epoch"], test["n"], test["accuracy"],
                     test["balanced_accuracy"], test["majority_baseline"], seconds))
    print(f"\n{'task':<11}{'epochs':>7}{'best':>6}{'clips':>7}{'accuracy':>10}{'UAR':>8}"
          f"{'chance':>8}{'train s':>9}")
    for task, epochs, best, n, accuracy, uar, chance, seconds in rows:
        print(f"{task:<11}{epochs:>7}{best:>6}{n:>7}{accuracy:>10.3f}{uar:>8.3f}{chance:>8.3f}"
              f"{seconds:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Trains the MAM-CNN on preprocessed TFRecord shards.

Example:
    python src/train.py --dataset_dir='data/CommonVoice' --cls_task='age' --num_epochs=20 \
        --show_live_plot=True
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: quiet C++ logs

from agegender import cli
from agegender.config import CLASS_WEIGHTS, DEFAULT_BN_MOMENTUM, STRATEGIES, TrainParams
from agegender.labels import TASKS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True,
                        help="dataset folder holding TFRecord/ (made by preprocess_dataset.py)")
    parser.add_argument("--cls_task", default="age", choices=TASKS)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--num_epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--class_weight", default="none", choices=CLASS_WEIGHTS,
                        help="balanced: weight classes by inverse frequency (Common Voice is "
                             "~3/4 male)")
    parser.add_argument("--early_stopping_patience", type=int, default=0,
                        help="stop after this many epochs without val_accuracy gain (0: off)")
    parser.add_argument("--image_size", type=int, default=None,
                        help="image height; must match the shards (default: the shards' size)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 on conv and dense kernels")
    parser.add_argument("--bn_momentum", type=float, default=DEFAULT_BN_MOMENTUM,
                        help="BatchNorm momentum (Keras' 0.99 leaves the moving statistics "
                             "unconverged on small corpora)")
    parser.add_argument("--models_dir", default="models")
    parser.add_argument("--results_dir", default="results")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--export_dir", default=None,
                        help="also write a TensorFlow SavedModel of the best model here")
    cli.add_bool_flag(parser, "show_summary", default=False, help="print the model summary")
    cli.add_bool_flag(parser, "show_live_plot", default=False,
                      help="redraw the training curves each epoch (window if a display exists, "
                           "PNG always)")
    cli.add_bool_flag(parser, "mixed_precision", default=False, help="float16 compute (GPUs)")
    cli.add_bool_flag(parser, "augment", default=False,
                      help="SpecAugment-style time and frequency masks on training batches")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Trains; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        from agegender.training import export_saved_model, train  # noqa: PLC0415

        params = TrainParams(batch_size=args.batch_size, learning_rate=args.learning_rate,
                             num_epochs=args.num_epochs, seed=args.seed,
                             class_weight=args.class_weight,
                             early_stopping_patience=args.early_stopping_patience,
                             strategy=args.strategy, mixed_precision=args.mixed_precision,
                             augment=args.augment)
        result = train(args.dataset_dir, args.cls_task, train_params=params,
                       image_size=args.image_size, l2=args.l2, bn_momentum=args.bn_momentum,
                       models_dir=args.models_dir, results_dir=args.results_dir,
                       show_summary=args.show_summary, show_live_plot=args.show_live_plot)
        print(f"best val_accuracy {result['best_val_accuracy']:.4f} at epoch "
              f"{result['best_epoch']}")
        print(f"  checkpoints: {result['keras']}  {result['h5']}")
        print(f"  training log: {result['csv']}")
        print(f"  training curves: {result['plot']}")
        if args.export_dir:
            print(f"  SavedModel: {export_saved_model(result['keras'], args.export_dir)}")

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

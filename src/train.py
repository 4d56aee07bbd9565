"""Trains the MAM-CNN on preprocessed TFRecord shards.

Example:
    python src/train.py --dataset_dir='data/CommonVoice' --cls_task='age' --num_epochs=20 \
        --show_live_plot=True
"""

from __future__ import annotations

import argparse
import sys

from agegender import cli
from agegender.config import (
    ARCHITECTURES,
    CLASS_WEIGHTS,
    DEFAULT_BN_MOMENTUM,
    MONITORS,
    STRATEGIES,
    ModelParams,
    TrainParams,
)
from agegender.labels import TASKS


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    # Long because: an argparse table, one flag per statement.
    parser = cli.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True,
                        help="dataset folder holding TFRecord/ (made by preprocess_dataset.py; "
                             "its --output_dir when one was given)")
    parser.add_argument("--cls_task", default="age", choices=TASKS, help="what to predict")
    parser.add_argument("--batch_size", type=int, default=128, help="examples per step")
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="Adam's learning rate")
    parser.add_argument("--num_epochs", type=int, default=50, help="passes over train")
    parser.add_argument("--seed", type=int, default=42,
                        help="seeds weights, shuffling and dropout")
    parser.add_argument("--class_weight", default="none", choices=CLASS_WEIGHTS,
                        help="balanced: weight classes by inverse frequency (Common Voice is "
                             "~3/4 male)")
    parser.add_argument("--monitor", default="val_uar", choices=MONITORS,
                        help="dev metric that picks the best epoch and stops early: val_uar "
                             "(balanced accuracy, the metric the test report leads with) or "
                             "val_accuracy (the old rule; on imbalanced data it keeps epochs "
                             "that call everyone the majority class); ties go to the lower "
                             "dev cross-entropy")
    parser.add_argument("--early_stopping_patience", type=int, default=0,
                        help="stop after this many epochs without a --monitor gain (0: off)")
    parser.add_argument("--image_size", type=int, default=None,
                        help="image height; must match the shards (default: the shards' size)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 on conv and dense kernels")
    parser.add_argument("--dense_units", type=int, default=ModelParams.dense_units,
                        help="width of the hidden dense layer (the paper's: 80)")
    parser.add_argument("--bn_momentum", type=float, default=DEFAULT_BN_MOMENTUM,
                        help="BatchNorm momentum (Keras' 0.99 leaves the moving statistics "
                             "unconverged on small corpora; measured in README.md, 'The "
                             "model', and docs/experiments.md)")
    parser.add_argument("--models_dir", default="models",
                        help="best checkpoints go to MODELS_DIR/<task>/")
    parser.add_argument("--results_dir", default="results",
                        help="training log and curves go to RESULTS_DIR/<task>/"
                             "best_model_<task>/, where test.py puts this model's reports")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES,
                        help="auto: multiworker with TF_CONFIG, mirrored with >1 GPU, else default")
    parser.add_argument("--export_dir", default=None,
                        help="also write a TensorFlow SavedModel of the best model here")
    cli.add_bool_flag(parser, "pitch_input", default=False,
                      help="the model variant that also reads each clip's voice statistics "
                           "(F0 median, 10th/90th percentile, voiced share; MFCC mean and "
                           "spread) beside the spectrogram, added to its logits; off: the "
                           "paper's network")
    parser.add_argument("--image_dropout", type=float, default=0.0,
                        help="with --pitch_input: share of training clips whose CNN logits are "
                             "dropped, so the voice-statistics head learns to stand alone "
                             "(0: off; measured in docs/experiments.md)")
    parser.add_argument("--architecture", default="mam_cnn", choices=ARCHITECTURES,
                        help="mam_cnn: the paper's network; voice_stats: a logistic "
                             "regression on the clip's voice statistics alone (needs shards "
                             "with them, as --pitch_input; no image is read); embedding: a "
                             "head on the clip's speaker embedding from the pretrained voice "
                             "encoder (shards made with --inputs naming embedding; with "
                             "--pitch_input also the statistics) (default: mam_cnn)")
    cli.add_bool_flag(parser, "embedding_input", default=False,
                      help="--architecture=mam_cnn: also read the clip's speaker embedding, "
                           "added to the logits as the voice statistics are")
    parser.add_argument("--head_units", type=int, default=0,
                        help="--architecture=embedding: hidden ReLU units of the head (0: a "
                             "logistic regression)")
    cli.add_bool_flag(parser, "show_summary", default=False, help="print the model summary")
    cli.add_bool_flag(parser, "show_live_plot", default=False,
                      help="redraw the training curves each epoch (window if a display exists, "
                           "PNG always)")
    cli.add_bool_flag(parser, "save_optimizer", default=False,
                      help="keep the optimizer state in the best checkpoints (3x larger; only "
                           "needed to continue training from them)")
    cli.add_bool_flag(parser, "mixed_precision", default=False,
                      help="reduced-precision compute: float16 on GPUs, bfloat16 on CPUs")
    cli.add_bool_flag(parser, "deterministic", default=False,
                      help="bit-identical runs for one --seed on one machine (slower)")
    cli.add_bool_flag(parser, "overwrite", default=False,
                      help="discard the backup of an interrupted run and start a new one")
    cli.add_bool_flag(parser, "tensorboard", default=False,
                      help="also write TensorBoard scalars to RESULTS_DIR/TASK/"
                           "best_model_TASK/tensorboard/")
    cli.add_skip_corrupt_flag(parser)
    cli.add_bool_flag(parser, "augment", default=False,
                      help="SpecAugment-style time and frequency masks on training batches")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Checks the flags' ranges and combinations; raises ParameterError naming the flag."""
    cli.check_numbers(args, {
        "batch_size": cli.POSITIVE_INT, "learning_rate": cli.Bounds(0, open_low=True),
        "num_epochs": cli.POSITIVE_INT, "seed": cli.SEED,
        "early_stopping_patience": cli.COUNT, "image_size": cli.IMAGE_SIZE,
        "l2": cli.Bounds(0), "bn_momentum": cli.Bounds(0, 1, open_high=True),
        "dense_units": cli.POSITIVE_INT,
        "image_dropout": cli.Bounds(0, 1, open_high=True), "head_units": cli.COUNT})
    if args.image_dropout and not args.pitch_input:
        from agegender.errors import ParameterError  # noqa: PLC0415

        raise ParameterError(f"--image_dropout={args.image_dropout} needs --pitch_input "
                             "(it drops the CNN's logits in favour of the voice statistics)")
    if args.architecture != "mam_cnn":
        from agegender.errors import ParameterError  # noqa: PLC0415

        image_flags = [flag for flag, used in (
            ("--image_dropout", args.image_dropout), ("--augment", args.augment),
            ("--embedding_input", args.embedding_input)) if used]
        if image_flags:
            raise ParameterError(f"{', '.join(image_flags)}: not for "
                                 f"--architecture={args.architecture}, which reads no image")


def print_result(result: dict) -> None:
    """Prints where training left the best score, checkpoints, log and curves."""
    from agegender.pipeline import corrupt_summary  # noqa: PLC0415

    print(f"best {result['monitor']} {result['best_score']:.4f} at epoch "
          f"{result['best_epoch']}")
    print(f"  checkpoints: {result['keras']}  {result['h5']}")
    print(f"  training log: {result['csv']}")
    print(f"  training curves: {result['plot']}")
    if "tensorboard" in result:
        print(f"  TensorBoard: {result['tensorboard']}")
    skipped = corrupt_summary(result.get("corrupt", {}))
    if skipped:
        print(f"  WARNING: {skipped}")


def main(argv: list[str] | None = None) -> int:
    """Trains; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        check_args(args)
        from agegender.checkpoints import export_saved_model  # noqa: PLC0415
        from agegender.training import train  # noqa: PLC0415

        params = TrainParams(batch_size=args.batch_size, learning_rate=args.learning_rate,
                             num_epochs=args.num_epochs, seed=args.seed,
                             class_weight=args.class_weight,
                             early_stopping_patience=args.early_stopping_patience,
                             strategy=args.strategy, mixed_precision=args.mixed_precision,
                             deterministic=args.deterministic, augment=args.augment,
                             monitor=args.monitor)
        # --architecture=voice_stats reads the statistics alone: it implies --pitch_input.
        network = ModelParams(l2=args.l2, bn_momentum=args.bn_momentum,
                              dense_units=args.dense_units,
                              pitch_input=args.pitch_input or args.architecture == "voice_stats",
                              image_dropout=args.image_dropout, architecture=args.architecture,
                              embedding_input=args.embedding_input, head_units=args.head_units)
        result = train(args.dataset_dir, args.cls_task, train_params=params,
                       model_params=network, image_size=args.image_size,
                       models_dir=args.models_dir, results_dir=args.results_dir,
                       show_summary=args.show_summary, show_live_plot=args.show_live_plot,
                       save_optimizer=args.save_optimizer, overwrite=args.overwrite,
                       tensorboard=args.tensorboard,
                       skip_corrupt=args.skip_corrupt, verbose=cli.keras_verbosity())
        print_result(result)
        if args.export_dir:
            print(f"  SavedModel: {export_saved_model(result['keras'], args.export_dir)}")

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

"""Common Voice → spectrogram PNGs → TFRecord shards.

Example:
    python src/preprocess_dataset.py --dataset_dir='data/CommonVoice/' --dataset_type='clean'
"""

from __future__ import annotations

import argparse
import sys

from agegender import cli
from agegender.config import (DATASET_TYPES, FEATURE_PRESETS, FEATURE_TYPES, FeatureParams,
                              PreprocessParams)


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    # Long because: an argparse table, one flag per statement.
    parser = cli.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True, help="dataset folder")
    parser.add_argument("--dataset_type", default="clean", choices=DATASET_TYPES,
                        help="raw: Kaggle Common Voice v1; clean: the original project's Audio/ "
                             "layout; cv: a modern Common Voice release; manifest: one labelled "
                             "table DIR/manifest.csv (path, gender and/or age, speaker, split) "
                             "(default: clean)")
    parser.add_argument("--stage", default="all",
                        choices=("all", "clean", "spectrograms", "tfrecords"),
                        help="run one stage only (default: all three)")
    parser.add_argument("--feature_preset", default="paper", choices=tuple(FEATURE_PRESETS),
                        help="paper: the paper's 16 kHz 64×64 spectrograms; voice: "
                             "300-3400 Hz at 8 kHz, harmonics resolved, spectral envelope removed, "
                             "silence trimmed, 2.56-s crops at 25 columns a second, 128×64 "
                             "(README: Feature presets)")
    parser.add_argument("--feature_type", default=None, choices=FEATURE_TYPES,
                        help="default: the preset's (spectrogram)")
    parser.add_argument("--image_size", type=int, default=None,
                        help="image height (and width, for square presets) in pixels "
                             "(default: the preset's; paper 64)")
    parser.add_argument("--num_workers", type=int, default=0,
                        help="spectrogram processes (default 0: all cores)")
    parser.add_argument("--shard_size", type=int, default=1000, help="examples per shard")
    parser.add_argument("--seed", type=int, default=42,
                        help="seeds the train shuffle and the speaker split")
    parser.add_argument("--results_dir", default="results", help="where reports go")
    parser.add_argument("--output_dir", default=None,
                        help="where Manifest/ Spectrograms/ TFRecord/ go (default: in "
                             "--dataset_dir, as the original project); for a read-only or "
                             "shared dataset; train.py and test.py then take this folder as "
                             "their --dataset_dir")
    parser.add_argument("--augment_copies", type=int, default=0,
                        help="extra images of each training clip, each from a random waveform "
                             "copy: a random 4-s segment, speed 0.9-1.1, a telephone line "
                             "(p=0.5), white noise at 15-35 dB SNR (p=0.5); dev and test are "
                             "never copied (default 0: none; README: Feature presets)")
    parser.add_argument("--min_voiced", type=float, default=0.1,
                        help="speech gate: a clip with fewer voiced frames than this share is "
                             "skipped as 'no speech' and listed in the report; 0: no gate "
                             "(default: %(default)s; README: Speech gate)")
    parser.add_argument("--sample_rate", type=int, default=None,
                        help="Hz every clip is resampled to (default: the preset's; "
                             "--inputs naming embedding needs 16000, the voice encoder's rate)")
    parser.add_argument("--inputs", default="spectrogram",
                        help="model inputs to compute and store per clip, comma-separated: "
                             "spectrogram (the PNG a MAM-CNN reads), pitch (the 45 voice "
                             "statistics a --pitch_input or voice_stats model reads), embedding "
                             "(the voice encoder's speaker embedding); each costs only when "
                             "named (default: %(default)s, what train.py's default model reads)")
    cli.add_bool_flag(parser, "split_by_speaker", default=False,
                      help="rebuild train/dev/test from all rows (cv: validated.tsv), disjoint "
                           "speakers, ~80/10/10 stratified by gender and age; needs a speaker, "
                           "speaker_id or client_id column")
    cli.add_bool_flag(parser, "follow_symlinks", default=False,
                      help="accept a path inside the dataset folder that is a symlink to a "
                           "file outside it (paths escaping as written stay refused)")
    cli.add_bool_flag(parser, "overwrite", default=False,
                      help="remake PNGs and shards that already exist")
    cli.add_bool_flag(parser, "allow_speaker_overlap", default=False,
                      help="go on when one speaker's clips lie in two splits (said in the "
                           "reports) instead of stopping; a file in two splits is refused "
                           "always")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the preprocessing; returns the exit status."""
    args = parse_args(argv)

    def work() -> None:
        cli.check_numbers(args, {"image_size": cli.IMAGE_SIZE, "num_workers": cli.COUNT,
                                 "shard_size": cli.POSITIVE_INT, "seed": cli.SEED,
                                 "augment_copies": cli.COUNT, "min_voiced": cli.Bounds(0, 1)})
        from agegender.preprocess import STAGES, preprocess  # noqa: PLC0415

        params = PreprocessParams(dataset_type=args.dataset_type,
                                  split_by_speaker=args.split_by_speaker,
                                  follow_symlinks=args.follow_symlinks,
                                  shard_size=args.shard_size, num_workers=args.num_workers,
                                  overwrite=args.overwrite, seed=args.seed,
                                  augment_copies=args.augment_copies,
                                  min_voiced=args.min_voiced,
                                  allow_speaker_overlap=args.allow_speaker_overlap,
                                  inputs=tuple(k.strip() for k in args.inputs.split(",")
                                               if k.strip()))
        overrides = {name: value for name, value in (("feature_type", args.feature_type),
                                                     ("image_size", args.image_size),
                                                     ("sample_rate", args.sample_rate))
                     if value is not None}
        features = FeatureParams.preset(args.feature_preset, **overrides)
        stages = STAGES if args.stage == "all" else (args.stage,)
        summary = preprocess(args.dataset_dir, params=params, features=features,
                             results_dir=args.results_dir, stages=stages,
                             output_dir=args.output_dir)
        warnings = summary.pop("warnings", [])
        notes = summary.pop("notes", [])
        print("preprocessing done:")
        for key, value in summary.items():
            print(f"  {key}: {value}")
        # Empty or tiny splits are said here too, not only at test time.
        for line in warnings:
            print(f"  WARNING: {line}")
        from agegender.provenance import NOTE  # noqa: PLC0415

        for line in notes:  # what the demo corpus causes on purpose (agegender.provenance)
            print(f"  {NOTE}{line}")

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

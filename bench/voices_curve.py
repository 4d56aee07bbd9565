"""How many training voices the MAM-CNN needs: gender UAR on unseen demo voices against the
number of training speakers.

The real-speech benchmark (``real_speech.py``) trains on 4-6 voices and cannot vary that
number; the synthetic demo corpus can. From a demo corpus made by
``src/make_demo_dataset.py`` (``clips.csv`` names each clip's speaker), this makes one
``manifest``-layout folder per size N: N training speakers (N/2 of each gender, a seeded
draw, the smaller sets inside the larger ones), and always the corpus's own dev and test
speakers; then runs the product's CLIs on each (``real_speech.run_fold``: preprocess, train,
test) and prints, per N, the test UAR with its 95 % bootstrap-over-speakers interval.
Synthetic voices are easier than real ones (see bench/README.md, "Real speech: Debian
voices"): read the curve's shape, not its level.

Run (after ``python src/make_demo_dataset.py --out data/DemoVoice``)::

    python bench/voices_curve.py --demo_dir data/DemoVoice --sizes 4,8,16,32,64 \\
        --preprocess_args='--feature_preset=voice' --train_args='--augment'
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_speech  # noqa: E402
from common import format_table  # noqa: E402

COLUMNS = ("path", "gender", "speaker", "split")


def speaker_table(demo_dir: Path) -> pd.DataFrame:
    """One row per labelled demo clip: path (relative to ``demo_dir``), gender, speaker,
    split; clips without a male/female label (the corpus's deliberate bad rows) left out."""
    clips = pd.read_csv(demo_dir / "clips.csv", dtype=str, keep_default_na=False)
    labels = pd.concat([pd.read_csv(demo_dir / f"cv-valid-{split}.csv", dtype=str,
                                    keep_default_na=False) for split in ("train", "dev", "test")])
    table = clips.merge(labels[["filename", "gender"]], on="filename", how="inner")
    table = table[table["gender"].isin(("male", "female"))]
    return pd.DataFrame({"path": table["filename"], "gender": table["gender"],
                         "speaker": table["speaker_id"], "split": table["split"]})


def nested_speakers(table: pd.DataFrame, sizes: Sequence[int], *, seed: int) -> dict[int, list]:
    """``{N: training speakers}``, N/2 of each gender, each set inside the next larger one."""
    rng = random.Random(seed)
    train = table[table["split"] == "train"]
    by_gender = {}
    for gender in ("female", "male"):
        names = sorted(train.loc[train["gender"] == gender, "speaker"].unique())
        rng.shuffle(names)
        by_gender[gender] = names
    out = {}
    for size in sizes:
        half = size // 2
        if half < 1 or any(len(names) < half for names in by_gender.values()):
            raise SystemExit(f"--sizes: {size} needs {half} training speakers of each gender; "
                             f"the corpus has {', '.join(f'{len(v)} {k}' for k, v in by_gender.items())}")
        out[size] = sorted(by_gender["female"][:half] + by_gender["male"][:half])
    return out


def audio_file(demo_dir: Path, path: str) -> Path:
    """Where a CSV ``filename`` lies: the Kaggle layout nests the audio one level deeper
    (``cv-valid-train/cv-valid-train/x.mp3``) than the CSVs name it."""
    nested = demo_dir / Path(path).parts[0] / path
    return nested if nested.is_file() else demo_dir / path


def write_size(demo_dir: Path, table: pd.DataFrame, speakers: Sequence[str], folder: Path) -> None:
    """A manifest folder: the chosen training speakers' clips, every dev and test clip
    (audio hard-linked from the demo corpus)."""
    rows = table[(table["split"] != "train") | table["speaker"].isin(speakers)]
    for path in rows["path"]:
        source = audio_file(demo_dir, path)
        if not source.is_file():
            raise SystemExit(f"{demo_dir}: no audio file for clips.csv row {path!r}")
        real_speech.link(source, folder / path)
    real_speech.write_csv(folder / "manifest.csv", COLUMNS, rows.to_dict("records"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo_dir", type=Path, required=True, help="a demo corpus")
    parser.add_argument("--work_dir", type=Path, default=Path("data/voices_curve"),
                        help="where the per-size folders go (default data/voices_curve)")
    parser.add_argument("--sizes", default="4,8,16,32,64", help="training speakers per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--preprocess_args", default="", help="passed to preprocess_dataset.py")
    parser.add_argument("--train_args", default="", help="passed to train.py")
    parser.add_argument("--test_args", default="", help="passed to test.py")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    work, demo = args.work_dir.resolve(), args.demo_dir.resolve()
    if work == demo or demo in work.parents or work in demo.parents:
        # The per-size folders replace files at their paths: never inside the corpus.
        raise SystemExit(f"--work_dir={args.work_dir} must lie outside --demo_dir={args.demo_dir}")
    table = speaker_table(args.demo_dir)
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    for size, speakers in nested_speakers(table, sizes, seed=args.seed).items():
        folder = args.work_dir / f"n{size:03d}"
        write_size(args.demo_dir, table, speakers, folder)
        real_speech.run_fold(folder, args)
        clips = real_speech.fold_predictions(folder, 0)
        (cnn,) = [row for row in real_speech.summarize(clips, seed=args.seed)
                  if row["fold"] == "all" and row["model"] == "CNN"]
        train_clips = int(((table["split"] == "train") & table["speaker"].isin(speakers)).sum())
        rows.append([str(size), str(train_clips), str(cnn["speakers"]),
                     f"{cnn['uar']:.3f} [{cnn['uar_ci'][0]:.2f}, {cnn['uar_ci'][1]:.2f}]"])
        print(format_table(["training voices", "training clips", "test voices",
                            "test UAR [95% CI]"], rows,
                           title=f"gender, demo corpus, {args.preprocess_args or 'paper'} "
                                 f"{args.train_args}, {args.num_epochs} epochs"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

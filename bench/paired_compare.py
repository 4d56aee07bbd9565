"""Is model A better than model B on the same test clips? A paired speaker bootstrap.

Two models' own intervals (``test.py``'s "UAR [95 % CI]") overlap almost entirely on a test
split of ~180 speakers, yet they are scored on the same speakers: what is hard or easy about
a speaker is common to both. This resamples speakers (stratified by true class, as
``agegender.metrics.bootstrap_ci``) and scores both models on each resample, so the interval
of the *difference* shows whether a change is real (``metrics.paired_bootstrap_difference``).

Reads ``predictions_<task>.csv`` files that ``src/test.py`` writes (columns ``key``,
``speaker_id``, ``true``, ``predicted``, and ``pitch_predicted`` for gender). Every file named
is compared against ``--against``: another such file, or ``pitch`` for the pitch rule's column
of the first file. The files must hold the same clips with the same truth. Run from the
repo root::

    python bench/paired_compare.py --against results/r10/gender/predictions_gender.csv \\
        results/r12/gender/predictions_gender.csv results/r13/gender/predictions_gender.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common  # first: puts src/ on the path
import pandas as pd

PITCH = "pitch"


def read_predictions(path: Path, column: str = "predicted") -> pd.DataFrame:
    """(key → speaker_id, true, predicted) from a ``test.py`` predictions CSV; a one-line
    SystemExit names the file and what it lacks."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as err:
        raise SystemExit(f"{path}: cannot read a predictions CSV ({err})") from err
    missing = {"key", "speaker_id", "true", column} - set(table.columns)
    if missing:
        raise SystemExit(f"{path}: no column(s) {sorted(missing)}; expected a predictions "
                         "CSV from src/test.py")
    if table["key"].duplicated().any():
        raise SystemExit(f"{path}: key {table['key'][table['key'].duplicated()].iloc[0]!r} "
                         "appears twice")
    return (table.set_index("key")[["speaker_id", "true", column]]
            .rename(columns={column: "predicted"}))


def compare(against: pd.DataFrame, other: pd.DataFrame, *, name: str,
            against_name: str, seed: int = 0) -> list[object]:
    """One table row: name, clips, speakers, UAR of each, difference [CI], P(better)."""
    from agegender.metrics import paired_bootstrap_difference, uar

    if set(other.index) != set(against.index):
        raise SystemExit(f"{name} and {against_name} hold different clips "
                         f"({len(other)} and {len(against)}; "
                         f"{len(set(other.index) ^ set(against.index))} in one only)")
    other = other.loc[against.index]
    if not (other["true"] == against["true"]).all():
        key = other.index[(other["true"] != against["true"]).to_numpy()][0]
        raise SystemExit(f"{name} and {against_name} disagree on the truth of clip {key!r}")
    classes = sorted(set(against["true"]) | set(against["predicted"]) | set(other["predicted"]))
    codes = {label: code for code, label in enumerate(classes)}
    truth = against["true"].map(codes).to_numpy()
    pred_a = other["predicted"].map(codes).to_numpy()
    pred_b = against["predicted"].map(codes).to_numpy()
    result = paired_bootstrap_difference(truth, pred_a, pred_b,
                                         against["speaker_id"].tolist(), seed=seed)
    low, high = result["interval"]
    return [name, len(truth), result["n_units"], f"{uar(truth, pred_a):.3f}",
            f"{uar(truth, pred_b):.3f}", f"{result['difference']:+.3f} [{low:+.3f}, {high:+.3f}]",
            f"{result['a_better']:.2f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", nargs="+", type=Path,
                        help="predictions CSVs from src/test.py, each compared with --against")
    parser.add_argument("--against", required=True,
                        help=f"a predictions CSV, or {PITCH!r}: the pitch rule's column of the "
                             "first file")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.against == PITCH:
        against = read_predictions(args.predictions[0], "pitch_predicted")
        against_name = f"pitch rule ({args.predictions[0]})"
    else:
        against = read_predictions(Path(args.against))
        against_name = args.against
    rows = [compare(against, read_predictions(path), name=str(path),
                    against_name=against_name, seed=args.seed)
            for path in args.predictions]
    print(f"against: {against_name}")
    print(common.format_table(["model", "clips", "speakers", "UAR", "UAR against",
                               "difference [95 % CI]", "P(better)"], rows))
    print("P(better): share of the speaker resamples in which the model's UAR is higher.")


if __name__ == "__main__":
    main()

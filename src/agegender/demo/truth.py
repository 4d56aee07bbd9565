"""The demo's last step: each prediction beside the true label of its demo clip.

``python -m agegender.demo.truth --dataset_dir=data/DemoVoice --predictions=P.csv
--cls_task=gender`` prints, per row of an ``src/inference.py --output`` CSV,
``FILE: LABEL  true: TRUE (right|wrong)``, then ``N of M right``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agegender import labels
from agegender.errors import AgeGenderError, DatasetError


def _key(path: str | Path) -> str:
    """``cv-valid-test/sample-000000.mp3``: a clip's split folder and name, as the corpus
    CSVs' ``filename`` column spells it (names repeat across splits, so the folder is kept)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def true_labels(dataset_dir: str | Path, task: str) -> dict[str, str]:
    """Every demo clip's true class name for ``task``, keyed as ``_key`` spells it.

    Raises:
        DatasetError: when ``dataset_dir`` holds no ``cv-valid-*.csv``.
    """
    tables = sorted(Path(dataset_dir).glob("cv-valid-*.csv"))
    if not tables:
        raise DatasetError(f"{dataset_dir}: no cv-valid-*.csv (expected the demo corpus)")
    truth = {}
    for table in tables:
        for row in pd.read_csv(table, dtype=str).itertuples(index=False):
            gender, age = labels.normalise_gender(row.gender), labels.normalise_age(row.age)
            label = {"gender": gender, "age": age,
                     "gender_age": f"{gender}-{age}" if gender and age else None}[task]
            if label is not None:
                truth[_key(row.filename)] = label
    return truth


def compare_lines(predictions: pd.DataFrame, truth: dict[str, str]) -> list[str]:
    """One line per prediction (``file``, ``label`` columns), then the count right.

    A file not in ``truth`` gets ``true: unknown``; it counts neither way.
    """
    lines, right, known = [], 0, 0
    for row in predictions.itertuples(index=False):
        true = truth.get(_key(row.file))
        if true is None:
            lines.append(f"{row.file}: {row.label}  true: unknown")
            continue
        known += 1
        right += row.label == true
        lines.append(f"{row.file}: {row.label}  true: {true} "
                     f"({'right' if row.label == true else 'wrong'})")
    lines.append(f"{right} of {known} right")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True, help="the demo corpus folder")
    parser.add_argument("--predictions", required=True, help="src/inference.py --output CSV")
    parser.add_argument("--cls_task", required=True, choices=labels.TASKS)
    args = parser.parse_args(argv)
    try:
        predictions = pd.read_csv(args.predictions, dtype={"label": str})
        print("\n".join(compare_lines(predictions, true_labels(args.dataset_dir, args.cls_task))))
    except (AgeGenderError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

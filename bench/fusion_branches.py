"""Which branch of a ``--pitch_input`` model does the work: the CNN's or the statistics'.

The model's logits are the sum of two branches (``model._pitch_head``): ``image_logits``
(the MAM-CNN on the spectrogram) and ``pitch_logits`` (the clip's voice statistics). This
scores each branch alone and their sum (the model) on the shards of a preprocessed dataset,
one image per clip as stored: UAR per split, and the spread of each branch's logits. A
branch whose UAR alone is near or below chance while the sum is good is a residual on the
other; one that lowers the held-out UAR when added fits the training speakers only.

Run from the repo root, e.g. on cv-sample preprocessed with the ``voice`` preset::

    python bench/fusion_branches.py --dataset_dir data/CVSampleV \\
        --model models/cvs_r9/gender/best_model_gender.keras
"""

from __future__ import annotations

import argparse

import common  # first: puts src/ on the path, quiets TensorFlow
import numpy as np


def branch_logits(model_path: str, dataset_dir: str, split: str, task: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image logits [clips, classes], statistics logits [clips, classes], labels [clips])."""
    import keras

    import agegender  # noqa: F401  (registers the custom layers)
    from agegender.pipeline import make_dataset

    model = keras.models.load_model(model_path, safe_mode=True)
    names = {layer.name for layer in model.layers}
    if not {"image_logits", "pitch_logits"} <= names:
        raise SystemExit(f"{model_path}: not a --pitch_input model (no image_logits and "
                         "pitch_logits layers)")
    branches = keras.Model(model.inputs, [model.get_layer("image_logits").output,
                                          model.get_layer("pitch_logits").output])
    dataset, _ = make_dataset(dataset_dir, split, task, batch_size=64, training=False,
                              pitch=True)
    image, statistics, truth = [], [], []
    for inputs, labels in dataset:
        a, b = branches.predict_on_batch(inputs)
        image.append(a)
        statistics.append(b)
        truth.append(np.asarray(labels))
    return np.concatenate(image), np.concatenate(statistics), np.concatenate(truth)


def main(argv: list[str] | None = None) -> None:
    from agegender.metrics import uar

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", required=True, help="preprocessed, with statistics")
    parser.add_argument("--model", action="append", required=True,
                        help="a --pitch_input model (.keras); repeat for several")
    parser.add_argument("--task", default="gender")
    parser.add_argument("--splits", default="dev,test")
    args = parser.parse_args(argv)
    rows = []
    for model_path in args.model:
        for split in args.splits.split(","):
            image, statistics, truth = branch_logits(model_path, args.dataset_dir, split,
                                                     args.task)
            rows.append([model_path, split, len(truth),
                         f"{uar(truth, image.argmax(1)):.3f}",
                         f"{uar(truth, statistics.argmax(1)):.3f}",
                         f"{uar(truth, (image + statistics).argmax(1)):.3f}",
                         f"{image.std(axis=0).mean():.2f}",
                         f"{statistics.std(axis=0).mean():.2f}"])
    print(common.format_table(["model", "split", "clips", "UAR image", "UAR statistics",
                               "UAR both", "logit spread image", "logit spread stats"],
                              rows))


if __name__ == "__main__":
    main()

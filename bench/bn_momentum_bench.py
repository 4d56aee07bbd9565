"""BatchNorm momentum on a small corpus: inference-mode vs batch-statistics dev accuracy.

Trains the MAM-CNN once per momentum on a preprocessed corpus (default: the demo corpus) and,
after every epoch, predicts the dev split twice: with the moving statistics (what inference
uses) and with the dev batch's own statistics. Where the two differ, the moving statistics
have not converged. Run by hand:

    python bench/bn_momentum_bench.py --dataset_dir=data/DemoVoice --epochs=6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default="data/DemoVoice",
                        help="preprocessed corpus (run scripts/demo.sh first)")
    parser.add_argument("--task", default="gender")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.99, 0.9, 0.8, 0.7, 0.6])
    return parser.parse_args(argv)


def run(dataset_dir: str, task: str, momentum: float, epochs: int, batch_size: int
        ) -> list[tuple[float, float]]:
    """Returns per epoch (accuracy with moving statistics, accuracy with batch statistics)."""
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from agegender.config import TrainParams  # noqa: PLC0415
    from agegender.pipeline import make_dataset  # noqa: PLC0415
    from agegender.training import train  # noqa: PLC0415

    dev, index = make_dataset(dataset_dir, "dev", task, batch_size=10**6, training=False)
    images, codes = (t.numpy() for t in next(iter(dev)))
    rows: list[tuple[float, float]] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            moving = keras.ops.convert_to_numpy(self.model(images, training=False))
            batch = keras.ops.convert_to_numpy(self.model(images, training=True))
            rows.append((float(np.mean(moving.argmax(1) == codes)),
                         float(np.mean(batch.argmax(1) == codes))))

    with tempfile.TemporaryDirectory() as out:
        train(dataset_dir, task, train_params=TrainParams(batch_size=batch_size,
                                                          num_epochs=epochs),
              image_size=index["image_shape"][0], bn_momentum=momentum, models_dir=out,
              results_dir=out, verbose=0, extra_callbacks=[Probe()])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Prints the table."""
    args = parse_args(argv)
    table = {m: run(args.dataset_dir, args.task, m, args.epochs, args.batch_size)
             for m in args.momenta}
    print(f"\n{args.task} dev accuracy, moving statistics (batch statistics), by epoch")
    print("momentum " + "".join(f"{f'epoch {e + 1}':>14}" for e in range(args.epochs)))
    for momentum, rows in table.items():
        print(f"{momentum:<9}" + "".join(f"{f'{m:.2f} ({b:.2f})':>14}" for m, b in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

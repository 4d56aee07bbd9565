"""Training-input benchmark: the TFRecord pipeline vs the same images already in memory.

Writes a synthetic Kaggle Common Voice v1 corpus in a temporary folder, turns it into
TFRecord shards with the project's own ``preprocess()``, then fits one MAM-CNN
(``agegender.model.build_model``, compiled as ``agegender.training.train`` compiles it:
Adam, SparseCategoricalCrossentropy, accuracy) on three inputs of the same train split,
epoch by epoch in rotation so machine noise hits all three alike:

* ``make_dataset(cache=False)``: TFRecord → parse → PNG decode every epoch;
* ``make_dataset(cache=True)``: decoded once, then cached (what ``training.train`` uses for
  corpora under 2 GB of decoded images);
* in memory: ``tf.data.Dataset.from_tensor_slices`` of the very same decoded images (read
  once through ``make_dataset``), as float32, shuffled, batched and prefetched alike.

One warm-up epoch (tracing) and one input-only pass per input (filling the cache) come
first. Reports examples/s (wall) and CPU seconds per example, and the TFRecord/in-memory
ratio. Targets are printed as met or missed, never asserted.

Run:
    python bench/train_bench.py                       # 512 examples, 2 timed epochs each
    python bench/train_bench.py --examples 128 --epochs 1   # quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

from preprocess_bench import (  # noqa: E402
    format_table, load_line, measured, met, timed, write_raw_corpus)

HELD_OUT = 12  # dev and test clips; preprocess() wants all three splits


def make_corpus(tmp: Path, args: argparse.Namespace) -> Path:
    """Synthetic raw corpus → the project's shards (``preprocess()``, all stages)."""
    from agegender.config import FeatureParams, PreprocessParams  # noqa: PLC0415
    from agegender.preprocess import preprocess  # noqa: PLC0415

    root = tmp / "corpus"
    write_raw_corpus(root, {"train": args.examples, "dev": HELD_OUT, "test": HELD_OUT},
                     seconds=args.seconds, rate=args.rate, fmt=args.format)
    summary = preprocess(root, params=PreprocessParams(dataset_type="raw",
                                                       shard_size=args.shard_size),
                         features=FeatureParams(), results_dir=tmp / "results")
    if summary["examples"]["train"] != args.examples:
        raise SystemExit(f"preprocess wrote {summary['examples']['train']} train examples, "
                         f"expected {args.examples}")
    return root


def in_memory_dataset(root: Path, args: argparse.Namespace):
    """The train split decoded once through ``make_dataset``, then served from memory."""
    import tensorflow as tf  # noqa: PLC0415

    from agegender.pipeline import make_dataset  # noqa: PLC0415

    stored, _ = make_dataset(root, "train", args.task, batch_size=256, training=False)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in stored), strict=True)
    images = np.concatenate(images)  # [examples, 64, 64, 3] float32 in 0-255
    labels = np.concatenate(labels)  # [examples] int32
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shuffle(len(labels), seed=args.seed, reshuffle_each_iteration=True)
    return dataset.batch(args.batch_size).prefetch(tf.data.AUTOTUNE), images.nbytes


def compiled_model(index: dict, args: argparse.Namespace):
    """``build_model`` + the compile of ``training.train``."""
    import keras  # noqa: PLC0415

    from agegender import labels  # noqa: PLC0415
    from agegender.config import ModelParams, TrainParams  # noqa: PLC0415
    from agegender.model import build_model  # noqa: PLC0415

    names = labels.class_names(args.task)
    keras.utils.set_random_seed(args.seed)
    model = build_model(ModelParams(image_size=index["image_shape"][0],
                                    num_classes=len(names), task=args.task,
                                    class_names=names),
                        features=index.get("features"))
    model.compile(optimizer=keras.optimizers.Adam(TrainParams().learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return model


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=512,
                        help="train examples (default 512)")
    parser.add_argument("--batch_size", type=int, default=64, help="default 64")
    parser.add_argument("--epochs", type=int, default=2,
                        help="timed epochs per input, after the warm-up (default 2)")
    parser.add_argument("--shard_size", type=int, default=128,
                        help="examples per shard; several shards exercise the interleaved "
                             "read (default 128)")
    parser.add_argument("--task", default="age", choices=("gender", "age", "gender_age"))
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length, s")
    parser.add_argument("--rate", type=int, default=16_000,
                        help="clip rate, Hz; 16 kHz WAV keeps corpus writing quick, the "
                             "images are the same 64x64 PNGs as from MP3 (default 16000)")
    parser.add_argument("--format", default="WAV", choices=("WAV", "MP3", "FLAC"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.examples < 1 or args.epochs < 1 or args.batch_size < 1:
        parser.error("--examples, --epochs and --batch_size must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agegender-train-bench-") as tmp:
        tmp = Path(tmp)
        print(f"making {args.examples} train examples with preprocess() in {tmp} ...",
              flush=True)
        corpus_s, root = timed(lambda: make_corpus(tmp, args))
        print(f"  done in {corpus_s:.1f} s", flush=True)

        from agegender.pipeline import make_dataset  # noqa: PLC0415

        plain, index = make_dataset(root, "train", args.task, batch_size=args.batch_size,
                                    training=True, seed=args.seed, cache=False)
        cached, _ = make_dataset(root, "train", args.task, batch_size=args.batch_size,
                                 training=True, seed=args.seed, cache=True)
        memory, memory_bytes = in_memory_dataset(root, args)
        inputs = {"TFRecord make_dataset(cache=False)": plain,
                  "TFRecord make_dataset(cache=True)": cached,
                  "in memory from_tensor_slices": memory}
        for name, dataset in inputs.items():
            if dataset.element_spec != memory.element_spec:
                raise SystemExit(f"{name}: element spec {dataset.element_spec} differs from "
                                 f"in memory {memory.element_spec}")

        def one_pass(dataset) -> None:
            for _ in dataset:
                pass

        # Input alone: a first pass fills the cache; the second is timed.
        input_only = {}
        for name, dataset in inputs.items():
            one_pass(dataset)
            wall, cpu, _ = measured(lambda dataset=dataset: one_pass(dataset))
            input_only[name] = (args.examples / wall, cpu / args.examples * 1e3)

        model = compiled_model(index, args)
        print(f"warm-up epoch (tracing) ... {load_line()}", flush=True)
        warm_s, _ = timed(lambda: model.fit(memory, epochs=1, verbose=0, shuffle=False))
        print(f"  {warm_s:.1f} s", flush=True)

        names = list(inputs)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for epoch in range(args.epochs):
            order = names[epoch % len(names):] + names[:epoch % len(names)]
            for name in order:
                wall, cpu, _ = measured(lambda name=name: model.fit(
                    inputs[name], epochs=1, verbose=0, shuffle=False))
                runs[name].append((wall, cpu))
                print(f"  epoch {epoch + 1}/{args.epochs} {name}: "
                      f"{args.examples / wall:.1f} examples/s, {load_line()}", flush=True)

    report(args, runs, input_only, memory_bytes)
    return 0


def report(args: argparse.Namespace, runs: dict[str, list[tuple[float, float]]],
           input_only: dict[str, tuple[float, float]], memory_bytes: int) -> None:
    """Prints the throughput table and the target lines."""
    memory_name = "in memory from_tensor_slices"
    n = args.examples
    speed = {name: statistics.median(n / wall for wall, _ in r) for name, r in runs.items()}
    cpu_ms = {name: statistics.median(cpu / n * 1e3 for _, cpu in r)
              for name, r in runs.items()}
    rows = []
    for name in runs:
        rows.append([name, f"{input_only[name][0]:,.0f}", f"{input_only[name][1]:.2f}",
                     f"{speed[name]:.1f}", f"{cpu_ms[name]:.1f}",
                     f"{speed[name] / speed[memory_name]:.1%}",
                     f"{cpu_ms[name] / cpu_ms[memory_name]:.3f}"])
    print()
    print(format_table(
        ["input", "input only ex/s", "input CPU ms/ex", "train ex/s", "train CPU ms/ex",
         "ex/s vs memory", "CPU vs memory"], rows,
        title=(f"Training throughput, {n} examples, batch {args.batch_size}, task "
               f"{args.task}, {os.cpu_count()} cores; median of {args.epochs} timed "
               f"epoch(s) per input, rotated; in-memory copy {memory_bytes / 2**20:.1f} MiB")))
    print()
    rows = []
    for name in names_tfrecord(runs):
        ratio = speed[name] / speed[memory_name]
        rows.append([f"{name} / in memory, examples/s (wall)", f"{ratio:.1%}", ">= 95%",
                     met(ratio >= 0.95)])
        # CPU seconds per example do not inflate when other processes take the cores.
        ratio = cpu_ms[memory_name] / cpu_ms[name]
        rows.append(["  same, examples per CPU-second (robust under load)", f"{ratio:.1%}",
                     ">= 95%", met(ratio >= 0.95)])
    cache_gain = (speed["TFRecord make_dataset(cache=True)"]
                  / speed["TFRecord make_dataset(cache=False)"])
    rows.append(["cache=True / cache=False, training examples/s", f"{cache_gain:.3f}", "", ""])
    print(format_table(["ratio (measured side by side)", "value", "target", "status"], rows))
    print("\nper-epoch examples/s (rotation order differs each epoch):")
    for name, r in runs.items():
        print(f"  {name}: " + ", ".join(f"{n / wall:.1f}" for wall, _ in r))
    print(load_line())


def names_tfrecord(runs: dict) -> list[str]:
    return [name for name in runs if name.startswith("TFRecord")]


if __name__ == "__main__":
    sys.exit(main())

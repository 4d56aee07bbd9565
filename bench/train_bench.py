"""Training-input benchmark: the TFRecord pipeline vs the same images already in memory.

A synthetic corpus in a temporary folder, made into shards by ``preprocess()``; one MAM-CNN
(``build_model`` + ``compile_model``, as training does) fits three inputs of the same train
split, epoch by epoch in rotation so machine noise hits all alike:
``make_dataset(cache=False)`` (parse and decode every epoch), ``make_dataset(cache=True)``
(what ``training.train`` uses under 2 GB of decoded images), and the very same decoded
images from memory (``from_tensor_slices``, shuffled, batched and prefetched alike). After
a warm-up epoch it reports examples/s over each epoch's steps (best and median epoch) and
over the whole ``fit()``, CPU time per example, step times, and the ratios to memory.

Run: ``python bench/train_bench.py`` (512 examples, 3 timed epochs each); quick:
``--examples 128 --epochs 1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import format_table, load_line, measured, met, timed, write_raw_corpus  # noqa: E402

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
    images, labels = zip(*((x["spectrogram"].numpy(), y.numpy()) for x, y in stored),
                         strict=True)
    images = np.concatenate(images)  # [examples, 64, 64, 3] float32 in 0-255
    labels = np.concatenate(labels)  # [examples] int32
    dataset = tf.data.Dataset.from_tensor_slices(({"spectrogram": images}, labels))
    dataset = dataset.shuffle(len(labels), seed=args.seed, reshuffle_each_iteration=True)
    # As training batches do (pipeline.make_dataset): the partial last batch is dropped.
    dataset = dataset.batch(args.batch_size, drop_remainder=len(labels) >= args.batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE), images.nbytes


def compiled_model(index: dict, args: argparse.Namespace):
    """``build_model`` + ``compile_model``, as ``training.train`` builds it."""
    import keras  # noqa: PLC0415

    from agegender import labels  # noqa: PLC0415
    from agegender.config import ModelParams, TrainParams  # noqa: PLC0415
    from agegender.model import build_model, compile_model  # noqa: PLC0415

    names = labels.class_names(args.task)
    keras.utils.set_random_seed(args.seed)
    model = build_model(ModelParams(image_size=index["image_shape"][0],
                                    num_classes=len(names), task=args.task,
                                    class_names=names),
                        features=index.get("features"))
    return compile_model(model, TrainParams().learning_rate)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=512,
                        help="train examples (default 512)")
    parser.add_argument("--batch_size", type=int, default=64, help="default 64")
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per input, after the warm-up (default 3)")
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
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for epoch in range(args.epochs):
            order = names[epoch % len(names):] + names[:epoch % len(names)]
            for name in order:
                clock = epoch_clock()
                wall, cpu, _ = measured(lambda name=name, clock=clock: model.fit(
                    inputs[name], epochs=1, verbose=0, shuffle=False, callbacks=[clock]))
                summary = clock.summary()
                # Time in fit() outside the steps: new iterator, old one torn down, callbacks.
                summary["pause_s"] = wall - summary["steps_s"]
                runs[name].append({"wall": wall, "cpu": cpu, **summary})
                print(f"  epoch {epoch + 1}/{args.epochs} {name}: "
                      f"{args.examples / wall:.1f} examples/s, {load_line()}", flush=True)

    report(args, runs, input_only, memory_bytes)
    return 0


def epoch_clock():
    """A callback timing one epoch: its steps, and the pauses around them."""
    import time  # noqa: PLC0415

    import keras  # noqa: PLC0415

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.marks: list[tuple[str, float]] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.marks.append(("begin", time.perf_counter()))

        def on_train_batch_end(self, batch, logs=None):
            self.marks.append(("end", time.perf_counter()))

        def summary(self) -> dict[str, float]:
            """step_ms: median step after the first (steady state); first_ms: the first
            step (includes filling the shuffle buffer); steps_s: all steps together."""
            begins = [at for kind, at in self.marks if kind == "begin"]
            ends = [at for kind, at in self.marks if kind == "end"]
            steps = [end - begin for begin, end in zip(begins, ends, strict=True)]
            return {"step_ms": statistics.median(steps[1:] or steps) * 1e3,
                    "first_ms": steps[0] * 1e3, "steps_s": sum(steps)}

    return EpochClock()


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]],
           input_only: dict[str, tuple[float, float]], memory_bytes: int) -> None:
    """Prints the throughput table and the target lines.

    The headline is examples/s over the steps (first step and its shuffle-buffer fill
    included), best epoch: it leaves out only the time fit() spends outside its steps, where
    tf.data autotuning sometimes holds fit() for seconds whatever the input, and keeps the
    epoch least slowed by other processes.
    """
    memory_name = "in memory from_tensor_slices"
    n = args.examples

    def per_epoch(key: str) -> dict[str, list[float]]:
        return {name: [n / r[key] for r in rs] for name, rs in runs.items()}

    steps, walls = per_epoch("steps_s"), per_epoch("wall")
    best = {name: max(v) for name, v in steps.items()}
    steps_median = {name: statistics.median(v) for name, v in steps.items()}
    wall_median = {name: statistics.median(v) for name, v in walls.items()}
    cpu_ms = {name: statistics.median(r["cpu"] / n * 1e3 for r in rs)
              for name, rs in runs.items()}
    rows = []
    for name, rs in runs.items():
        rows.append([name, f"{input_only[name][0]:,.0f}", f"{input_only[name][1]:.2f}",
                     f"{best[name]:.1f}", f"{steps_median[name]:.1f}",
                     f"{wall_median[name]:.1f}", f"{cpu_ms[name]:.1f}",
                     f"{statistics.median(r['first_ms'] for r in rs):.0f}",
                     f"{statistics.median(r['step_ms'] for r in rs):.0f}",
                     f"{max(r['pause_s'] for r in rs):.2f}"])
    print()
    print(format_table(
        ["input", "input only ex/s", "input CPU ms/ex", "train ex/s: steps, best",
         "steps, median", "fit() wall, median", "CPU ms/ex", "first step ms",
         "other steps ms", "max pause s"], rows,
        title=(f"Training throughput, {n} examples, batch {args.batch_size}, task "
               f"{args.task}, {os.cpu_count()} cores; {args.epochs} timed epoch(s) per input, "
               f"rotated; in-memory copy {memory_bytes / 2**20:.1f} MiB. 'pause' = fit() "
               f"wall minus its steps.")))
    print()
    rows = []
    for name in [name for name in runs if name.startswith("TFRecord")]:
        ratio = best[name] / best[memory_name]
        rows.append([f"{name} / in memory, examples/s (steps, best epoch)", f"{ratio:.1%}",
                     ">= 95%", met(ratio >= 0.95)])
        # CPU seconds per example do not inflate when other processes take the cores.
        rows.append(["  same, examples per CPU-second (robust under load)",
                     f"{cpu_ms[memory_name] / cpu_ms[name]:.1%}", "", ""])
    cache_gain = (best["TFRecord make_dataset(cache=True)"]
                  / best["TFRecord make_dataset(cache=False)"])
    rows.append(["cache=True / cache=False, examples/s (steps, best epoch)",
                 f"{cache_gain:.3f}", "", ""])
    print(format_table(["ratio (measured side by side)", "value", "target", "status"], rows))
    print(load_line())


if __name__ == "__main__":
    sys.exit(main())

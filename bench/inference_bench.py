"""Inference benchmark: ``agegender.inference.AgeGenderDetector`` on 5-second 48 kHz MP3s.

The model is a default-size MAM-CNN age model with RANDOM weights (``build_model``, saved to
a temporary ``.keras``): timings do not depend on the weights, predictions are meaningless.
Measured in one run: cold start in fresh subprocesses (``import agegender``, constructing
the detector, the first ``predict([clip])``); warm latency of one clip (median of
``--runs``) beside its parts, ``features.clip_image`` and the model call; batch throughput
of ``predict(files)`` over ``--clips`` files in float32 and bfloat16, beside features alone
(1 thread and all) and the model alone, each the best of ``--repeats`` rotated runs.

Run: ``python bench/inference_bench.py`` (500 clips); quick: ``--clips 64 --runs 10
--cold_runs 1 --repeats 1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    AGES, REPO, format_table, load_line, measured, met, timed, write_clips)

TARGET_WARM_MS = 30.0
TARGET_CLIPS_PER_S = 200.0

# Runs in a fresh interpreter: argv = src, model, clip.
CHILD = r"""
import json, sys, time
start = time.perf_counter()
src, model_path, clip = sys.argv[1:4]
sys.path.insert(0, src)
out = {}
import agegender
t_import = time.perf_counter()
detector = agegender.AgeGenderDetector(model_path)
t_construct = time.perf_counter()
out["import agegender"] = t_import - start
out["construct detector"] = t_construct - t_import
result = detector.predict([clip])
if result[0]["error"]:
    raise SystemExit(result[0]["error"])
out["first predict([clip])"] = time.perf_counter() - t_construct
print(json.dumps(out))
"""


def child(args: Sequence[str], env: dict, cwd: Path) -> tuple[float, dict]:
    """Runs ``CHILD`` in a fresh interpreter: (process wall s, its JSON)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"cold-start subprocess failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def make_model(path: Path) -> None:
    """An untrained age model of the default size, saved as ``.keras``."""
    from agegender.config import FeatureParams, ModelParams  # noqa: PLC0415
    from agegender.model import build_model  # noqa: PLC0415

    model = build_model(ModelParams(task="age", num_classes=len(AGES), class_names=AGES),
                        features=dataclasses.asdict(FeatureParams()))
    model.save(path)


def cold_start(tmp: Path, model_path: Path, clip: Path, runs: int) -> list[list[str]]:
    """Fresh-process timings, median over ``runs``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    args = [str(REPO / "src"), str(model_path), str(clip)]
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        wall, out = child(args, env, tmp)
        out["whole process, spawn to exit"] = wall
        out["import + construct + first predict"] = sum(
            out[k] for k in ("import agegender", "construct detector", "first predict([clip])"))
        for key, value in out.items():
            phases.setdefault(key, []).append(value)
    rows = []
    for key in ("import agegender", "construct detector", "first predict([clip])",
                "import + construct + first predict", "whole process, spawn to exit"):
        rows.append([key, f"{statistics.median(phases[key]) * 1e3:.0f}"])
    return rows


def warm_latency(detector, files: Sequence[Path], runs: int) -> dict[str, float]:
    """Median ms of predict([clip]) and of its two parts, interleaved clip by clip."""
    from agegender.features import clip_image  # noqa: PLC0415

    for file in files[:3]:
        detector.predict([file])
    total, features, model, cpu = [], [], [], []
    for number in range(runs):
        file = files[number % len(files)]
        wall, cpu_s, _ = measured(lambda file=file: detector.predict([file]))
        total.append(wall * 1e3)
        cpu.append(cpu_s * 1e3)
        wall, image = timed(lambda file=file: clip_image(file, detector.model.features))
        features.append(wall * 1e3)
        batch = image[None].astype(np.float32)
        model.append(timed(lambda batch=batch: detector.model.predict({"spectrogram": batch}))[0] * 1e3)
    return {"total": statistics.median(total), "features": statistics.median(features),
            "model": statistics.median(model), "cpu": statistics.median(cpu)}


def throughput(detector, files: Sequence[Path], cores: int, *,
               repeats: int) -> dict[str, tuple[float, float]]:
    """clips/s and cores busy (CPU s / wall s) of predict(files) and of its parts alone.

    Every contender runs ``repeats`` times, in rotation; the best run of each is kept (noise
    from other processes only ever slows a run down).
    """
    from agegender.features import clip_image  # noqa: PLC0415

    params, size = detector.model.features, detector.batch_size
    detector.predict(files[:size + 1])  # traces the full and a partial batch
    images = [clip_image(f, params) for f in files]
    stacked = np.stack(images).astype(np.float32)

    def predict() -> None:
        bad = [r["error"] for r in detector.predict(files) if r["error"]]
        if bad:
            raise SystemExit(f"{len(bad)} clips failed, e.g. {bad[0]}")

    def features_in_threads(threads: int) -> Callable[[], None]:
        def run() -> None:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda f: clip_image(f, params), files))
        return run

    def model_only() -> None:
        for start in range(0, len(stacked), size):
            detector.model.predict({"spectrogram": stacked[start:start + size]})

    contenders = {"predict": predict, "features_1": features_in_threads(1)}
    if cores > 1:
        contenders[f"features_{cores}"] = features_in_threads(cores)
    contenders["model"] = model_only
    contenders["bfloat16"] = bfloat16_predictor(detector, files)
    best: dict[str, tuple[float, float]] = {}  # name -> (wall s, CPU s) of its best run
    names = list(contenders)
    for number in range(repeats):
        for name in names[number % len(names):] + names[:number % len(names)]:
            wall, cpu, _ = measured(contenders[name])
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)
    out = {name: (len(files) / wall, cpu / wall) for name, (wall, cpu) in best.items()}
    out["predict_cpu_ms"] = (best["predict"][1] / len(files) * 1e3, 0.0)
    return out


def bfloat16_predictor(detector, files: Sequence[Path]) -> Callable[[], None]:
    """``AgeGenderDetector(..., precision="bfloat16").predict(files)`` (traced first)."""
    import agegender  # noqa: PLC0415

    bf16 = agegender.AgeGenderDetector(detector.model.path, batch_size=detector.batch_size,
                                       precision="bfloat16")

    def run(some: Sequence[Path] = files) -> None:
        bf16.predict(some)

    run(files[:detector.batch_size + 1])  # traces
    return run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=500,
                        help="clips for the batch throughput (default 500)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length, s")
    parser.add_argument("--rate", type=int, default=48_000, help="clip rate, Hz")
    parser.add_argument("--runs", type=int, default=30,
                        help="warm single-clip runs (default 30)")
    parser.add_argument("--cold_runs", type=int, default=2,
                        help="fresh processes per cold-start kind (default 2)")
    parser.add_argument("--batch_size", type=int, default=64,
                        help="detector batch size (default 64, the detector's default)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each batch-throughput contender; the best counts "
                             "(default 2)")
    args = parser.parse_args(argv)
    if min(args.clips, args.runs, args.cold_runs, args.batch_size, args.repeats) < 1:
        parser.error("--clips, --runs, --cold_runs, --batch_size, --repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="agegender-inference-bench-") as tmp:
        tmp = Path(tmp)
        clip_dir = tmp / "clips"
        clip_dir.mkdir()
        files = [clip_dir / f"clip-{i:05d}.mp3" for i in range(args.clips)]
        print(f"writing {args.clips} synthetic {args.seconds:g} s {args.rate} Hz MP3 clips in "
              f"{clip_dir} ...", flush=True)
        gen_s, _ = timed(lambda: write_clips(
            [(str(f), i, args.seconds, args.rate, "MP3") for i, f in enumerate(files)],
            cores))
        print(f"  written in {gen_s:.1f} s", flush=True)

        model_path = tmp / "random_age_model.keras"
        import agegender  # noqa: PLC0415

        make_model(model_path)
        print(f"cold start ({args.cold_runs} fresh processes) ... {load_line()}",
              flush=True)
        cold_rows = cold_start(tmp, model_path, files[0], args.cold_runs)

        detector = agegender.AgeGenderDetector(model_path, batch_size=args.batch_size)
        print(f"warm latency ({args.runs} runs) ... {load_line()}", flush=True)
        warm = warm_latency(detector, files, args.runs)
        print(f"batch throughput ({args.clips} clips, best of {args.repeats}) ... "
              f"{load_line()}", flush=True)
        speed = throughput(detector, files, cores, repeats=args.repeats)
        load_end = load_line()

    print()
    print(format_table(["cold start (fresh process), median", "ms"], cold_rows,
                       title=f"Inference, untrained random-weight age model, {cores} cores; "
                             f"clips: {args.seconds:g} s {args.rate} Hz MP3"))
    rows = [
        ["detector.predict([clip]), wall", f"{warm['total']:.2f}"],
        ["  features.clip_image (decode, resample, STFT, image)", f"{warm['features']:.2f}"],
        ["  model call (predict_on_batch, batch 1)", f"{warm['model']:.2f}"],
        ["  rest (thread pool, stacking, result dicts) = total - parts",
         f"{warm['total'] - warm['features'] - warm['model']:.2f}"],
        ["detector.predict([clip]), CPU ms (all threads)", f"{warm['cpu']:.2f}"],
    ]
    print()
    print(format_table([f"warm, one clip, median of {args.runs}", "ms"], rows))
    cpu_ms = speed["predict_cpu_ms"][0]
    names = {
        "predict": f"detector.predict({args.clips} files), batch {args.batch_size}",
        "features_1": "  features alone, 1 thread",
        f"features_{cores}": f"  features alone, {cores} threads (the detector's way)",
        "model": f"  model alone, batches of {args.batch_size}",
        "bfloat16": "  detector.predict() with precision='bfloat16'",
    }
    rows = [[label, f"{speed[key][0]:.1f}", f"{speed[key][1]:.2f}"]
            for key, label in names.items() if key in speed]
    rows.insert(1, ["  CPU ms per clip (all threads)", f"{cpu_ms:.1f}", ""])
    rows.insert(2, [f"  upper bound with {cores} idle cores: {cores} x 1000 / CPU ms",
                    f"{cores * 1e3 / cpu_ms:.1f}", ""])
    # Where the CPU goes: features (1 thread, so CPU = wall) and the model (its cores).
    features_ms = 1e3 / speed["features_1"][0]
    model_ms = 1e3 * speed["model"][1] / speed["model"][0]
    rows.insert(3, [f"  CPU ms per clip, features + model: {features_ms:.1f} + {model_ms:.1f}"
                    f"; {TARGET_CLIPS_PER_S:.0f} clips/s on {cores} cores allows",
                    f"{cores * 1e3 / TARGET_CLIPS_PER_S:.1f}", ""])
    print()
    print(format_table([f"batch throughput, best of {args.repeats}", "clips/s", "cores busy"],
                       rows))
    rows = [
        ["warm latency, one clip", f"{warm['total']:.1f} ms", f"<= {TARGET_WARM_MS:.0f} ms",
         met(warm["total"] <= TARGET_WARM_MS)],
        ["batch throughput", f"{speed['predict'][0]:.1f} clips/s",
         f">= {TARGET_CLIPS_PER_S:.0f} clips/s",
         met(speed["predict"][0] >= TARGET_CLIPS_PER_S)],
    ]
    print()
    print(format_table(["target", "measured", "target", "status"], rows))
    print(load_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())

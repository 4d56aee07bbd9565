"""Inference benchmark: ``agegender.inference.AgeGenderDetector`` on 5-second 48 kHz MP3s.

The model is ``build_model(ModelParams(task="age", ...))`` with RANDOM weights, saved to a
temporary ``.keras`` file: timings do not depend on the weights, predictions are meaningless.

Measures, in one run:

* cold start, in fresh subprocesses: ``import agegender``, constructing the detector, and
  the first ``predict([clip])``; a second kind of run splits the first prediction into
  the first ``clip_image`` and the first model call, a third times the imports alone;
* warm latency of one clip through ``detector.predict([clip])`` (median of ``--runs``),
  beside its parts: ``features.clip_image`` (decode → resample → STFT → image) and the
  model call (``detector.model.predict``, i.e. ``predict_on_batch``);
* batch throughput: ``detector.predict(files)`` over ``--clips`` files, beside features
  alone (1 thread, all threads, and a process pool) and the model alone (batches of
  ``batch_size``), each the best of ``--repeats`` rotated runs, with the cores it kept busy;
* a profile (skip with ``--no-profile``): two prototypes of ``predict(files)`` (the next
  chunk's features computed during this chunk's model call; a mixed-bfloat16 copy of the
  model), every step of ``clip_image`` timed on its own next to cheaper replacements, the
  model's FLOPs against this CPU's matmul peak, model time against batch size,
  ``predict_on_batch`` vs ``tf.function`` vs eager call, float32 vs bfloat16 (alternated),
  and TensorFlow's intra-op thread count (in fresh processes).

Targets (<= 30 ms warm per clip, >= 200 clips/s batch) are printed as met or missed, never
asserted.

Run:
    python bench/inference_bench.py                   # 500 clips
    python bench/inference_bench.py --clips 64 --runs 10 --cold_runs 1   # quick check
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

from preprocess_bench import (  # noqa: E402
    AGES, format_table, load_line, measured, met, timed, write_clips)

TARGET_WARM_MS = 30.0
TARGET_CLIPS_PER_S = 200.0

# Runs in a fresh interpreter: argv = src, model, clip, mode[, intra-op threads].
CHILD = r"""
import json, sys, time
start = time.perf_counter()
src, model_path, clip, mode = sys.argv[1:5]
sys.path.insert(0, src)
out = {}
if mode == "imports":
    import numpy
    out["numpy"] = time.perf_counter() - start
    mark = time.perf_counter()
    import tensorflow
    out["tensorflow"] = time.perf_counter() - mark
    mark = time.perf_counter()
    import keras
    out["keras"] = time.perf_counter() - mark
    mark = time.perf_counter()
    import agegender
    out["agegender (rest)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    import librosa, soxr, soundfile
    from matplotlib import colormaps
    out["librosa+soxr+soundfile+matplotlib"] = time.perf_counter() - mark
elif mode == "threads":
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[5]))
    import agegender
    model = agegender.inference.open_model(model_path)
    for batch in (1, 64):
        x = np.random.default_rng(0).uniform(0, 255, (batch, 64, 64, 3)).astype(np.float32)
        model.predict(x); model.predict(x)
        times = []
        cpu = time.process_time()
        for _ in range(int(sys.argv[6])):
            mark = time.perf_counter(); model.predict(x); times.append(time.perf_counter() - mark)
        out[f"batch {batch}"] = sorted(times)[len(times) // 2] / batch
        out[f"batch {batch} cores busy"] = (time.process_time() - cpu) / sum(times)
else:
    import agegender
    t_import = time.perf_counter()
    detector = agegender.AgeGenderDetector(model_path)
    t_construct = time.perf_counter()
    out["import agegender"] = t_import - start
    out["construct detector"] = t_construct - t_import
    if mode == "predict":
        result = detector.predict([clip])
        if result[0]["error"]:
            raise SystemExit(result[0]["error"])
        out["first predict([clip])"] = time.perf_counter() - t_construct
    else:
        import numpy as np
        from agegender.features import feature_matrix, load_clip, matrix_image
        params = detector.model.features
        waveform = load_clip(clip, params)
        t_load = time.perf_counter()
        matrix = feature_matrix(waveform, params)
        t_matrix = time.perf_counter()
        image = matrix_image(matrix, params.image_size)
        t_features = time.perf_counter()
        detector.model.predict(image[None].astype(np.float32))
        out["first load_clip (soundfile, soxr)"] = t_load - t_construct
        out["first feature_matrix (librosa)"] = t_matrix - t_load
        out["first matrix_image (PIL, matplotlib LUT)"] = t_features - t_matrix
        out["first model call"] = time.perf_counter() - t_features
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- helpers


def median_ms(fn: Callable[[], object], runs: int, *, warmup: int = 1) -> float:
    """Median wall milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        seconds, _ = timed(fn)
        times.append(seconds * 1e3)
    return statistics.median(times)


def alternated_ms(first: Callable[[], object], second: Callable[[], object],
                  runs: int) -> tuple[float, float]:
    """Median ms of two calls, alternated (after one warm-up each)."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            bucket.append(timed(fn)[0] * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


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


# --------------------------------------------------------------------------- sections


def cold_start(tmp: Path, model_path: Path, clip: Path, runs: int) -> list[list[str]]:
    """Fresh-process timings, median over ``runs`` of each kind."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    args = [str(REPO / "src"), str(model_path), str(clip)]
    interpreter = [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True,
                                                cwd=tmp))[0] for _ in range(3)]
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        for mode in ("predict", "split", "imports"):
            wall, out = child([*args, mode], env, tmp)
            if mode == "predict":
                out["whole process, spawn to exit"] = wall
                out["import + construct + first predict"] = sum(
                    out[k] for k in ("import agegender", "construct detector",
                                     "first predict([clip])"))
            for key, value in out.items():
                phases.setdefault(f"{mode}:{key}", []).append(value)
    med = {key: statistics.median(values) * 1e3 for key, values in phases.items()}
    rows = [["python interpreter start/exit alone", f"{statistics.median(interpreter) * 1e3:.0f}"]]
    for key in ("import agegender", "construct detector", "first predict([clip])",
                "import + construct + first predict", "whole process, spawn to exit"):
        rows.append([key, f"{med['predict:' + key]:.0f}"])
    for key in ("first load_clip (soundfile, soxr)", "first feature_matrix (librosa)",
                "first matrix_image (PIL, matplotlib LUT)", "first model call"):
        rows.append([f"first predict, split: {key}", f"{med['split:' + key]:.0f}"])
    for key in ("numpy", "tensorflow", "keras", "agegender (rest)",
                "librosa+soxr+soundfile+matplotlib"):
        rows.append([f"imports alone: {key}", f"{med['imports:' + key]:.0f}"])
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
        model.append(timed(lambda batch=batch: detector.model.predict(batch))[0] * 1e3)
    return {"total": statistics.median(total), "features": statistics.median(features),
            "model": statistics.median(model), "cpu": statistics.median(cpu)}


def _clip_image_job(job: tuple[Path, object]) -> np.ndarray:
    from agegender.features import clip_image  # noqa: PLC0415

    return clip_image(*job)


def throughput(detector, files: Sequence[Path], cores: int, *, repeats: int,
               prototypes: bool) -> dict[str, tuple[float, float]]:
    """clips/s and cores busy (CPU s / wall s) of predict(files) and of its parts alone.

    Every contender runs ``repeats`` times, in rotation; the best run of each is kept (noise
    from other processes only ever slows a run down).
    """
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

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

    def features_in_processes() -> None:  # the GIL question: processes share no lock
        # Worker CPU time counts once they are reaped, at the end of the block.
        with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(_clip_image_job, [(f, params) for f in files], chunksize=8))

    def model_only() -> None:
        for start in range(0, len(stacked), size):
            detector.model.predict(stacked[start:start + size])

    contenders = {"predict": predict, "features_1": features_in_threads(1)}
    if cores > 1:
        contenders[f"features_{cores}"] = features_in_threads(cores)
        contenders["features_processes"] = features_in_processes
    contenders["model"] = model_only
    if prototypes:
        contenders["overlapped"] = lambda: overlapped_predict(detector, files)
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


def overlapped_predict(detector, files: Sequence[Path]) -> None:
    """Prototype: features of the next chunk computed while the model runs this one."""
    from agegender.features import clip_image  # noqa: PLC0415

    params, size = detector.model.features, detector.batch_size
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    with ThreadPoolExecutor(detector.num_threads) as pool:
        pending = [pool.submit(clip_image, f, params) for f in chunks[0]]
        for number in range(len(chunks)):
            images = [p.result() for p in pending]
            if number + 1 < len(chunks):
                pending = [pool.submit(clip_image, f, params) for f in chunks[number + 1]]
            detector.model.predict(np.stack(images).astype(np.float32))


def feature_profile(files: Sequence[Path], params) -> list[list[str]]:
    """Each step of ``clip_image`` on its own, median ms over ``files``, + replacements."""
    import librosa  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    from agegender.features import clip_image, matrix_image  # noqa: PLC0415

    steps: dict[str, list[float]] = {}

    def step(name: str, fn: Callable[[], object]):
        seconds, result = timed(fn)
        steps.setdefault(name, []).append(seconds * 1e3)
        return result

    def decode(file: Path) -> tuple[np.ndarray, int]:
        with sf.SoundFile(file) as audio:
            frames = int(np.ceil(params.max_duration_s * audio.samplerate))
            return audio.read(frames=frames, dtype="float32", always_2d=True), audio.samplerate

    max_diff = 0.0
    for file in [files[0], *files]:  # the first one again untimed-ish: warms every path
        data, rate = step("MP3 decode (soundfile/mpg123, 48 kHz)", lambda f=file: decode(f))
        mono = step("channel mean", lambda d=data: d.mean(axis=1))
        step("  replacement: d[:, 0] when mono", lambda d=data: np.ascontiguousarray(d[:, 0]))
        clean = step("nan_to_num at 48 kHz", lambda m=mono: np.nan_to_num(
            m, nan=0.0, posinf=0.0, neginf=0.0))
        step("  replacement: np.isfinite(x).all() guard", lambda m=mono: np.isfinite(m).all())
        wave = step("soxr resample 48 -> 16 kHz (HQ)", lambda c=clean, r=rate: soxr.resample(
            c, r, params.sample_rate, quality="HQ"))[: params.max_samples]
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        magnitude = step("librosa.stft + abs", lambda w=wave: np.abs(librosa.stft(
            w, n_fft=params.n_fft, hop_length=params.hop_length, center=True,
            pad_mode="constant")))
        numpy_mag = step("  replacement: numpy framing + scipy.fft.rfft + abs",
                         lambda w=wave: numpy_stft_magnitude(w, params.n_fft,
                                                             params.hop_length))
        max_diff = max(max_diff, float(np.max(np.abs(numpy_mag - magnitude))))
        matrix = step("amplitude_to_db", lambda m=magnitude: librosa.amplitude_to_db(
            m, ref=np.max, top_db=params.top_db))
        step("matrix_image (scale, PIL resize, viridis)",
             lambda m=matrix: matrix_image(m, params.image_size))
        step("clip_image, whole (measured on its own)", lambda f=file: clip_image(f, params))
    medians = {name: statistics.median(times[1:]) for name, times in steps.items()}
    parts = [name for name in medians if not name.startswith(" ") and "whole" not in name]
    rows = [[name, f"{ms:.2f}"] for name, ms in medians.items()]
    rows.append(["sum of the steps above (no replacements)",
                 f"{sum(medians[name] for name in parts):.2f}"])
    rows.append(["  numpy STFT max |difference| vs librosa", f"{max_diff:.2e}"])
    return rows


def numpy_stft_magnitude(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| as ``librosa.stft(center=True, pad_mode="constant")``, periodic Hann window.

    numpy framing + ``scipy.fft.rfft`` (numpy 2's own float32 rfft is several times slower
    here). Importing ``scipy.fft`` takes ~0.2 s; librosa's first ``stft`` ~1.3 s.

    Returns:
        [n_fft/2+1, frames] float32.
    """
    import scipy.fft  # noqa: PLC0415

    padded = np.pad(wave, n_fft // 2)  # [samples + n_fft]
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # [frames, n_fft]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    spectrum = scipy.fft.rfft(frames * window, axis=1)  # [frames, n_fft/2+1] complex64
    return np.abs(spectrum).T  # [n_fft/2+1, frames] float32


def model_flops(keras_model, image_size: int) -> float | None:
    """Float operations of one forward pass at batch 1 (TensorFlow's graph profiler)."""
    import tensorflow as tf  # noqa: PLC0415

    try:
        from tensorflow.python.framework.convert_to_constants import (  # noqa: PLC0415
            convert_variables_to_constants_v2)

        concrete = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(
            tf.TensorSpec([1, image_size, image_size, 3], tf.float32))
        frozen = convert_variables_to_constants_v2(concrete)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
        return float(profile.total_float_ops)
    except (ImportError, AttributeError, ValueError, TypeError) as err:
        print(f"  (FLOP count unavailable: {err})")
        return None


def matmul_gflops(size: int = 2048) -> float:
    """float32 GFLOP/s of a square matmul in TensorFlow, a reference for the model's rate."""
    import tensorflow as tf  # noqa: PLC0415

    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    ms = median_ms(lambda: tf.linalg.matmul(a, b).numpy(), 7, warmup=2)
    return 2 * size**3 / (ms / 1e3) / 1e9


def bfloat16_copy(keras_model):
    """The same network and weights built under the ``mixed_bfloat16`` policy."""
    from agegender.inference import bfloat16_copy as package_copy  # noqa: PLC0415

    return package_copy(keras_model)


def bfloat16_predictor(detector, files: Sequence[Path]) -> Callable[[], None]:
    """``AgeGenderDetector(..., precision="bfloat16").predict(files)`` (traced first)."""
    import agegender  # noqa: PLC0415

    bf16 = agegender.AgeGenderDetector(detector.model.path, batch_size=detector.batch_size,
                                       precision="bfloat16")

    def run(some: Sequence[Path] = files) -> None:
        bf16.predict(some)

    run(files[:detector.batch_size + 1])  # traces
    return run


def model_profile(detector, model_path: Path, tmp: Path, args) -> list[list[str]]:
    """Where model time goes and what changes it."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from agegender.inference import load_model  # noqa: PLC0415

    keras_model = load_model(model_path)
    size = int(keras_model.input_shape[1])
    rng = np.random.default_rng(0)

    def batch_of(n: int) -> np.ndarray:
        return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)

    rows = []
    flops = model_flops(keras_model, size)
    reference = matmul_gflops()
    x64 = batch_of(64)
    ms64 = median_ms(lambda: detector.model.predict(x64), args.model_runs)
    if flops:
        rows.append(["GFLOP per clip (forward)", f"{flops / 1e9:.3f}"])
        rows.append(["model GFLOP/s at batch 64 (predict_on_batch)",
                     f"{flops * 64 / (ms64 / 1e3) / 1e9:.1f}"])
    rows.append(["tf.matmul 2048x2048 float32 GFLOP/s (reference)", f"{reference:.1f}"])
    if flops:
        rows.append([f"GFLOP/s needed for {TARGET_CLIPS_PER_S:.0f} clips/s (model alone)",
                     f"{flops * TARGET_CLIPS_PER_S / 1e9:.1f}"])

    for n in args.batch_sizes:
        x = batch_of(n)
        ms = median_ms(lambda x=x: detector.model.predict(x), args.model_runs)
        rows.append([f"predict_on_batch, batch {n}: ms per clip", f"{ms / n:.2f}"])

    # The same weights called three ways.
    serve = tf.function(lambda x: keras_model(x, training=False), input_signature=[
        tf.TensorSpec([None, size, size, 3], tf.float32)])
    for n in (1, 64):
        x = batch_of(n)
        ways = {
            "keras_model.predict_on_batch": lambda x=x: keras_model.predict_on_batch(x),
            "tf.function(input_signature)": lambda x=x: serve(tf.constant(x)).numpy(),
            "eager keras_model(x)": lambda x=x: np.asarray(keras_model(x, training=False)),
        }
        for way, call in ways.items():
            rows.append([f"batch {n}: {way}, ms per clip",
                         f"{median_ms(call, args.model_runs) / n:.2f}"])

    # A batch size predict_on_batch has not seen: does it retrace?
    x37 = batch_of(37)
    first, _ = timed(lambda: detector.model.predict(x37))
    rows.append(["first call at an unseen batch size (37), ms per clip",
                 f"{first * 1e3 / 37:.2f}"])
    rows.append(["  steady state at batch 37, ms per clip",
                 f"{median_ms(lambda: detector.model.predict(x37), args.model_runs) / 37:.2f}"])

    # Mixed bfloat16 (AVX512_BF16 / AMX CPUs run it natively): the same weights, fp32 and
    # bf16 calls alternated so both see the same machine load.
    bf16 = bfloat16_copy(keras_model)
    for n in (1, 64):
        x = batch_of(n)
        fp32_ms, bf16_ms = alternated_ms(lambda x=x: keras_model.predict_on_batch(x),
                                         lambda x=x: bf16.predict_on_batch(x), args.model_runs)
        rows.append([f"batch {n}: float32 vs mixed_bfloat16, ms per clip",
                     f"{fp32_ms / n:.2f} vs {bf16_ms / n:.2f}"])
    # An untrained model's probabilities are all near 1/6; compare the hidden layer instead.
    x = batch_of(64)
    hidden = [np.asarray(keras.Model(m.input, m.get_layer("dense").output)(x),
                         dtype=np.float32) for m in (keras_model, bf16)]
    error = np.linalg.norm(hidden[1] - hidden[0]) / np.linalg.norm(hidden[0])
    rows.append(["  bf16 vs float32 relative L2 error of the 80-unit hidden layer",
                 f"{error:.1e}"])

    # Intra-op threads must be set before TensorFlow starts: fresh processes.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    for threads in sorted({1, os.cpu_count() or 1}):
        _, out = child([str(REPO / "src"), str(model_path), "-", "threads", str(threads),
                        str(args.model_runs)], env, tmp)
        for n in (1, 64):
            rows.append([f"TF intra-op threads {threads}, batch {n}: ms per clip "
                         f"(cores busy {out[f'batch {n} cores busy']:.2f})",
                         f"{out[f'batch {n}'] * 1e3:.2f}"])
    return rows


# --------------------------------------------------------------------------- main


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
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="profile where the time goes (default on)")
    parser.add_argument("--profile_clips", type=int, default=30,
                        help="clips for the feature-step profile (default 30)")
    parser.add_argument("--model_runs", type=int, default=5,
                        help="timed calls per model variant in the profile (default 5)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32, 64, 128],
                        help="batch sizes for the model profile")
    args = parser.parse_args(argv)
    if min(args.clips, args.runs, args.cold_runs, args.batch_size, args.model_runs,
           args.repeats) < 1:
        parser.error("--clips, --runs, --cold_runs, --batch_size, --model_runs, --repeats "
                     "must be >= 1")
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
        print(f"cold start ({args.cold_runs} fresh processes of each kind) ... {load_line()}",
              flush=True)
        cold_rows = cold_start(tmp, model_path, files[0], args.cold_runs)

        detector = agegender.AgeGenderDetector(model_path, batch_size=args.batch_size)
        print(f"warm latency ({args.runs} runs) ... {load_line()}", flush=True)
        warm = warm_latency(detector, files, args.runs)
        print(f"batch throughput ({args.clips} clips, best of {args.repeats}) ... "
              f"{load_line()}", flush=True)
        speed = throughput(detector, files, cores, repeats=args.repeats,
                           prototypes=args.profile)
        profile_rows = model_rows = None
        if args.profile:
            print(f"profiling ... {load_line()}", flush=True)
            profile_rows = feature_profile(files[:args.profile_clips], detector.model.features)
            model_rows = model_profile(detector, model_path, tmp, args)
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
        "features_processes": f"  features alone, {cores} processes (fork pool)",
        "model": f"  model alone, batches of {args.batch_size}",
        "overlapped": "  prototype: next chunk's features during this chunk's model",
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
    if profile_rows:
        print()
        print(format_table(["profile: one clip through clip_image, median", "ms"],
                           profile_rows))
        print()
        print(format_table(["profile: model", "value"], model_rows))

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

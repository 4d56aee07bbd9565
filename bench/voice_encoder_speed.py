#!/usr/bin/env python3
"""GE2E voice encoder throughput on this machine's CPU: partials per second and real-time
factor for a timeline over a recording (windows of 1.6 s every 0.8 s), at several batch sizes.

    python bench/voice_encoder_speed.py --seconds 60 --batch_sizes 1 32 128

Prints one table row per batch size. The recording is synthetic (``agegender.synthetic``
harmonic voices): speed does not depend on what is said. The front end (``encoder_frames``
once over the recording) is timed apart from the network.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length, s")
    parser.add_argument("--window_s", type=float, default=1.6)
    parser.add_argument("--hop_s", type=float, default=0.8)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    args = parser.parse_args(argv)

    from agegender import voice_encoder as ve

    params = ve.GE2E
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(args.seconds * params.sample_rate))).astype(np.float32)
    ve.encoder_frames(wave[: params.sample_rate], params.sample_rate)  # imports, filter bank
    front_s = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        frames = ve.encoder_frames(wave, params.sample_rate)  # [frames, n_mels]
        front_s = min(front_s, time.perf_counter() - start)
    fps = params.sample_rate / params.hop_length
    width, hop = round(args.window_s * fps), round(args.hop_s * fps)
    starts = range(0, frames.shape[0] - width + 1, hop)
    windows = np.stack([frames[s: s + width] for s in starts])  # [windows, width, n_mels]
    encoder = ve.load_voice_encoder()
    print(f"recording {args.seconds:.0f} s, {len(windows)} windows of {args.window_s} s every "
          f"{args.hop_s} s; front end {front_s * 1000:.0f} ms ({args.seconds / front_s:.0f}x "
          f"real time); {os.cpu_count()} CPUs")
    print("| batch | partials/s | network s | real-time factor (front end + network) "
          "| x real time |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        ve.embed_partials(windows[:batch], encoder=encoder, batch_size=batch)  # warm-up, trace
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            ve.embed_partials(windows, encoder=encoder, batch_size=batch)
            best = min(best, time.perf_counter() - start)
        total = best + front_s
        print(f"| {batch} | {len(windows) / best:.1f} | {best:.2f} | "
              f"{total / args.seconds:.4f} | {args.seconds / total:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

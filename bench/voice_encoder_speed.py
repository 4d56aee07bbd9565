"""GE2E voice encoder throughput on this CPU: partials per second and real-time factor of a
timeline's windows (1.6 s every 0.8 s) at several batch sizes, front end timed apart::

    python bench/voice_encoder_speed.py --seconds 60 --batch_sizes 1 32 128
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from common import format_table, timed  # first: puts src/ on the path


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
    frames = ve.encoder_frames(wave, params.sample_rate)  # [frames, n_mels]; imports, filters
    front_s = min(timed(lambda: ve.encoder_frames(wave, params.sample_rate))[0]
                  for _ in range(args.repeats))
    fps = params.sample_rate / params.hop_length
    width, hop = round(args.window_s * fps), round(args.hop_s * fps)
    starts = range(0, frames.shape[0] - width + 1, hop)
    windows = np.stack([frames[s: s + width] for s in starts])  # [windows, width, n_mels]
    encoder = ve.load_voice_encoder()
    rows = []
    for batch in args.batch_sizes:
        ve.embed_partials(windows[:batch], encoder=encoder, batch_size=batch)  # warm-up, trace
        best = min(timed(lambda batch=batch: ve.embed_partials(
            windows, encoder=encoder, batch_size=batch))[0] for _ in range(args.repeats))
        total = best + front_s
        rows.append([batch, f"{len(windows) / best:.1f}", f"{best:.2f}",
                     f"{args.seconds / total:.0f}x"])
    print(format_table(["batch", "partials/s", "network s", "x real time (front end + network)"],
                       rows, title=f"recording {args.seconds:.0f} s, {len(windows)} windows of "
                       f"{args.window_s} s every {args.hop_s} s; front end {front_s * 1e3:.0f} ms "
                       f"({args.seconds / front_s:.0f}x real time); {os.cpu_count()} CPUs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

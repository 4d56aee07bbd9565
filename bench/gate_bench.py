"""The speech gate on real speech and on sounds that are no voice: how many clips it calls speech.

Real speech: one split of a ``manifest.csv`` dataset, decoded as the product decodes it. Non-voice:
the seeded click trains, square waves and hums of ``agegender.synthetic``; for those it also counts
clips with any voiced frame (what the timeline would label)::

    python bench/gate_bench.py --manifest /work/shared/cv-sample/manifest.csv --split test
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from common import format_table  # first: puts src/ on the path

from agegender import speech, synthetic
from agegender.config import FeatureParams
from agegender.errors import AudioError


def real_speech(manifest: Path, split: str, limit: int | None) -> tuple[int, int, list[str]]:
    """(clips, called speech, paths refused) of one split."""
    from agegender.features import load_clip

    features = FeatureParams()  # the default preset's 16 kHz; the gate resamples to 8 kHz
    with open(manifest, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("split") == split]
    rows = rows[:limit] if limit else rows
    passed, refused = 0, []
    for row in rows:
        path = manifest.parent / row["path"]
        try:
            waveform = load_clip(path, features)
        except AudioError:
            refused.append(str(path))
            continue
        share = speech.voiced_share(waveform, features.sample_rate)
        if share >= speech.DEFAULT_MIN_VOICED:
            passed += 1
        else:
            refused.append(f"{path} ({share:.0%})")
    return len(rows), passed, refused


def non_voice(rate: int = 16_000, clips: int = 10) -> dict[str, tuple[int, int, int]]:
    """{kind: (clips, called speech, with any voiced frame)} of seeded synthetic non-voice
    sounds (the timeline labels a voiced stretch whatever the clip's share)."""
    rng = np.random.default_rng(0)
    kinds = {
        "clicks 5-20/s (1-2.5 kHz, 10-20 ms)": lambda: synthetic.click_train(
            float(rng.uniform(5, 20)), seconds=3.0, rate=rate,
            ring_hz=float(rng.uniform(1000, 2500)), ring_s=float(rng.uniform(0.01, 0.02))),
        "square wave 80-300 Hz": lambda: synthetic.square_wave(
            float(rng.uniform(80, 300)), seconds=3.0, rate=rate),
        "hum 50/60 Hz + harmonics": lambda: synthetic.hum(
            float(rng.choice([50.0, 60.0, 100.0, 120.0])), seconds=3.0, rate=rate,
            seed=int(rng.integers(1 << 30))),
    }
    table = {}
    for kind, make in kinds.items():
        shares = [speech.voiced_share(make(), rate) for _ in range(clips)]
        table[kind] = (clips, sum(share >= speech.DEFAULT_MIN_VOICED for share in shares),
                       sum(share > 0 for share in shares))
    return table


def main(argv=None) -> int:
    """Prints the table; exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path,
                        default=Path("/work/shared/cv-sample/manifest.csv"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N clips only")
    parser.add_argument("--synthetic_only", action="store_true")
    args = parser.parse_args(argv)
    rows = [[kind, clips, called, f"{called / clips:.1%}", any_voiced]
            for kind, (clips, called, any_voiced) in non_voice().items()]
    if not args.synthetic_only:
        clips, passed, refused = real_speech(args.manifest, args.split, args.limit)
        rows.append([f"{args.manifest.parent.name} {args.split} (real speech)", clips, passed,
                     f"{passed / max(clips, 1):.1%}", ""])
        for line in refused:
            print(f"  refused: {line}", file=sys.stderr)
    print(format_table(["audio", "clips", "called speech", "share", "with a voiced frame"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Timeline speed, side by side: two source trees (or two thread settings) on the same
recordings, alternated in one run so that the load of a shared machine falls on both alike.

Each variant runs in its own fresh process per round: import + model load, one warm-up
timeline of the first file (traces the model's function), then the timed timelines of every
file. Reported per variant (median over rounds):

* ``x RT timeline``: audio seconds per CPU second (user + sys of the whole process, all its
  threads) of the timed timelines: the issue's "real time" figure, which nice and a loaded
  machine disturb less than wall time;
* ``x RT wall``: audio seconds per wall second of the same calls;
* ``load CPU s``: importing TensorFlow and loading the model (once per process);
* a digest of the segments, so a faster path that changes results shows.

Run from the repo root (recordings: ``bench/timeline_bench.py`` builds them)::

    git archive HEAD~3 src | tar -x -C /tmp/base     # the tree to compare against
    nice -n 15 python bench/timeline_speed.py --model M --rounds 3 \\
        --variant base:/tmp/base/src:0 --variant new:src:1 /tmp/timeline_bench/recordings/rec3.wav

``--variant NAME:SRC:THREADS[:ONEDNN]``: SRC is put first on ``sys.path``; THREADS > 0 sets
``TF_NUM_INTRAOP_THREADS`` (and inter-op 1) for that process, 0 leaves TensorFlow's default
(one thread per core in each pool); ONEDNN 0 or 1 sets ``TF_ENABLE_ONEDNN_OPTS``, absent
leaves it unset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import REPO, format_table

CHILD = r"""
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
start = time.process_time()
from agegender.checkpoints import open_model
from agegender import timeline
model = open_model(sys.argv[2])
files = json.loads(sys.argv[3])
timeline.timeline(model, files[0])
load = time.process_time() - start
cpu, wall, audio, digest = time.process_time(), time.perf_counter(), 0.0, hashlib.sha256()
for path in files:
    result = timeline.timeline(model, path)
    audio += result["duration"]
    for s in result["segments"]:
        digest.update(f"{s.label} {s.start:.2f} {s.end:.2f};".encode())
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print("RESULT " + json.dumps({"load": load, "cpu": cpu, "wall": wall, "audio": audio,
                              "digest": digest.hexdigest()[:12]}))
"""


def thread_env(threads: int, onednn: str = "") -> dict:
    """The environment of a child with ``threads`` intra-op threads (0: TF's default).

    TensorFlow reads these before it makes its pools; one inter-op thread is enough for a
    CNN whose ops run one after another.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    if threads > 0:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
                   OMP_NUM_THREADS=str(threads))
    return env


def run_variant(src: str, threads: int, onednn: str, model: str, files: list[str]) -> dict:
    """One fresh process of one variant → its RESULT dict."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(Path(src).resolve()), model,
                           json.dumps(files)], capture_output=True, text=True,
                          env=thread_env(threads, onednn), cwd=REPO, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"variant {src} failed:\n{done.stderr[-2000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="recordings (WAV)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME:SRC:THREADS (repeat)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    variants = []
    for spec in args.variant:
        name, src, threads, *onednn = spec.split(":")
        variants.append((name, src, int(threads), "".join(onednn)))
    runs: dict[str, list[dict]] = {name: [] for name, *_ in variants}
    for round_ in range(args.rounds):
        # Alternate the order each round: neither variant always runs first.
        order = variants if round_ % 2 == 0 else variants[::-1]
        for name, src, threads, onednn in order:
            result = run_variant(src, threads, onednn, args.model, args.files)
            runs[name].append(result)
            print(f"round {round_ + 1} {name}: {result}", file=sys.stderr, flush=True)
    rows = []
    for name, src, threads, onednn in variants:
        results = runs[name]
        audio = results[0]["audio"]
        rows.append([name, src, threads or "default", onednn or "unset",
                     f"{statistics.median(audio / r['cpu'] for r in results):.0f}",
                     f"{statistics.median(audio / r['wall'] for r in results):.0f}",
                     f"{statistics.median(r['load'] for r in results):.1f}",
                     " ".join(sorted({r['digest'] for r in results}))])
    print(f"{len(args.files)} file(s), {runs[variants[0][0]][0]['audio']:.0f} s of audio, "
          f"{args.rounds} rounds, model {args.model} "
          f"(sha256 {hashlib.sha256(Path(args.model).read_bytes()).hexdigest()[:8]})")
    print(format_table(["variant", "src", "TF threads", "oneDNN", "x RT timeline (CPU)", "x RT wall",
                        "load CPU s", "segments digest"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

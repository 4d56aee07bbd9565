"""Load check of ``agegender serve`` on loopback: a bounded number of uploads, a few at a time.

Starts the server as a child on 127.0.0.1, sends ``--requests`` uploads of one shipped clip
(``--concurrency`` at a time, for at most ``--max_seconds``), and prints errors (a failed
request or an answer unlike the first), p50/p95 latency and throughput beside
``AgeGenderDetector.predict`` in this process. ``python bench/serve_load.py [--endpoint
timeline --requests 40]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import REPO, format_table, load_line

HOST = "127.0.0.1"  # never anything else: this is a loopback check
DEFAULT_CLIP = REPO / "models" / "pretrained" / "clips" / "common_voice_it_17420783.mp3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def multipart(path: Path) -> tuple[bytes, str]:
    """(body, content type) of a form with the file in field ``file``."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start_server(port: int, workers: int, timeout_s: float = 180.0) -> subprocess.Popen:
    """``agegender serve`` on HOST:port, once its /healthz answers."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agegender.cli_main", "serve", "--host", HOST,
         "--port", str(port), "--workers", str(workers), "--queue", "1000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"agegender serve exited: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"agegender serve did not answer /healthz within {timeout_s:.0f} s")


def same_answer(first, second, tolerance: float = 1e-5) -> bool:
    """Equal JSON, numbers within ``tolerance`` (threads may sum in another order)."""
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(same_answer(first[k], second[k])
                                                      for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(same_answer, first, second))
    if isinstance(first, float) or isinstance(second, float):
        return (isinstance(first, (int, float)) and isinstance(second, (int, float))
                and abs(first - second) <= tolerance)
    return first == second


def one_request(url: str, body: bytes, content_type: str,
                expected: dict | None = None) -> tuple[float, str, dict | None]:
    """(seconds, "" or what went wrong, the answer) of one upload; an answer other than
    ``expected`` (the first one: the same clip must get the same labels under load) is an
    error too."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    start = time.perf_counter()
    payload = None
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            payload = json.loads(answer.read())
            problem = "" if payload.get("tasks") or payload.get("segments") else "empty answer"
            if expected is not None and not same_answer(payload, expected):
                problem = "a different answer than the first"
    except urllib.error.HTTPError as err:
        problem = f"HTTP {err.code}"
    except OSError as err:
        problem = type(err).__name__
    return time.perf_counter() - start, problem, payload


def detector_times(clip: Path, runs: int) -> list[float]:
    """Seconds of ``AgeGenderDetector().predict([clip])``, warm (after one untimed call)."""
    import tensorflow  # noqa: F401  (its import notices on stderr come now, not inside the table)

    from agegender import AgeGenderDetector

    detector = AgeGenderDetector()
    detector.predict([clip])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.predict([clip])
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="agegender serve --workers")
    parser.add_argument("--endpoint", choices=("predict", "timeline"), default="predict")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--detector_runs", type=int, default=30)
    parser.add_argument("--max_seconds", type=float, default=900.0,
                        help="stop sending after this long, whatever is left")
    args = parser.parse_args(argv)
    print(load_line())
    body, content_type = multipart(args.clip)
    port = free_port()
    server = start_server(port, args.workers)
    url = f"http://{HOST}:{port}/v1/{args.endpoint}"
    try:
        _, problem, expected = one_request(url, body, content_type)  # warm: not counted
        if problem:
            raise SystemExit(f"{url}: the first request failed: {problem}")
        deadline = time.monotonic() + args.max_seconds

        def bounded(_):
            if time.monotonic() > deadline:
                return None
            return one_request(url, body, content_type, expected)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = [r for r in pool.map(bounded, range(args.requests)) if r is not None]
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)
    latencies = [seconds for seconds, _, _ in results]
    errors = [problem for _, problem, _ in results if problem]
    local = detector_times(args.clip, args.detector_runs)
    rows = [[(f"POST /v1/{args.endpoint} ({args.concurrency} at a time, --workers "
              f"{args.workers})"), len(results), len(errors),
             f"{1000 * np.percentile(latencies, 50):.0f}",
             f"{1000 * np.percentile(latencies, 95):.0f}",
             f"{len(results) / wall:.1f}"],
            ["AgeGenderDetector.predict, in-process, one at a time", len(local), 0,
             f"{1000 * np.percentile(local, 50):.0f}", f"{1000 * np.percentile(local, 95):.0f}",
             f"{1 / statistics.mean(local):.1f}"]]
    print(format_table(["what", "requests", "errors", "p50 ms", "p95 ms", "per s"], rows,
                       title=f"agegender serve on {HOST}, clip {args.clip.name} "
                             f"({args.clip.stat().st_size / 1000:.0f} kB)"))
    if errors:
        print("errors:", ", ".join(sorted(set(errors))))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

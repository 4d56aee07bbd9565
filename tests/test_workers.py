"""Issue 21, item 2: a killed spectrogram worker ends preprocessing with one line, and the
next run resumes (it used to sleep forever at 72 %)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synth

from agegender import workers

ROOT = Path(__file__).resolve().parents[1]

# Runs preprocess_dataset.main with load_speech patched so that, when KILL_CLIP names a clip,
# the worker decoding it kills itself as the OOM killer would (workers are forked, so the
# patch reaches them).
SCRIPT = """
import os, signal, sys
from agegender import preprocess
real = preprocess.load_speech
def load_speech(path, features, **options):
    if os.environ["KILL_CLIP"] and str(path).endswith(os.environ["KILL_CLIP"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, features, **options)
preprocess.load_speech = load_speech
import preprocess_dataset
sys.exit(preprocess_dataset.main(sys.argv[1:]))
"""


def run_preprocess(root: Path, kill_clip: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}", "KILL_CLIP": kill_clip}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, "--dataset_dir", str(root), "--dataset_type", "raw",
         "--results_dir", str(root.parent / "results"), "--num_workers", "2",
         "--image_size", "32", "--shard_size", "5"],
        capture_output=True, text=True, env=env, timeout=300)


def test_killed_worker_stops_the_run_and_the_next_run_resumes(tmp_path: Path) -> None:
    root = synth.make_raw_corpus(tmp_path / "corpus", per_group={"train": 1, "dev": 1,
                                                                  "test": 1}, seconds=0.3)
    killed = run_preprocess(root, "cv-valid-dev/sample-000003.wav")
    errors = [line for line in killed.stderr.splitlines() if line.startswith("error: ")]
    assert killed.returncode == 2, killed.stderr[-2000:]
    assert "Traceback" not in killed.stderr
    assert len(errors) == 1
    # ProcessPoolExecutor's BrokenProcessPool names no PID or signal (the hand-made pool
    # before it did); the line still says which workers, the likely cause and what to do.
    assert "spectrogram worker process died before finishing its job" in errors[0]
    assert "out-of-memory killer" in errors[0]
    assert "run the same command again" in errors[0]
    # A worker stopped mid-write leaves a temporary (.tmp-*), which the next run sweeps.
    made = {path: path.stat().st_mtime_ns for path in (root / "Spectrograms").rglob("*.png")
            if not path.name.startswith(".tmp-")}
    assert 0 < len(made) < 36  # the other worker's images are on disk

    again = run_preprocess(root, "")
    assert again.returncode == 0, again.stderr[-2000:]
    pngs = list((root / "Spectrograms").rglob("*.png"))
    assert len(pngs) == 36
    assert {path: path.stat().st_mtime_ns for path in made} == made  # kept, not remade


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_pool_returns_every_result_and_raises_a_jobs_error() -> None:
    assert sorted(workers.imap_unordered(_square, range(20), 2)) == [x * x for x in range(20)]
    with pytest.raises(ValueError, match="three"):
        list(workers.imap_unordered(_fail_on_three, range(6), 2))


def _die_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x


def test_a_killed_worker_ends_the_iteration_with_one_line() -> None:
    with pytest.raises(workers.WorkerDied, match=r"^a spectrogram worker process died"):
        list(workers.imap_unordered(_die_on_three, range(8), 2, name="spectrogram worker"))




def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A killed preprocessing run must not leave its workers waiting for jobs forever."""
    # Each job writes its worker's PID to a file (a pipe would stay open in the orphans).
    code = ("import os, pathlib, signal, sys, threading, time; from agegender import workers\n"
            "def job(x):\n"
            f"    pathlib.Path({str(tmp_path)!r}, str(os.getpid())).touch(); time.sleep(60)\n"
            "def kill_when_both_started():\n"
            f"    while len(list(pathlib.Path({str(tmp_path)!r}).iterdir())) < 2:\n"
            "        time.sleep(0.05)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "threading.Thread(target=kill_when_both_started, daemon=True).start()\n"
            "list(workers.imap_unordered(job, range(2), 2))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    pids = [int(path.name) for path in tmp_path.iterdir()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10 * workers.POLL_S + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in pids if _alive(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

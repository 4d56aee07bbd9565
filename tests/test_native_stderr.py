"""native_stderr: the C libraries' known noise is dropped, our own messages are not."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT
from synth import voice, write_audio

from agegender.native_stderr import NOISE, filtered_stderr

MPG123_NOISE = ("[src/libmpg123", "Note: Illegal Audio-MPEG-Header", "Note: Trying to resync",
                "Note: Skipped")


@pytest.fixture(scope="module")
def damaged_mp3(tmp_path_factory) -> Path:
    """An MP3 whose frames after the first 400 bytes are overwritten with noise: libmpg123
    resyncs and complains on stderr."""
    folder = tmp_path_factory.mktemp("mp3")
    good = write_audio(folder / "good.mp3", voice("male", "teens", seed=1, seconds=2.0,
                                                  rate=48_000), 48_000)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(400, len(data), 3):
        data[i] = int(rng.integers(256))
    damaged = folder / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    return damaged


def test_the_damaged_mp3_makes_libmpg123_talk_when_unfiltered(damaged_mp3, capfd):
    """The fixture is a real case: read directly, libmpg123 writes its lines to fd 2."""
    with contextlib.suppress(sf.LibsndfileError), sf.SoundFile(damaged_mp3) as audio:
        audio.read(dtype="float32")
    assert any(marker in capfd.readouterr().err for marker in MPG123_NOISE)


def test_our_own_lines_in_the_block_reach_stderr_in_order(capfd):
    with filtered_stderr():
        os.write(2, b"ours: first\n")
        os.write(2, b"[src/libmpg123/layer3.c:123] error: dequantization failed!\n")
        os.write(2, b"Note: Trying to resync...\nours: last, without a newline")
    assert capfd.readouterr().err == "ours: first\nours: last, without a newline"
    os.write(2, b"Note: Trying to resync...\n")  # outside a block nothing is filtered
    assert capfd.readouterr().err == "Note: Trying to resync...\n"


def test_overlapping_blocks_in_threads_lose_no_line(capfd):
    inside, release = threading.Barrier(5), threading.Event()

    def worker(n: int) -> None:
        with filtered_stderr():
            inside.wait()
            os.write(2, f"ours: thread {n}\n".encode())
            os.write(2, b"Note: Skipped 240 bytes in input.\n")
            release.wait(timeout=10)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    inside.wait()
    release.set()
    for thread in threads:
        thread.join()
    os.write(2, b"ours: after\n")  # fd 2 is the real stderr again
    lines = capfd.readouterr().err.splitlines()
    assert sorted(lines[:-1]) == [f"ours: thread {n}" for n in range(4)]
    assert lines[-1] == "ours: after"


def test_noise_pattern_leaves_our_message_formats_alone():
    assert NOISE.match("I0000 00:00:1796026535.932525    8480 port.cc:153] oneDNN custom "
                       "operations are on. You may see slightly different numerical results")
    for ours in ("error: a.mp3: corrupt or not an audio file", "INFO agegender.x: Note: y",
                 "WARNING agegender.preprocess: clean: 3 rows dropped"):
        assert not NOISE.match(ours)


def _stderr_of(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2",
           # oneDNN (and its notice) on, whatever this CPU would choose by default
           "TF_ENABLE_ONEDNN_OPTS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr



"""Speaking a sentence in a synthetic voice with espeak-ng, then "recording" it.

espeak-ng only loads voice variants from its data folder, so we never write into the system
one: a temporary folder holds a symlink copy of espeak-ng's data with our variants added, and
espeak-ng is pointed at it with ``--path``.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from agegender import atomic
from agegender.demo.voices import VoiceParams
from agegender.errors import AudioError, DatasetError

ESPEAK_INSTALL_HINT = "install it with `apt-get install espeak-ng`"


def find_espeak() -> tuple[str, Path]:
    """Finds the espeak-ng program and its data folder.

    Returns:
        (program path, espeak-ng-data folder).

    Raises:
        DatasetError: espeak-ng is not installed or does not say where its data is.
    """
    program = shutil.which("espeak-ng")
    if program is None:
        raise DatasetError(f"espeak-ng is not installed; {ESPEAK_INSTALL_HINT}")
    try:
        version = subprocess.run(
            [program, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise DatasetError(
            f"cannot run {program} --version ({err}); {ESPEAK_INSTALL_HINT}"
        ) from err
    match = re.search(r"Data at:\s*(\S.*?)\s*$", version, flags=re.MULTILINE)
    if match is None or not Path(match.group(1), "phontab").is_file():
        raise DatasetError(
            f"espeak-ng does not report a usable data folder ({version.strip()!r}); "
            f"{ESPEAK_INSTALL_HINT}"
        )
    return program, Path(match.group(1))


def build_espeak_root(directory: Path | str, data_dir: Path | str | None = None) -> Path:
    """Makes a folder that espeak-ng ``--path`` accepts, where our voice variants can be added.

    espeak-ng looks variants up only in ``<data>/voices/!v``; instead of writing into the system
    data folder we mirror it with symlinks and give ``voices/!v`` a real, writable folder.

    Args:
        directory: an empty folder we own, e.g. a ``TemporaryDirectory``.
        data_dir: espeak-ng's own data folder; found with ``find_espeak`` when None.

    Returns:
        ``directory``, to pass as ``espeak-ng --path``; variants go in
        ``directory/espeak-ng-data/voices/!v``.
    """
    if data_dir is None:
        data_dir = find_espeak()[1]
    data_dir, root = Path(data_dir), Path(directory)
    mirror = root / "espeak-ng-data"
    (mirror / "voices" / "!v").mkdir(parents=True, exist_ok=True)
    for entry in data_dir.iterdir():
        if entry.name != "voices":
            _symlink(entry, mirror / entry.name)
    if (data_dir / "voices").is_dir():
        for entry in (data_dir / "voices").iterdir():
            if entry.name != "!v":
                _symlink(entry, mirror / "voices" / entry.name)
    return root


def _symlink(target: Path, link: Path) -> None:
    if not link.is_symlink():
        link.symlink_to(target, target_is_directory=target.is_dir())


def install_variant(voice: VoiceParams, espeak_root: Path | str) -> Path:
    """Writes a speaker's variant file into an ``build_espeak_root`` folder (atomic, idempotent).

    Returns:
        The variant file's path.
    """
    path = Path(espeak_root) / "espeak-ng-data" / "voices" / "!v" / voice.variant_name
    text = voice.variant_text()
    if not (path.is_file() and path.read_text() == text):
        atomic.write_bytes(path, text.encode())
    return path


def synthesize(
    voice: VoiceParams,
    text: str,
    *,
    sample_rate: int = 48000,
    seed: int = 0,
    espeak_root: Path | str | None = None,
) -> np.ndarray:
    """Speaks a sentence in a synthetic speaker's voice.

    espeak-ng renders the voice variant at 22 050 Hz; then silence is trimmed and re-padded
    (0.1-0.4 s each side), the signal is resampled, and tremolo, microphone noise and the
    speaker's level are applied.

    Args:
        voice: the speaker.
        text: English text to speak.
        sample_rate: output sample rate, Hz.
        seed: seed of the clip's own randomness (padding, noise, tremolo phase).
        espeak_root: a ``build_espeak_root`` folder to reuse; a temporary one is made when None.

    Returns:
        [samples] float32 mono waveform at ``sample_rate`` in [-1, 1].

    Raises:
        DatasetError: espeak-ng is missing.
        AudioError: espeak-ng fails or produces no sound.
    """
    if espeak_root is None:
        with tempfile.TemporaryDirectory(prefix="agegender-espeak-") as tmp:
            return synthesize(
                voice, text, sample_rate=sample_rate, seed=seed, espeak_root=build_espeak_root(tmp)
            )
    program = shutil.which("espeak-ng")
    if program is None:
        raise DatasetError(f"espeak-ng is not installed; {ESPEAK_INSTALL_HINT}")
    install_variant(voice, espeak_root)
    command = [
        program,
        f"--path={espeak_root}",
        "-v", f"{voice.espeak_voice}+{voice.variant_name}",
        "-s", str(voice.speed_wpm),
        "--stdout",
        text,
    ]
    result = subprocess.run(command, capture_output=True, check=False, timeout=60)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
        raise AudioError(f"espeak-ng failed for speaker {voice.speaker_id}: {message}")
    speech, espeak_rate = sf.read(io.BytesIO(result.stdout), dtype="float32")  # [samples]
    return _post_process(speech, espeak_rate, voice, sample_rate, np.random.default_rng(seed))


def _post_process(
    speech: np.ndarray,
    rate: int,
    voice: VoiceParams,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Trims, pads, resamples and "records" espeak's output as this speaker's microphone would."""
    peak = float(np.max(np.abs(speech), initial=0.0))
    if peak == 0.0:
        raise AudioError(f"espeak-ng produced silence for speaker {voice.speaker_id}")
    # espeak's own lead-in and sentence-final pause are fixed; drawing our own keeps clip length
    # from hinting at anything and keeps clips in the 1-5 s range.
    loud = np.flatnonzero(np.abs(speech) > 0.01 * peak)
    speech = speech[loud[0] : loud[-1] + 1]
    lead, tail = (int(rng.uniform(0.1, 0.4) * rate) for _ in range(2))
    speech = np.pad(speech, (lead, tail))  # [samples] at espeak's rate
    audio = soxr.resample(speech, rate, sample_rate, quality="HQ").astype(np.float64)
    t = np.arange(audio.size) / sample_rate  # [samples] seconds
    phase = rng.uniform(0.0, 2.0 * np.pi)
    audio *= 1.0 + voice.tremolo_depth * np.sin(2.0 * np.pi * voice.tremolo_hz * t + phase)
    audio *= voice.peak_level / np.max(np.abs(audio))
    noise_rms = voice.peak_level * 10.0 ** (-voice.noise_snr_db / 20.0)
    audio += noise_rms * rng.standard_normal(audio.size)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)  # [samples]

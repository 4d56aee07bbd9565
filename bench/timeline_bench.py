"""Who speaks when on long recordings of real voices: our timeline vs a pitch rule vs
inaSpeechSegmenter.

``build`` joins clips of one split of a manifest dataset (no speaker twice in a row, pauses of
0.2-2 s) into seeded 2-10 min recordings at 16 kHz, every third over pink noise (-15 dB), every
third over struck chords (-12 dB); the truth is each clip's voiced stretches. Each system runs
in its own process (CPU seconds, peak RSS): ``ours`` (``AgeGenderDetector.timeline``), ``pitch``
(the same regions and windows labelled by median F0 against 165 Hz), ``ina`` (the venv of
``--ina_python``, skipped when missing). Scored on a 10-ms grid: missed speech, false alarm,
gender error, and the gender error on the speech every system labels (``common_ground``)::

    python bench/timeline_bench.py --ina_python /tmp/ina-venv/bin/python [--long_hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, format_table

from agegender.atomic import sha256_file
from agegender.synthetic import struck_chord

RATE = 16_000
GRID = 0.01  # s, scoring resolution
INA_SCRIPT = r"""
import json, sys, time
from inaSpeechSegmenter import Segmenter
files = json.loads(sys.argv[1])
segmenter = Segmenter(detect_gender=True)
out = {}
for path in files:
    out[path] = [[label, float(a), float(b)] for label, a, b in segmenter(path)]
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("RESULT " + json.dumps({"segments": out, "rss_mib": int(hwm) / 1024}))
"""


def voiced_stretches(wave: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of a clip's speech: frames within 35 dB of its peak, gaps under
    0.3 s bridged (independent of the speech gate, which is under test)."""
    import librosa

    spans = librosa.effects.split(wave, top_db=35, frame_length=400, hop_length=160)
    merged: list[list[float]] = []
    for a, b in spans / rate:
        if merged and a - merged[-1][1] < 0.3:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b - a >= 0.1]


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise, float32 [samples], RMS 1."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.shape[0]), 1))
    noise = np.fft.irfft(spectrum, samples)
    return (noise / noise.std()).astype(np.float32)


def chord_music(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Struck triads of six-partial tones, a new chord every 0.5-2 s, RMS 1."""
    out = np.zeros(samples, np.float32)
    roots = [130.8, 146.8, 164.8, 174.6, 196.0, 220.0, 246.9]
    position = 0
    while position < samples:
        length = int(rng.uniform(0.5, 2.0) * RATE)
        stretch = min(length, samples - position)
        root = rng.choice(roots) * rng.choice([1, 2])
        chord = [root, root * 1.26, root * 1.498]
        out[position:position + stretch] = struck_chord(chord, stretch, RATE, decay_s=0.7)
        position += length
    return out / max(out.std(), 1e-9)


def build(args) -> list[dict]:
    """Writes the recordings and their truth; returns one dict per recording."""
    import pandas as pd
    import soundfile as sf

    from agegender.config import FeatureParams
    from agegender.errors import AudioError
    from agegender.features import load_clip

    table = pd.read_csv(args.manifest, dtype=str, keep_default_na=False)
    table = table[table["split"] == args.split].reset_index(drop=True)
    if table.empty:
        sys.exit(f"{args.manifest}: no rows in split {args.split}")
    root = Path(args.manifest).resolve().parent
    out = Path(args.work_dir) / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    params = FeatureParams(sample_rate=RATE, max_duration_s=60.0)
    recordings = []
    for number in range(args.recordings):
        minutes = rng.uniform(args.min_minutes, args.max_minutes)
        background = ("clean", "noise", "music")[number % 3]
        wav = out / f"rec{number}.wav"
        truth_csv = out / f"rec{number}.truth.csv"
        recordings.append({"wav": str(wav), "truth": str(truth_csv), "minutes": minutes,
                           "background": background})
        if wav.is_file() and truth_csv.is_file():
            continue
        pieces, truth, cursor, last_speaker = [], [], 0.0, None
        order = rng.permutation(len(table))
        position = 0
        while cursor < minutes * 60:
            row = table.iloc[order[position % len(order)]]
            position += 1
            if row["speaker_id"] == last_speaker:
                continue
            try:
                wave = load_clip(root / row["path"], params)
            except AudioError as err:
                print(f"skipped: {err}", file=sys.stderr)
                continue
            last_speaker = row["speaker_id"]
            for a, b in voiced_stretches(wave, RATE):
                truth.append({"start": cursor + a, "end": cursor + b, "gender": row["gender"],
                              "age": row.get("age", ""), "speaker": row["speaker_id"],
                              "clip": row["path"]})
            pause = rng.uniform(0.2, 2.0)
            pieces += [wave, np.zeros(int(pause * RATE), np.float32)]
            cursor += wave.shape[0] / RATE + pause
        mix = np.concatenate(pieces)
        speech_rms = float(np.sqrt(np.mean(np.concatenate(
            [mix[int(t["start"] * RATE):int(t["end"] * RATE)] for t in truth]) ** 2)))
        if background == "noise":
            mix = mix + speech_rms * 10 ** (-15 / 20) * pink_noise(mix.shape[0], rng)
        elif background == "music":
            mix = mix + speech_rms * 10 ** (-12 / 20) * chord_music(mix.shape[0], rng)
        mix = mix / max(1.0, float(np.abs(mix).max()) / 0.99)
        sf.write(wav, mix, RATE, subtype="PCM_16")
        pd.DataFrame(truth).to_csv(truth_csv, index=False)
        print(f"built {wav}: {cursor / 60:.1f} min, {len(truth)} voiced stretches, "
              f"{background}", file=sys.stderr)
    return recordings


def run_ours(files: list[str], model: str) -> dict:
    """Child: our timeline per file → {file: [[label, start, end]]}."""
    from agegender import AgeGenderDetector

    detector = AgeGenderDetector(model)
    return {f: [[s.label, s.start, s.end] for s in detector.timeline(f)["segments"]]
            for f in files}


def run_pitch(files: list[str], threshold_hz: float = 165.0) -> dict:
    """Child: the speech gate's regions and windows, each window labelled by its median F0."""
    from agegender import speech, timeline

    params = timeline.TimelineParams()
    out = {}
    for path in files:
        voicing, duration = timeline.gate_pass(path, params.block_s)
        voiced = speech.voiced_frames(voicing, reference_db=timeline.local_reference_db(
            voicing.rms_db))
        regions = timeline.speech_regions(voiced, params, duration)
        windows = timeline.windows_in(regions, 2.56, 2.56, duration)
        frame_s = speech.HOP / speech.GATE_RATE
        probabilities = np.full((len(windows), 2), np.nan, np.float32)
        for i, (a, b) in enumerate(windows):
            frames = slice(int(a / frame_s), int(b / frame_s))
            f0 = voicing.f0_hz[frames][voiced[frames]]
            if f0.size:
                female = 1 / (1 + np.exp(-(np.median(f0) - threshold_hz) / 15.0))
                probabilities[i] = [1 - female, female]
        segments = timeline.label_segments(regions, windows, probabilities,
                                           ("male", "female"), duration,
                                           params.switch_penalty)
        out[path] = [[s.label, s.start, s.end] for s in segments]
    return out


def child(args) -> None:
    """``--run SYSTEM``: runs one system and prints its segments as one JSON line."""
    files = json.loads(Path(args.files).read_text())
    start = time.process_time()
    if args.run == "ours":
        result = {"gender": run_ours(files, args.gender_model)}
    else:
        result = {"gender": run_pitch(files)}
    print("RESULT " + json.dumps({**result, "cpu_s": time.process_time() - start,
                                  "rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB (a child's ``ru_maxrss`` would also
    count the parent's memory, which its pre-exec copy held)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# A child's TensorFlow: one intra-op and one inter-op thread, oneDNN kernels on.
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1",
             "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
             "OMP_NUM_THREADS": "1"}


def run_child(command: list[str], env: dict) -> tuple[dict | None, float, float]:
    """Runs a child: (its RESULT json, CPU seconds user+sys, its own peak RSS MiB)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    if process.returncode and result is None:
        print(f"{command[:3]} failed ({process.returncode}): {stderr[-1500:]}",
              file=sys.stderr)
    rss = result.get("rss_mib", float("nan")) if result else float("nan")
    return result, usage.ru_utime + usage.ru_stime, rss


def grid_labels(segments, duration: float, names: list[str]) -> np.ndarray:
    """[duration / GRID] int: 0 = non-speech, 1 + index of the label in ``names``."""
    grid = np.zeros(int(np.ceil(duration / GRID)), np.int16)
    for label, start, end in segments:
        if label in names:
            grid[round(start / GRID):round(end / GRID)] = 1 + names.index(label)
    return grid


def truth_grid(rec: dict, names: list[str], column: str) -> tuple[float, np.ndarray]:
    """(the recording's seconds, its true labels of ``column`` on the ``GRID``)."""
    import pandas as pd
    import soundfile as sf

    duration = sf.info(rec["wav"]).duration
    table = pd.read_csv(rec["truth"], dtype={column: str}, keep_default_na=False)
    return duration, grid_labels(zip(table[column], table["start"], table["end"],
                                     strict=True), duration, names)


def score(truth: np.ndarray, hyp: np.ndarray) -> dict:
    """Seconds of speech, missed, false alarm and wrong class on two label grids."""
    n = min(len(truth), len(hyp))
    truth, hyp = truth[:n], hyp[:n]
    spoken, said = truth > 0, hyp > 0
    return {"speech_s": spoken.sum() * GRID, "nonspeech_s": (~spoken).sum() * GRID,
            "missed_s": (spoken & ~said).sum() * GRID, "fa_s": (~spoken & said).sum() * GRID,
            "wrong_s": (spoken & said & (truth != hyp)).sum() * GRID}


def shares(s: dict) -> tuple[str, str, str]:
    """missed %, false alarm %, class error % of a score."""
    return (f"{100 * s['missed_s'] / max(s['speech_s'], 1e-9):.1f}",
            f"{100 * s['fa_s'] / max(s['nonspeech_s'], 1e-9):.1f}",
            f"{100 * s['wrong_s'] / max(s['speech_s'], 1e-9):.1f}")


def add(a: dict | None, b: dict) -> dict:
    return dict(b) if a is None else {k: a[k] + b[k] for k in a}


def evaluate(recordings, outputs: dict, task: str, names: list[str], column: str) -> list:
    """Rows per recording and pooled: per system missed/FA/error."""
    import soundfile as sf

    rows, pooled = [], {}
    for rec in recordings:
        duration, truth = truth_grid(rec, names, column)
        row = [Path(rec["wav"]).name, f"{duration / 60:.1f}", rec["background"]]
        for system, segments in outputs.items():
            if segments is None or task not in segments:
                row += ["-", "-", "-"]
                continue
            hyp = grid_labels(segments[task][rec["wav"]], duration, names)
            result = score(truth, hyp)
            pooled[system] = add(pooled.get(system), result)
            row += list(shares(result))
        rows.append(row)
    total = ["all", f"{sum(sf.info(r['wav']).duration for r in recordings) / 60:.1f}", ""]
    for system in outputs:
        total += list(shares(pooled[system])) if system in pooled else ["-", "-", "-"]
    return [*rows, total]


def common_ground(recordings, outputs: dict, task: str, names: list[str], column: str) -> list:
    """Rows per recording, then pooled: [recording, minutes of common speech, % of true
    speech it covers, one class error % per system] on the true speech every system labels
    (a system that drops its hard speech would otherwise be scored on easier time)."""

    systems = [name for name, segments in outputs.items()
               if segments is not None and task in segments]
    rows, common_s, speech_s = [], 0.0, 0.0
    wrong_s = dict.fromkeys(systems, 0.0)
    for rec in recordings:
        duration, truth = truth_grid(rec, names, column)
        hyps = {name: grid_labels(outputs[name][task][rec["wav"]], duration, names)
                for name in systems}
        n = min([len(truth), *(len(h) for h in hyps.values())])
        shared = truth[:n] > 0
        for hyp in hyps.values():
            shared &= hyp[:n] > 0
        seconds = shared.sum() * GRID
        common_s += seconds
        speech_s += (truth > 0).sum() * GRID
        row = [Path(rec["wav"]).name, f"{seconds / 60:.1f}",
               f"{100 * seconds / max((truth > 0).sum() * GRID, 1e-9):.0f}"]
        for name, hyp in hyps.items():
            wrong = (shared & (hyp[:n] != truth[:n])).sum() * GRID
            wrong_s[name] += wrong
            row.append(f"{100 * wrong / max(seconds, 1e-9):.1f}")
        rows.append(row)
    total = ["all", f"{common_s / 60:.1f}", f"{100 * common_s / max(speech_s, 1e-9):.0f}"]
    total += [f"{100 * wrong_s[name] / max(common_s, 1e-9):.1f}" for name in systems]
    return [*rows, total]


def ina_segments(raw: dict) -> dict:
    """ina's labels → ours: male/female speech, everything else non-speech."""
    return {"gender": {path: [[label, a, b] for label, a, b in segments
                              if label in ("male", "female")]
                       for path, segments in raw.items()}}


def long_file(recordings, hours: float, path: Path) -> float:
    """Writes ``hours`` of the recordings repeated, block by block; returns seconds."""
    import soundfile as sf

    total = 0
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        while total < hours * 3600 * RATE:
            for rec in recordings:
                for block in sf.blocks(rec["wav"], blocksize=RATE * 60, dtype="float32"):
                    out.write(block)
                    total += block.shape[0]
                if total >= hours * 3600 * RATE:
                    break
    return total / RATE


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="a manifest dataset's table, only read",
                        default=str(REPO.parent / "shared" / "cv-sample" / "manifest.csv"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--min_minutes", type=float, default=2.0)
    parser.add_argument("--max_minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="/tmp/timeline_bench")
    parser.add_argument("--gender_model", default=str(REPO / "models" / "pretrained" /
                                                      "gender.keras"),
                        help="default: the shipped gender model")
    parser.add_argument("--ina_python", default="/tmp/ina-venv/bin/python",
                        help="python of a venv with inaSpeechSegmenter (bench/README.md)")
    parser.add_argument("--long_hours", type=float, default=0.0,
                        help="also time ours on one file this many hours long (in work_dir)")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("manifest", "gender_model"):
        if not args.run and not Path(getattr(args, flag)).is_file():
            parser.error(f"--{flag} {getattr(args, flag)}: no such file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run:
        child(args)
        return 0
    recordings = build(args)
    files = [r["wav"] for r in recordings]
    audio_s = sum(__import__("soundfile").info(f).duration for f in files)
    files_json = Path(args.work_dir) / "files.json"
    files_json.write_text(json.dumps(files))
    me = [sys.executable, __file__, f"--files={files_json}", f"--gender_model={args.gender_model}"]
    outputs, speed = {}, {}
    cache = Path(args.work_dir) / "outputs"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, **CHILD_ENV}
    commands = {system: ([*me, f"--run={system}"], env) for system in ("ours", "pitch")}
    if Path(args.ina_python).is_file():
        commands["ina"] = ([args.ina_python, "-c", INA_SCRIPT, json.dumps(files)],
                           {**env, "CUDA_VISIBLE_DEVICES": ""})
    else:
        print(f"ina column skipped: {args.ina_python} not found (bench/README.md says how "
              "to make it)", file=sys.stderr)
    for system, (command, child_env) in commands.items():
        # Each system's run is kept (``outputs/<system>.json``, keyed by its model and the
        # files), so adding a system does not re-run the others.
        key = json.dumps([files, sha256_file(args.gender_model) if system == "ours" else None])
        saved = cache / f"{system}.json"
        if saved.is_file() and json.loads(saved.read_text())["key"] == key:
            stored = json.loads(saved.read_text())
        else:
            result, cpu, rss = run_child(command, child_env)
            stored = {"key": key, "result": result, "cpu": cpu, "rss": rss}
            saved.write_text(json.dumps(stored))
        result = stored["result"]
        outputs[system] = (ina_segments(result["segments"]) if system == "ina" and result
                           else result)
        inner = result.get("cpu_s", stored["cpu"]) if result and system != "ina" else stored["cpu"]
        speed[system] = (audio_s / stored["cpu"], audio_s / inner, stored["rss"])
    header = ["recording", "min", "background"]
    for system in outputs:
        header += [f"{system} missed %", f"{system} FA %", f"{system} gender err %"]
    print(f"Gender over {len(files)} recordings ({audio_s / 60:.1f} min) built from "
          f"{args.manifest} split {args.split}, seed {args.seed}; model {args.gender_model}")
    print(format_table(header, evaluate(recordings, outputs, "gender", ["male", "female"],
                                        "gender")))
    scored = [name for name, segments in outputs.items()
              if segments is not None and "gender" in segments]
    if len(scored) > 1:
        print("Gender error on the speech time every system labels (the same seconds for all)")
        print(format_table(["recording", "common speech min", "% of speech",
                            *(f"{name} gender err %" for name in scored)],
                           common_ground(recordings, outputs, "gender", ["male", "female"],
                                         "gender")))
    print(format_table(["system", "x real time (process CPU, load incl.)",
                        "x real time (timeline CPU only)", "peak RSS MiB"],
                       [[s, f"{a:.0f}", f"{b:.0f}", f"{r:.0f}"]
                        for s, (a, b, r) in speed.items()]))
    if args.long_hours:
        path = Path(args.work_dir) / "long.wav"
        seconds = long_file(recordings, args.long_hours, path)
        Path(args.work_dir, "long.json").write_text(json.dumps([str(path)]))
        result, cpu, rss = run_child([sys.executable, __file__,
                                         f"--files={Path(args.work_dir) / 'long.json'}",
                                         f"--gender_model={args.gender_model}", "--run=ours"],
                                        env)
        print(f"long file: {seconds / 3600:.2f} h, {seconds / cpu:.0f}x real time "
              f"(process CPU), peak RSS {rss:.0f} MiB, "
              f"{len(result['gender'][str(path)]) if result else 0} segments")
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Who speaks when, and as whom, on recordings of real voices: our timeline vs older code
and inaSpeechSegmenter.

``build`` makes seeded 16-kHz recordings of 2-6 speakers taking turns from clips of one split
of a manifest dataset (``dev`` to choose settings, ``test`` to report), cycling clean, pink
noise (-15 dB) and struck chords (-12 dB); the truth is each clip's voiced stretches (CSV and
reference RTTM). Each system runs in its own process (CPU seconds, peak RSS): ``ours``
(``AgeGenderDetector.timeline``), ``old`` (``--old_repo``'s), ``ina`` (``--ina_python``'s).
Scored: DER (pyannote.metrics, ``bench/requirements.txt``; genders as speakers for a system
without speakers); on a 10-ms grid missed speech, false alarm, gender error, also on the
speech all label (``common_ground``). ``--timeline_params`` x N: one row each (dev choice)::

    python bench/timeline_bench.py --old_repo /path/to/old/checkout [--long_hours 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, format_table, met

from agegender.atomic import sha256_file
from agegender.synthetic import struck_chord
from agegender.timeline import NO_SPEECH

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


def mixed(speech: np.ndarray, truth: list[dict], background: str, rng) -> np.ndarray:
    """``speech`` [samples] over its background, the background's level set against the
    RMS of the true speech, peak at most 0.99."""
    rms = float(np.sqrt(np.mean(np.concatenate(
        [speech[int(t["start"] * RATE):int(t["end"] * RATE)] for t in truth]) ** 2)))
    if background in ("noise", "music"):
        speech = speech + rms * (10 ** (-15 / 20) * pink_noise(len(speech), rng)
                                 if background == "noise" else
                                 10 ** (-12 / 20) * chord_music(len(speech), rng))
    return speech / max(1.0, float(np.abs(speech).max()) / 0.99)


# Long because: one loop makes a recording, its truth and its RTTM together (the turn state
# would otherwise be passed between helpers).
def build(args) -> list[dict]:
    """Writes the recordings, their truth (CSV: start, end, gender, speaker per voiced
    stretch) and reference RTTM; returns one dict per recording. Recording ``n`` has ``2 + n
    % 5`` speakers of the split's with 3+ clips (weight: the root of their clip count); each
    turn, 1-2 clips 0.1-0.4 s apart, goes to another speaker than the last (weight: clips
    left), 0.2-1.5 s after, until ``minutes`` or the clips run out (none used twice)."""
    import pandas as pd
    import soundfile as sf

    from agegender.config import FeatureParams
    from agegender.errors import AudioError
    from agegender.features import load_clip

    table = pd.read_csv(args.manifest, dtype=str, keep_default_na=False)
    table = table[table["split"] == args.split]
    clips = {who: rows for who, rows in table.groupby("speaker_id") if len(rows) >= 3}
    if len(clips) < 6:
        sys.exit(f"{args.manifest}: split {args.split} has {len(clips)} speakers with 3+ "
                 "clips; need 6")
    root, out = Path(args.manifest).resolve().parent, Path(args.work_dir) / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    rng, names = np.random.default_rng(args.seed), sorted(clips)
    weight = np.sqrt([len(clips[n]) for n in names])
    params = FeatureParams(sample_rate=RATE, max_duration_s=60.0)
    recordings = []
    for number in range(args.recordings):
        minutes = rng.uniform(args.min_minutes, args.max_minutes)
        background = args.backgrounds[number % len(args.backgrounds)]
        chosen = rng.choice(names, 2 + number % 5, replace=False, p=weight / weight.sum())
        left = {who: list(rng.permutation(len(clips[who]))) for who in chosen}
        stem = out / f"{args.split}{number}"
        rec = {"wav": f"{stem}.wav", "truth": f"{stem}.truth.csv", "rttm": f"{stem}.rttm",
               "background": background, "speakers": len(chosen)}
        recordings.append(rec)
        if all(Path(rec[k]).is_file() for k in ("wav", "truth", "rttm")):
            continue
        pieces, truth, cursor, last = [], [], 0.0, None
        while cursor < minutes * 60 and any(left[w] for w in chosen if w != last):
            others = [w for w in chosen if w != last and left[w]]
            count = np.array([len(left[w]) for w in others], float)
            last = others[rng.choice(len(others), p=count / count.sum())]
            for _ in range(min(len(left[last]), rng.integers(1, 3))):
                row = clips[last].iloc[left[last].pop()]
                try:
                    wave = load_clip(root / row["path"], params)
                except AudioError as err:
                    print(f"skipped: {err}", file=sys.stderr)
                    continue
                truth += [{"start": cursor + a, "end": cursor + b, "gender": row["gender"],
                           "speaker": last, "clip": row["path"]}
                          for a, b in voiced_stretches(wave, RATE)]
                pause = rng.uniform(0.1, 0.4)
                pieces += [wave, np.zeros(int(pause * RATE), np.float32)]
                cursor += wave.shape[0] / RATE + pause
            pause = rng.uniform(0.1, 1.1)  # with the clip's 0.1-0.4 s: 0.2-1.5 s between turns
            pieces.append(np.zeros(int(pause * RATE), np.float32))
            cursor += pause
        sf.write(rec["wav"], mixed(np.concatenate(pieces), truth, background, rng), RATE,
                 subtype="PCM_16")
        pd.DataFrame(truth).to_csv(rec["truth"], index=False)
        Path(rec["rttm"]).write_text("".join(
            f"SPEAKER {stem.name} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} <NA> <NA> "
            f"{t['speaker']} <NA> <NA>\n" for t in truth))
        print(f"built {rec['wav']}: {cursor / 60:.1f} min, {len(chosen)} speakers, "
              f"{len(truth)} voiced stretches, {background}", file=sys.stderr)
    return recordings


def child(args) -> None:
    """``--run``: our timeline per file → one JSON line: ``gender`` {file: [[gender, start,
    end, speaker]]} (speech only; the gender as speaker where the timeline names none), CPU
    seconds from loading the model on, peak RSS (VmHWM: a child's ``ru_maxrss`` would also
    count the parent's memory, which its pre-exec copy held)."""
    from agegender import AgeGenderDetector
    from agegender.timeline import NO_SPEECH, TimelineParams

    start, out = time.process_time(), {}
    detector = AgeGenderDetector(args.gender_model)
    for f in json.loads(Path(args.files).read_text()):
        segments = detector.timeline(f, TimelineParams(**json.loads(args.timeline_params[0])))
        out[f] = [[s.label, s.start, s.end, getattr(s, "speaker", None) or s.label]
                  for s in segments["segments"] if s.label != NO_SPEECH]
    hwm = [line for line in Path("/proc/self/status").read_text().splitlines()
           if line.startswith("VmHWM:")]
    print("RESULT " + json.dumps({"gender": out, "cpu_s": time.process_time() - start,
                                  "rss_mib": int(hwm[0].split()[1]) / 1024}))


# A child's TensorFlow: one intra-op and one inter-op thread, oneDNN kernels on.
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1",
             "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
             "OMP_NUM_THREADS": "1"}


def run_child(command: list[str], env: dict) -> tuple[dict | None, float, float]:
    """Runs a child: (its RESULT json, CPU seconds user+sys, its own peak RSS MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
             if line.startswith("RESULT ")]
    if not found:
        print(f"{command[:3]} failed ({done.returncode}): {done.stderr[-1500:]}",
              file=sys.stderr)
    result = found[-1] if found else None
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, cpu, result.get("rss_mib", float("nan")) if result else float("nan")


def grid_labels(segments, duration: float, names: list[str]) -> np.ndarray:
    """[duration / GRID] int: 0 = non-speech, 1 + index of the label in ``names``."""
    grid = np.zeros(int(np.ceil(duration / GRID)), np.int16)
    for label, start, end, *_ in segments:
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
    """ina's labels → ours: male/female speech (its gender also as its speaker), everything
    else non-speech."""
    return {"gender": {path: [[label, a, b, label] for label, a, b in segments
                              if label in ("male", "female")]
                       for path, segments in raw.items()}}


COLLARS = (0.0, 0.25, 0.5)  # pyannote's collar: its whole width, centred on each boundary


def annotation(rows, uri: str):
    """pyannote Annotation of ``(start, end, speaker)`` rows."""
    from pyannote.core import Annotation, Segment

    made = Annotation(uri=uri)
    for track, (start, end, who) in enumerate(rows):
        if end > start:
            made[Segment(start, end), track] = who
    return made


def diarization(recordings, outputs: dict) -> list:
    """Rows per recording, then pooled: DER per system at each of ``COLLARS`` (a system that
    names no speakers is scored with its gender labels as speakers), speakers found."""
    import pandas as pd
    import soundfile as sf
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    systems = [n for n, s in outputs.items() if s is not None and "gender" in s]
    metrics = {(n, c): DiarizationErrorRate(collar=c) for n in systems for c in COLLARS}
    rows, seconds = [], 0.0
    for rec in recordings:
        duration = sf.info(rec["wav"]).duration
        seconds += duration
        truth = pd.read_csv(rec["truth"], dtype={"speaker": str})
        uri, uem = Path(rec["wav"]).stem, Timeline([Segment(0, duration)])
        reference = annotation(zip(truth["start"], truth["end"], truth["speaker"],
                                   strict=True), uri)
        row = [uri, f"{duration / 60:.1f}", rec["speakers"], rec["background"]]
        for n in systems:
            hyp = annotation([r[1:4] for r in outputs[n]["gender"][rec["wav"]]], uri)
            row += [f"{metrics[n, c](reference, hyp, uem=uem):.3f}" for c in COLLARS]
            row.append(len(hyp.labels()))
        rows.append(row)
    total = ["all", f"{seconds / 60:.1f}", "", ""]
    for n in systems:
        total += [f"{abs(metrics[n, c]):.3f}" for c in COLLARS] + [""]
    return [*rows, total]


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


def encoder_speed(seconds: float, batch_sizes=(1, 32, 128), repeats: int = 3) -> None:
    """``--encoder_seconds``: the GE2E voice encoder on this CPU (was voice_encoder_speed.py):
    partials/s and real time of 1.6-s windows every 0.8 s of a noise recording per batch
    size, the front end timed apart (best of ``repeats``)."""
    from common import timed

    from agegender import voice_encoder as ve

    rate = ve.GE2E.sample_rate
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(
        np.float32)
    frames = ve.encoder_frames(wave, rate)  # [frames, n_mels]; imports, filters
    front_s = min(timed(lambda: ve.encoder_frames(wave, rate))[0] for _ in range(repeats))
    width, hop = (round(s * rate / ve.GE2E.hop_length) for s in (1.6, 0.8))
    windows = np.stack([frames[s: s + width] for s in range(0, len(frames) - width + 1, hop)])
    encoder, rows = ve.load_voice_encoder(), []
    for batch in batch_sizes:
        ve.embed_partials(windows[:batch], encoder=encoder, batch_size=batch)  # warm-up, trace
        best = min(timed(lambda batch=batch: ve.embed_partials(
            windows, encoder=encoder, batch_size=batch))[0] for _ in range(repeats))
        rows.append([batch, f"{len(windows) / best:.1f}", f"{best:.2f}",
                     f"{seconds / (best + front_s):.0f}x"])
    print(format_table(["batch", "partials/s", "network s", "x real time (front end + network)"],
                       rows, title=f"recording {seconds:.0f} s, {len(windows)} windows; front "
                       f"end {front_s * 1e3:.0f} ms ({seconds / front_s:.0f}x real time); "
                       f"{os.cpu_count()} CPUs"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="a manifest dataset's table, only read",
                        default=str(REPO.parent / "shared" / "cv-sample" / "manifest.csv"))
    parser.add_argument("--split", default="test", help="dev to choose settings, test to report")
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--min_minutes", type=float, default=3.0)
    parser.add_argument("--max_minutes", type=float, default=4.0)
    parser.add_argument("--backgrounds", default="clean,noise,music", type=lambda s: s.split(","),
                        help="cycled over the recordings: clean, noise (-15 dB), music (-12 dB)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="/tmp/timeline_bench")
    parser.add_argument("--gender_model", default=str(REPO / "models" / "pretrained" /
                                                      "gender.keras"),
                        help="default: the shipped gender model")
    parser.add_argument("--timeline_params", nargs="+", default=["{}"],
                        help="our TimelineParams as JSON, e.g. '{\"pad_s\": 0.2}'; several: "
                        "one row each (DER, missed, FA, gender error) instead of the tables")
    parser.add_argument("--old_repo", default="",
                        help="a checkout of older code: its timeline is the column 'old'")
    parser.add_argument("--ina_python", default="/tmp/ina-venv/bin/python",
                        help="python of a venv with inaSpeechSegmenter (bench/README.md)")
    parser.add_argument("--long_hours", type=float, default=0.0,
                        help="also time ours on one file this many hours long (in work_dir)")
    parser.add_argument("--encoder_seconds", type=float, default=0.0,
                        help="instead: the voice encoder's speed on this many seconds (60)")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("manifest", "gender_model"):
        if not args.run and not Path(getattr(args, flag)).is_file():
            parser.error(f"--{flag} {getattr(args, flag)}: no such file")
    return args


def run_systems(args, files: list[str]) -> tuple[dict, dict]:
    """Runs (or reuses the kept run of) each system: ({system: segments}, {system: (CPU s
    incl. loading, CPU s of the timeline alone, peak RSS MiB)}). One ``ours`` per
    ``--timeline_params`` (named by it when several); ``old`` and ``ina`` with one only."""
    files_json = Path(args.work_dir) / "files.json"
    files_json.write_text(json.dumps(files))
    me = [f"--files={files_json}", f"--gender_model={args.gender_model}", "--run"]
    several = len(args.timeline_params) > 1
    commands = {params if several else "ours": [sys.executable, __file__, *me,
                                                 f"--timeline_params={params}"]
                for params in args.timeline_params}
    if args.old_repo and not several:
        commands["old"] = [sys.executable, f"{args.old_repo}/bench/timeline_bench.py", *me[:2],
                           "--run=ours"]
    if Path(args.ina_python).is_file() and not several:
        commands["ina"] = [args.ina_python, "-c", INA_SCRIPT, json.dumps(files)]
    elif not several:
        print(f"ina column skipped: {args.ina_python} not found (bench/README.md says how "
              "to make it)", file=sys.stderr)
    cache = Path(args.work_dir) / "outputs"
    cache.mkdir(exist_ok=True)
    outputs, cpu = {}, {}
    for system, command in commands.items():
        # Runs are kept (outputs/<sha of command>.json, keyed by model and code) and reused.
        code = [sha256_file(m) for m in sorted((REPO / "src/agegender").rglob("*.py"))]
        key = json.dumps([command, sha256_file(args.gender_model), system in ("old", "ina") or
                          code])
        saved = cache / f"{hashlib.sha256(json.dumps(command).encode()).hexdigest()[:12]}.json"
        if saved.is_file() and json.loads(saved.read_text())["key"] == key:
            stored = json.loads(saved.read_text())
        else:
            env = {**os.environ, **CHILD_ENV, "CUDA_VISIBLE_DEVICES": ""}
            result, used, rss = run_child(command, env)
            stored = {"key": key, "result": result, "cpu": used, "rss": rss}
            saved.write_text(json.dumps(stored))
        result = stored["result"] or {}
        outputs[system] = ina_segments(result["segments"]) if system == "ina" else {
            "gender": {f: [[*r, r[0]][:4] for r in rows if r[0] != NO_SPEECH]  # old: gender
                       for f, rows in result["gender"].items()}}                  # as speaker
        cpu[system] = (stored["cpu"], result.get("cpu_s", stored["cpu"]), stored["rss"])
    return outputs, cpu


def settings_rows(recordings, outputs: dict) -> list:
    """One row per ``--timeline_params``: pooled DER at each collar, missed %, FA %, gender
    error %, mean speakers found minus true."""
    rows = []
    for params, segments in outputs.items():
        one = {"ours": segments}
        found = [len({r[3] for r in segments["gender"][rec["wav"]]}) - rec["speakers"]
                 for rec in recordings]
        rows.append([params, *diarization(recordings, one)[-1][4:7],
                     *evaluate(recordings, one, "gender", ["male", "female"], "gender")[-1][3:],
                     f"{np.mean(found):+.1f}"])
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run or args.encoder_seconds:
        child(args) if args.run else encoder_speed(args.encoder_seconds)
        return 0
    recordings = build(args)
    files = [r["wav"] for r in recordings]
    audio_s = sum(__import__("soundfile").info(f).duration for f in files)
    outputs, cpu = run_systems(args, files)
    print(f"{len(files)} recordings ({audio_s / 60:.1f} min, 2-6 speakers) built from "
          f"{args.manifest} split {args.split}, seed {args.seed}; model {args.gender_model}")
    if len(args.timeline_params) > 1:
        print(format_table(["timeline params", *(f"DER collar {c}" for c in COLLARS),
                            "missed %", "FA %", "gender err %", "speakers found - true"],
                           settings_rows(recordings, outputs)))
        return 0
    names = ["male", "female"]
    print(format_table(["recording", "min", "background",
                        *(f"{s} {m}" for s in outputs for m in ("missed %", "FA %",
                                                                "gender err %"))],
                       evaluate(recordings, outputs, "gender", names, "gender")))
    print("Gender error on the speech time every system labels (the same seconds for all)")
    print(format_table(["recording", "common speech min", "% of speech",
                        *(f"{name} gender err %" for name in outputs)],
                       common_ground(recordings, outputs, "gender", names, "gender")))
    print("DER (pyannote.metrics; collar = its whole width around each reference boundary)")
    print(format_table(["recording", "min", "speakers", "background",
                        *(f"{n} {c}" for n in outputs for c in (*COLLARS, "found"))],
                       diarization(recordings, outputs)))
    print(format_table(["system", "x real time (process CPU, load incl.)",
                        "x real time (timeline CPU only)", "peak RSS MiB"],
                       [[s, f"{audio_s / a:.0f}", f"{audio_s / b:.0f}", f"{r:.0f}"]
                        for s, (a, b, r) in cpu.items()]))
    print(f"goal: ours >= 50x real time per CPU second, loading included: "
          f"{audio_s / cpu['ours'][0]:.0f}x, {met(audio_s / cpu['ours'][0] >= 50)}")
    if args.long_hours:
        path = Path(args.work_dir) / "long.wav"
        seconds = long_file(recordings, args.long_hours, path)
        Path(f"{path}.json").write_text(json.dumps([str(path)]))
        result, used, rss = run_child([sys.executable, __file__, f"--files={path}.json",
                                       f"--gender_model={args.gender_model}", "--run",
                                       f"--timeline_params={args.timeline_params[0]}"],
                                      {**os.environ, **CHILD_ENV})
        print(f"long file: {seconds / 3600:.2f} h, {seconds / used:.0f}x real time "
              f"(process CPU), peak RSS {rss:.0f} MiB, "
              f"{len(result['gender'][str(path)]) if result else 0} segments")
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())

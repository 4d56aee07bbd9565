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
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, format_table, met

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
    """Writes the recordings, their truth (CSV: start, end, gender, speaker per voiced
    stretch) and reference RTTM; returns one dict per recording.

    Recording ``n`` has ``2 + n % 5`` speakers, drawn from the split's speakers with at least
    3 clips (weight: the square root of their clip count); turns of 1-2 clips (0.1-0.4 s
    apart) go to a speaker other than the last, weighted by their clips left, 0.2-1.5 s
    apart, until ``minutes`` or the speakers' clips run out (no clip twice in a recording).
    """
    import pandas as pd
    import soundfile as sf

    from agegender.config import FeatureParams
    from agegender.errors import AudioError
    from agegender.features import load_clip

    table = pd.read_csv(args.manifest, dtype=str, keep_default_na=False)
    table = table[table["split"] == args.split].reset_index(drop=True)
    clips = {who: rows for who, rows in table.groupby("speaker_id") if len(rows) >= 3}
    if len(clips) < 6:
        sys.exit(f"{args.manifest}: split {args.split} has {len(clips)} speakers with 3+ "
                 "clips; need 6")
    root = Path(args.manifest).resolve().parent
    out = Path(args.work_dir) / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    names = sorted(clips)
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
        while cursor < minutes * 60:
            others = [w for w in chosen if w != last and left[w]]
            if not others:
                break
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
        mix = np.concatenate(pieces)
        speech_rms = float(np.sqrt(np.mean(np.concatenate(
            [mix[int(t["start"] * RATE):int(t["end"] * RATE)] for t in truth]) ** 2)))
        if background == "noise":
            mix = mix + speech_rms * 10 ** (-15 / 20) * pink_noise(mix.shape[0], rng)
        elif background == "music":
            mix = mix + speech_rms * 10 ** (-12 / 20) * chord_music(mix.shape[0], rng)
        mix = mix / max(1.0, float(np.abs(mix).max()) / 0.99)
        sf.write(rec["wav"], mix, RATE, subtype="PCM_16")
        pd.DataFrame(truth).to_csv(rec["truth"], index=False)
        Path(rec["rttm"]).write_text("".join(
            f"SPEAKER {stem.name} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} <NA> <NA> "
            f"{t['speaker']} <NA> <NA>\n" for t in truth))
        print(f"built {rec['wav']}: {cursor / 60:.1f} min, {len(chosen)} speakers, "
              f"{len(truth)} voiced stretches, {background}", file=sys.stderr)
    return recordings


def run_ours(files: list[str], model: str, params: dict) -> dict:
    """Child: our timeline per file → {file: [[gender, start, end, speaker]]} (speech only;
    the speaker is the gender where the timeline names no speakers)."""
    from agegender import AgeGenderDetector
    from agegender.timeline import NO_SPEECH, TimelineParams

    detector = AgeGenderDetector(model)
    out = {}
    for f in files:
        segments = detector.timeline(f, TimelineParams(**params))["segments"]
        out[f] = [[s.label, s.start, s.end, getattr(s, "speaker", None) or s.label]
                  for s in segments if s.label != NO_SPEECH]
    return out


def run_windows(files: list[str], model: str, params: dict, work_dir: str) -> dict:
    """Child: per file, the timeline's voiced frames, windows and their voice embeddings
    (made as the timeline makes them) → ``work_dir/<name>.windows.npz``; returns the paths."""
    from agegender import AgeGenderDetector, speech, timeline
    from agegender.model_inputs import waveforms_inputs

    features = AgeGenderDetector(model).model.features
    settings = timeline.TimelineParams(**params)
    window_s = settings.window_s or timeline.model_window_s(features)
    out = {}
    for path in files:
        voicing, duration = timeline.gate_pass(path, settings.block_s)
        voiced = speech.voiced_frames(voicing, reference_db=timeline.local_reference_db(
            voicing.rms_db))
        regions = timeline.speech_regions(voiced, settings, duration)
        windows = timeline.windows_in(regions, window_s, settings.hop_s or window_s, duration)
        kept, pieces = [], []
        for index, piece in timeline.window_audio(path, windows, features, settings.block_s):
            kept.append(index)
            pieces.append(piece)
        embeddings = waveforms_inputs(pieces, features, ("embedding",))["embedding"]
        tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        out[path] = str(Path(work_dir) / f"{Path(path).stem}.{tag}.windows.npz")
        np.savez(out[path], voiced=voiced, duration=duration, embeddings=embeddings,
                 windows=np.array(windows, float).reshape(-1, 2)[kept])
    return out


def child(args) -> None:
    """``--run SYSTEM``: runs one system and prints its segments as one JSON line."""
    files = json.loads(Path(args.files).read_text())
    params = json.loads(args.timeline_params)
    start = time.process_time()
    if args.run == "ours":
        result = {"gender": run_ours(files, args.gender_model, params)}
    else:
        result = {"windows": run_windows(files, args.gender_model, params, args.work_dir)}
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


def file_regions(npz: str, settings) -> tuple[np.lib.npyio.NpzFile, list]:
    """``run_windows``' file → (its arrays, its speech regions under ``settings``)."""
    from agegender import timeline

    data = np.load(npz)
    return data, timeline.speech_regions(data["voiced"], settings, float(data["duration"]))


def window_speakers(npz: str, settings, labels: np.ndarray) -> list:
    """``run_windows``' file + a speaker index per window → ``[None, start, end, speaker]``
    rows: each 0.1-s step of a speech region takes the speaker of the nearest window."""
    data, regions = file_regions(npz, settings)
    centres = data["windows"].mean(axis=1)  # [windows] s
    rows = []
    for begin, end in regions if centres.size else []:
        edges = np.arange(begin, end, 0.1)  # [steps] s
        near = labels[np.abs(edges[:, None] + 0.05 - centres).argmin(axis=1)]  # [steps]
        cuts = [0, *(np.flatnonzero(np.diff(near)) + 1), len(near)]
        rows += [[None, float(edges[a]), min(end, float(edges[b - 1]) + 0.1), f"S{near[a] + 1}"]
                 for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return rows


def sweep(args, recordings, windows: dict) -> None:
    """``--sweep``: speech-gate settings by missed speech and false alarm, then the speaker
    threshold by DER, on the timeline's own windows and voice embeddings (``run_windows``
    with ``--timeline_params``); one row with the true speaker count for reference."""
    from agegender import speakers, timeline

    base = json.loads(args.timeline_params)
    rows = []
    for pad, pause, shortest in ((p, q, s) for p in (0.1, 0.2, 0.3, 0.4)
                                 for q in (0.3, 0.5, 0.8) for s in (0.1, 0.3)):
        settings = timeline.TimelineParams(**{**base, "pad_s": pad, "min_pause_s": pause,
                                              "min_speech_s": shortest})
        pooled = None
        for rec in recordings:
            duration, truth = truth_grid(rec, ["male", "female"], "gender")
            said = grid_labels([["male", a, b] for a, b in file_regions(
                windows[rec["wav"]], settings)[1]], duration, ["male"])
            pooled = add(pooled, score(truth, said))
        rows.append([f"pad_s {pad} min_pause_s {pause} min_speech_s {shortest}",
                     *shares(pooled)[:2]])
    print(format_table(["gate setting", "missed %", "FA %"], rows))
    settings = timeline.TimelineParams(**base)
    rows = []
    for threshold in [*args.sweep, "true count"]:
        outputs = {"ours": {"gender": {}}}
        for rec in recordings:
            embeddings = np.load(windows[rec["wav"]])["embeddings"]
            labels = speakers.cluster_speakers(
                embeddings, **({"num_speakers": rec["speakers"]} if threshold == "true count"
                               else {"distance_threshold": threshold}))
            outputs["ours"]["gender"][rec["wav"]] = window_speakers(windows[rec["wav"]],
                                                                    settings, labels)
        found = [len({r[3] for r in outputs["ours"]["gender"][rec["wav"]]}) - rec["speakers"]
                 for rec in recordings]
        rows.append([threshold, *diarization(recordings, outputs)[-1][4:7],
                     f"{np.mean(found):+.1f}"])
    print(format_table(["speaker threshold", *(f"DER collar {c}" for c in COLLARS),
                        "speakers found - true, mean"], rows))


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
    parser.add_argument("--timeline_params", default="{}",
                        help='our TimelineParams as JSON, e.g. \'{"speaker_threshold": 0.4}\'')
    parser.add_argument("--old_repo", default="",
                        help="a checkout of older code: its timeline is the column 'old'")
    parser.add_argument("--ina_python", default="/tmp/ina-venv/bin/python",
                        help="python of a venv with inaSpeechSegmenter (bench/README.md)")
    parser.add_argument("--sweep", type=float, nargs="*", default=None,
                        help="instead: gate settings and these speaker thresholds by DER")
    parser.add_argument("--long_hours", type=float, default=0.0,
                        help="also time ours on one file this many hours long (in work_dir)")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("manifest", "gender_model"):
        if not args.run and not Path(getattr(args, flag)).is_file():
            parser.error(f"--{flag} {getattr(args, flag)}: no such file")
    return args


def run_systems(args, files: list[str]) -> tuple[dict, dict]:
    """Runs (or reuses the kept run of) each system: ({system: segments}, {system: (CPU s
    incl. loading, CPU s of the timeline alone, peak RSS MiB)})."""
    files_json = Path(args.work_dir) / "files.json"
    files_json.write_text(json.dumps(files))
    me = [f"--files={files_json}", f"--gender_model={args.gender_model}",
          f"--timeline_params={args.timeline_params}", f"--work_dir={args.work_dir}"]
    cache = Path(args.work_dir) / "outputs"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, **CHILD_ENV}
    run = "windows" if args.sweep is not None else "ours"
    commands = {run: [sys.executable, __file__, *me, f"--run={run}"]}
    if args.old_repo and args.sweep is None:
        commands["old"] = [sys.executable, f"{args.old_repo}/bench/timeline_bench.py", *me[:2],
                           "--run=ours"]
    if Path(args.ina_python).is_file() and args.sweep is None:
        commands["ina"] = [args.ina_python, "-c", INA_SCRIPT, json.dumps(files)]
    elif args.sweep is None:
        print(f"ina column skipped: {args.ina_python} not found (bench/README.md says how "
              "to make it)", file=sys.stderr)
    outputs, cpu = {}, {}
    for system, command in commands.items():
        # Each system's run is kept (``outputs/<system>.json``, keyed by its command, model
        # and files), so adding a system does not re-run the others.
        key = json.dumps([command, sha256_file(args.gender_model)])
        saved = cache / f"{system}.json"
        if saved.is_file() and json.loads(saved.read_text())["key"] == key:
            stored = json.loads(saved.read_text())
        else:
            result, used, rss = run_child(command, {**env, "CUDA_VISIBLE_DEVICES": ""})
            stored = {"key": key, "result": result, "cpu": used, "rss": rss}
            saved.write_text(json.dumps(stored))
        result = stored["result"] or {}
        outputs[system] = ina_segments(result["segments"]) if system == "ina" else {
            task: {f: [[*r, r[0]][:4] for r in rows] for f, rows in found.items()}
            if task == "gender" else found for task, found in result.items()
            if task in ("gender", "windows")}
        cpu[system] = (stored["cpu"], result.get("cpu_s", stored["cpu"]), stored["rss"])
    return outputs, cpu


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run:
        child(args)
        return 0
    recordings = build(args)
    files = [r["wav"] for r in recordings]
    audio_s = sum(__import__("soundfile").info(f).duration for f in files)
    outputs, cpu = run_systems(args, files)
    print(f"{len(files)} recordings ({audio_s / 60:.1f} min, 2-6 speakers) built from "
          f"{args.manifest} split {args.split}, seed {args.seed}; model {args.gender_model}, "
          f"timeline {args.timeline_params}")
    if args.sweep is not None:
        sweep(args, recordings, outputs["windows"]["windows"])
        return 0
    header = ["recording", "min", "background"]
    for system in outputs:
        header += [f"{system} missed %", f"{system} FA %", f"{system} gender err %"]
    names = ["male", "female"]
    print(format_table(header, evaluate(recordings, outputs, "gender", names, "gender")))
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
    if "ours" in cpu:
        print(f"goal: ours >= 50x real time per CPU second, loading included: "
              f"{audio_s / cpu['ours'][0]:.0f}x, {met(audio_s / cpu['ours'][0] >= 50)}")
    if args.long_hours:
        path = Path(args.work_dir) / "long.wav"
        seconds = long_file(recordings, args.long_hours, path)
        Path(f"{path}.json").write_text(json.dumps([str(path)]))
        result, used, rss = run_child([sys.executable, __file__, f"--files={path}.json",
                                       f"--gender_model={args.gender_model}", "--run=ours",
                                       f"--timeline_params={args.timeline_params}"],
                                      {**os.environ, **CHILD_ENV})
        print(f"long file: {seconds / 3600:.2f} h, {seconds / used:.0f}x real time "
              f"(process CPU), peak RSS {rss:.0f} MiB, "
              f"{len(result['gender'][str(path)]) if result else 0} segments")
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())

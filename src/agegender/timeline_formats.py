"""Timeline files: CSV, JSON, a per-speaker CSV, RTTM, Praat TextGrid and a PNG, and readers
for RTTM and TextGrid (to check what the writers wrote, and to read a benchmark's truth).

CSV and JSON rows: ``timeline.COLUMNS`` (start, end, speaker, gender, gender_probability,
age, age_probability), empty for no speech and for a task no model labels; the JSON also
holds the per-speaker rows (``timeline.SPEAKER_COLUMNS``), also written to
``<stem>_speakers.csv``. RTTM (NIST Rich Transcription Time Marked): one ``SPEAKER`` line per
speech segment, the speaker id (``S1``, ``S2``, ...) in the name field (``no speech``
stretches are absent, as RTTM lists speech only). TextGrid: Praat's long text format, one
interval tier per task (named after it) and a ``speaker`` tier, each covering the whole
recording; ``no speech`` intervals have that text. PNG: the waveform coloured by label, and
one lane per speaker below it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from agegender import atomic
from agegender.timeline import COLUMNS, NO_SPEECH, SPEAKER_COLUMNS, Segment

FORMATS: tuple[str, ...] = ("csv", "speakers", "json", "rttm", "TextGrid", "png")


def output_path(prefix: str | os.PathLike, fmt: str) -> str:
    """The file of one format: ``prefix.<fmt>``, or ``prefix_speakers.csv`` for the
    per-speaker table (``speakers``)."""
    return os.fspath(prefix) + ("_speakers.csv" if fmt == "speakers" else f".{fmt}")


def rttm_text(segments: list[Segment], file_id: str) -> str:
    """RTTM lines of the speech segments, the speaker id in the name field (the label for
    a segment without one); spaces in ``file_id`` and names become ``_``."""
    file_id = _no_spaces(file_id) or "audio"
    lines = [f"SPEAKER {file_id} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
             f"{_no_spaces(s.speaker or s.label)} <NA> <NA>"
             for s in segments if s.label != NO_SPEECH]
    return "".join(line + "\n" for line in lines)


def _no_spaces(text: str) -> str:
    return re.sub(r"\s+", "_", text)


def read_rttm(path: str | os.PathLike) -> list[tuple[str, float, float, str]]:
    """(file id, start, end, speaker) per ``SPEAKER`` line of an RTTM file."""
    rows = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            rows.append((fields[1], start, start + duration, fields[7]))
    return rows


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def textgrid_text(segments: list[Segment], duration: float, tier: str, *,
                  more_tiers: tuple[str, ...] = (), speaker_tier: bool = True) -> str:
    """Praat TextGrid (long text format): tier ``tier`` (the labels), one tier per entry of
    ``more_tiers`` (the labels of ``Segment.more``, in order) and, when ``speaker_tier``, a
    ``speaker`` tier; every tier has one interval per segment."""
    texts = [(tier, [s.label for s in segments])]
    for number, name in enumerate(more_tiers):
        texts.append((name, [s.more[number][0] if s.more else s.label for s in segments]))
    if speaker_tier:
        texts.append(("speaker", [s.speaker or NO_SPEECH for s in segments]))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0", f"xmax = {duration:.6f}", "tiers? <exists>", f"size = {len(texts)}",
             "item []:"]
    for item, (name, labels) in enumerate(texts, start=1):
        lines += [f"    item [{item}]:", '        class = "IntervalTier"',
                  f"        name = {_quoted(name)}", "        xmin = 0",
                  f"        xmax = {duration:.6f}", f"        intervals: size = {len(segments)}"]
        for number, (segment, label) in enumerate(zip(segments, labels, strict=True), start=1):
            lines += [f"        intervals [{number}]:", f"            xmin = {segment.start:.6f}",
                      f"            xmax = {segment.end:.6f}",
                      f"            text = {_quoted(label)}"]
    return "\n".join(lines) + "\n"


def read_textgrid(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """{tier name: [(xmin, xmax, text)]} of a long-format TextGrid's interval tiers."""
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    current, interval = None, {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        key, _, value = line.partition(" = ")
        if key == "name":
            current = tiers.setdefault(value.strip()[1:-1].replace('""', '"'), [])
        elif current is not None and key in ("xmin", "xmax") and raw.startswith(" " * 12):
            interval[key] = float(value)
        elif current is not None and key == "text":
            current.append((interval["xmin"], interval["xmax"],
                            value.strip()[1:-1].replace('""', '"')))
            interval = {}
    return tiers


def segment_rows(result: dict) -> list[dict]:
    """One dict per segment: file, then ``COLUMNS``."""
    return [{"file": result["file"], **s.as_dict()} for s in result["segments"]]


def timeline_json(result: dict, *, task: str, model: dict | None = None) -> dict:
    """The JSON of one timeline: file, duration, task, voiced, model, speakers (rows of
    ``SPEAKER_COLUMNS``) and segments (rows of ``COLUMNS``)."""
    return {"file": result["file"], "duration": round(result["duration"], 3), "task": task,
            "voiced": result["voiced"], "model": model,
            "speakers": result.get("speakers", []),
            "segments": [s.as_dict() for s in result["segments"]]}


def write_timeline(result: dict, prefix: str | os.PathLike, *, task: str,
                   formats: tuple[str, ...] = FORMATS, model: dict | None = None,
                   more_tasks: tuple[str, ...] = ()) -> list[str]:
    """Writes ``prefix.csv``/``_speakers.csv``/``.json``/``.rttm``/``.TextGrid``/``.png``
    (those in ``formats``; see ``output_path``).

    Args:
        result: ``timeline.timeline``'s result.
        prefix: path without suffix; missing folders are created.
        task: the first model's task: names its TextGrid tier.
        formats: which files.
        model: ``checkpoints.model_identity``, stored in the JSON.
        more_tasks: the tasks of the further models (``Segment.more``): their tiers.

    Returns:
        The written paths.
    """
    import pandas as pd  # noqa: PLC0415

    written = []
    for fmt in formats:
        path = output_path(prefix, fmt)
        if fmt == "csv":
            rows = [s.as_dict() for s in result["segments"]]
            atomic.write_text(path, pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(
                index=False))
        elif fmt == "speakers":
            atomic.write_text(path, pd.DataFrame(result.get("speakers", []),
                                                 columns=list(SPEAKER_COLUMNS)).to_csv(
                index=False))
        elif fmt == "json":
            atomic.write_text(path, json.dumps(timeline_json(result, task=task, model=model),
                                               indent=2))
        elif fmt == "rttm":
            atomic.write_text(path, rttm_text(result["segments"], Path(result["file"]).stem))
        elif fmt == "TextGrid":
            atomic.write_text(path, textgrid_text(result["segments"], result["duration"], task,
                                                  more_tiers=tuple(more_tasks)))
        elif fmt == "png":
            timeline_figure(result, path)
        else:
            continue
        written.append(path)
    return written


def timeline_figure(result: dict, path: str, *, max_points: int = 20_000) -> None:
    """The waveform's envelope (streamed, at most ``max_points`` columns) with each segment
    drawn as a coloured band, one colour per label, grey for ``no speech``; below it one
    lane per speaker, its turns in the colour of their label."""
    import io  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    duration = max(result["duration"], 1e-3)
    times, envelope = _envelope(result["file"], duration, max_points)
    segments = result["segments"]
    labels = sorted({s.label for s in segments if s.label != NO_SPEECH})
    colours = dict(zip(labels, plt.get_cmap("tab10").colors, strict=False))
    grey = (0.85, 0.85, 0.85)
    speakers = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
    figure, (axis, lanes) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 2.6 + 0.35 * max(1, len(speakers))),
        gridspec_kw={"height_ratios": [2.2, 0.35 * max(1, len(speakers))]})
    for segment in segments:
        axis.axvspan(segment.start, segment.end, color=colours.get(segment.label, grey),
                     alpha=0.35, lw=0)
    axis.fill_between(times, -envelope, envelope, color="black", lw=0)
    for segment in segments:
        if segment.speaker:
            lane = speakers.index(segment.speaker)
            lanes.broken_barh([(segment.start, segment.end - segment.start)], (lane - 0.4, 0.8),
                              color=colours.get(segment.label, grey))
    lanes.set_yticks(range(len(speakers)), speakers)
    lanes.set_ylim(len(speakers) - 0.5 if speakers else 0.5, -0.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[name], alpha=0.35) for name in labels]
    handles.append(plt.Rectangle((0, 0), 1, 1, color=grey, alpha=0.35))
    # Above the plot, not on it: inside, the legend hid the last ~20 s of the recording.
    axis.legend(handles, [*labels, NO_SPEECH], loc="lower right", bbox_to_anchor=(1.0, 1.0),
                ncol=len(handles), fontsize=8, frameon=False)
    axis.set_xlim(0, duration)
    axis.set_yticks([])
    axis.set_title(Path(result["file"]).name, loc="left")
    lanes.set_xlabel("time (s)")
    lanes.set_ylabel("speaker")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic.write_bytes(path, buffer.getvalue())


def _envelope(file: str, duration: float, max_points: int):
    """(times [points] s, peak |sample| [points]) of a file, streamed at the gate's rate."""
    import numpy as np  # noqa: PLC0415

    from agegender.speech import GATE_RATE  # noqa: PLC0415
    from agegender.timeline_audio import audio_blocks  # noqa: PLC0415

    per_point = max(1, int(duration * GATE_RATE / max_points))
    peaks, carry = [], np.zeros(0, np.float32)
    for (block,) in audio_blocks(file, (GATE_RATE,), 60.0):
        joined = np.concatenate([carry, block])
        whole = joined.shape[0] // per_point * per_point
        peaks.append(np.abs(joined[:whole]).reshape(-1, per_point).max(axis=1))
        carry = joined[whole:]
    envelope = np.concatenate(peaks) if peaks else np.zeros(1)
    return np.arange(envelope.shape[0]) * per_point / GATE_RATE, envelope

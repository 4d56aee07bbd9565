"""Timeline files: CSV, JSON, RTTM, Praat TextGrid and a PNG, and readers for RTTM and
TextGrid (to check what the writers wrote, and to read a benchmark's truth).

RTTM (NIST Rich Transcription Time Marked): one ``SPEAKER`` line per speech segment, the
label in the speaker field (``no speech`` stretches are absent, as RTTM lists speech only).
TextGrid: Praat's long text format, one interval tier named after the task, covering the
whole recording; ``no speech`` intervals have that text.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from agegender import atomic
from agegender.timeline import NO_SPEECH, Segment

FORMATS: tuple[str, ...] = ("csv", "json", "rttm", "TextGrid", "png")


def rttm_text(segments: list[Segment], file_id: str) -> str:
    """RTTM lines of the speech segments; spaces in ``file_id`` and labels become ``_``."""
    file_id = _no_spaces(file_id) or "audio"
    lines = [f"SPEAKER {file_id} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
             f"{_no_spaces(s.label)} <NA> <NA>" for s in segments if s.label != NO_SPEECH]
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


def textgrid_text(segments: list[Segment], duration: float, tier: str) -> str:
    """Praat TextGrid (long text format) with one interval tier ``tier``."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0", f"xmax = {duration:.6f}", "tiers? <exists>", "size = 1", "item []:",
             "    item [1]:", '        class = "IntervalTier"', f"        name = {_quoted(tier)}",
             "        xmin = 0", f"        xmax = {duration:.6f}",
             f"        intervals: size = {len(segments)}"]
    for number, segment in enumerate(segments, start=1):
        lines += [f"        intervals [{number}]:", f"            xmin = {segment.start:.6f}",
                  f"            xmax = {segment.end:.6f}",
                  f"            text = {_quoted(segment.label)}"]
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
    """One dict per segment: file, start, end, label, probability."""
    return [{"file": result["file"], **s.as_dict()} for s in result["segments"]]


def write_timeline(result: dict, prefix: str | os.PathLike, *, task: str,
                   formats: tuple[str, ...] = FORMATS, model: dict | None = None) -> list[str]:
    """Writes ``prefix.csv``/``.json``/``.rttm``/``.TextGrid``/``.png`` (those in ``formats``).

    Args:
        result: ``timeline.timeline``'s result.
        prefix: path without suffix; missing folders are created.
        task: names the TextGrid tier.
        formats: which files.
        model: ``checkpoints.model_identity``, stored in the JSON.

    Returns:
        The written paths.
    """
    import pandas as pd  # noqa: PLC0415

    prefix = os.fspath(prefix)
    written = []
    if "csv" in formats:
        frame = pd.DataFrame(segment_rows(result),
                             columns=["file", "start", "end", "label", "probability"])
        atomic.write_text(prefix + ".csv", frame.to_csv(index=False, float_format="%.3f"))
        written.append(prefix + ".csv")
    if "json" in formats:
        payload = {"file": result["file"], "duration": result["duration"], "task": task,
                   "voiced": result["voiced"], "model": model,
                   "segments": [s.as_dict() for s in result["segments"]]}
        atomic.write_text(prefix + ".json", json.dumps(payload, indent=2))
        written.append(prefix + ".json")
    if "rttm" in formats:
        atomic.write_text(prefix + ".rttm", rttm_text(result["segments"],
                                                      Path(result["file"]).stem))
        written.append(prefix + ".rttm")
    if "TextGrid" in formats:
        atomic.write_text(prefix + ".TextGrid",
                          textgrid_text(result["segments"], result["duration"], task))
        written.append(prefix + ".TextGrid")
    if "png" in formats:
        timeline_figure(result, prefix + ".png")
        written.append(prefix + ".png")
    return written


def timeline_figure(result: dict, path: str, *, max_points: int = 20_000) -> None:
    """The waveform's envelope (streamed, at most ``max_points`` columns) with each segment
    drawn as a coloured band, one colour per label, grey for ``no speech``."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from agegender.speech import GATE_RATE  # noqa: PLC0415
    from agegender.timeline import audio_blocks  # noqa: PLC0415

    duration = max(result["duration"], 1e-3)
    per_point = max(1, int(duration * GATE_RATE / max_points))
    peaks, carry = [], np.zeros(0, np.float32)
    for (block,) in audio_blocks(result["file"], (GATE_RATE,), 60.0):
        joined = np.concatenate([carry, block])
        whole = joined.shape[0] // per_point * per_point
        peaks.append(np.abs(joined[:whole]).reshape(-1, per_point).max(axis=1))
        carry = joined[whole:]
    envelope = np.concatenate(peaks) if peaks else np.zeros(1)
    times = np.arange(envelope.shape[0]) * per_point / GATE_RATE
    labels = sorted({s.label for s in result["segments"] if s.label != NO_SPEECH})
    colours = dict(zip(labels, plt.get_cmap("tab10").colors, strict=False))
    figure, axis = plt.subplots(figsize=(12, 3))
    for segment in result["segments"]:
        colour = colours.get(segment.label, (0.85, 0.85, 0.85))
        axis.axvspan(segment.start, segment.end, color=colour, alpha=0.35, lw=0)
    axis.fill_between(times, -envelope, envelope, color="black", lw=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[name], alpha=0.35) for name in labels]
    handles.append(plt.Rectangle((0, 0), 1, 1, color=(0.85, 0.85, 0.85), alpha=0.35))
    # Above the plot, not on it: inside, the legend hid the last ~20 s of the recording.
    axis.legend(handles, [*labels, NO_SPEECH], loc="lower right", bbox_to_anchor=(1.0, 1.0),
                ncol=len(handles), fontsize=8, frameon=False)
    axis.set_xlim(0, duration)
    axis.set_xlabel("time (s)")
    axis.set_yticks([])
    axis.set_title(Path(result["file"]).name)
    figure.tight_layout()
    import io  # noqa: PLC0415

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic.write_bytes(path, buffer.getvalue())

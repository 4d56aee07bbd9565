"""``inference.py --timeline``: a timeline per file, its files, and one summary line each."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from agegender.errors import AgeGenderError, OutputError


def run_timelines(detector, files: list[str], args, identity: dict) -> int:
    """Writes ``args.timeline_dir/<stem>.*`` per file; exit status 0 if any file was done."""
    from agegender.checkpoints import describe_model  # noqa: PLC0415
    from agegender.inference import input_problem  # noqa: PLC0415
    from agegender.timeline import NO_SPEECH, TimelineParams  # noqa: PLC0415
    from agegender.timeline_formats import write_timeline  # noqa: PLC0415

    params = TimelineParams(hop_s=args.hop_s)
    done, stems = 0, defaultdict(int)
    for file in files:
        problem = input_problem(file)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            continue
        try:
            result = detector.timeline(file, params)
        except AgeGenderError as err:
            print(f"error: {err}", file=sys.stderr)
            continue
        stem = Path(file).stem
        stems[stem] += 1
        prefix = Path(args.timeline_dir) / (stem if stems[stem] == 1 else f"{stem}-{stems[stem]}")
        try:
            write_timeline(result, prefix, task=detector.task, model=identity)
        except OSError as err:
            raise OutputError(f"--timeline_dir={args.timeline_dir}: cannot be written "
                              f"({err.strerror or err})") from err
        seconds = defaultdict(float)
        for segment in result["segments"]:
            seconds[segment.label] += segment.end - segment.start
        spoken = {k: v for k, v in seconds.items() if k != NO_SPEECH}
        shares = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(spoken.items()))
        print(f"{file}: {result['duration']:.1f} s, {len(result['segments'])} segments"
              + (f": {shares}" if shares else ": no speech")
              + f" -> {prefix}.{{csv,json,rttm,TextGrid,png}}")
        done += 1
    print(f"{done} of {len(files)} files put on a timeline ({detector.task}) by "
          f"{describe_model(identity, short=True)}")
    return 0 if done else 1

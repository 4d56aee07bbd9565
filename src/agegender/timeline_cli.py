"""``inference.py --timeline``: a timeline per file, its files, and one summary line each.

The run never replaces a file it did not write: every output name is planned before the
first file is read, each name once per run (``a/x.wav``, ``b/x.wav`` and ``c/x-2.wav`` give
``x``, ``x-2`` and ``x-2-2``), and an existing file under a planned name stops the run in
one line unless ``--overwrite`` is given. The folder is locked (``flock`` on the folder
itself: no lock file) while the run writes it, and
``.tmp-`` leftovers of a killed run's timeline files are removed first.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from agegender.errors import AgeGenderError, OutputError, ParameterError


def planned_prefixes(files: list[str], folder: str | os.PathLike) -> list[Path]:
    """One output prefix (``folder/<name>``) per file, no two alike: a file's stem, or
    ``<stem>-2``, ``<stem>-3``, ... when a name made before took it. A prefix also owns
    ``<name>_speakers`` (its per-speaker table), so ``x.wav`` and ``x_speakers.wav`` never
    write the same file. Names are compared case-blind (macOS and Windows file systems are)."""
    made: set[str] = set()
    prefixes = []
    for file in files:
        stem = Path(file).stem or "audio"
        name, count = stem, 1
        while {name.casefold(), f"{name}_speakers".casefold()} & made:
            count += 1
            name = f"{stem}-{count}"
        made |= {name.casefold(), f"{name}_speakers".casefold()}
        prefixes.append(Path(folder) / name)
    return prefixes


def existing_outputs(prefixes: list[Path], formats: tuple[str, ...]) -> list[Path]:
    """The files among each prefix's outputs (``timeline_formats.output_path``) that exist
    already (or are links)."""
    from agegender.timeline_formats import output_path  # noqa: PLC0415

    return [Path(path) for prefix in prefixes for fmt in formats
            if os.path.lexists(path := output_path(prefix, fmt))]


def check_timeline_output(path: str | None) -> None:
    """``--output`` beside ``--timeline``: a .csv or .json for every file's segments."""
    if path and not path.endswith((".csv", ".json")):
        raise ParameterError(f"--output={path}: expected a .csv or .json file name")


def write_segments(path: str, results: list[dict], identity: dict, task: str) -> None:
    """``--output`` of a timeline run: every file's segments in one CSV (file, then
    ``timeline.COLUMNS``) or JSON (one object per file, as each ``<name>.json``), the model
    named in ``PATH.model.json``."""
    import pandas as pd  # noqa: PLC0415

    from agegender import atomic  # noqa: PLC0415
    from agegender.reports import model_sidecar  # noqa: PLC0415
    from agegender.timeline import COLUMNS  # noqa: PLC0415
    from agegender.timeline_formats import segment_rows, timeline_json  # noqa: PLC0415

    atomic.write_text(model_sidecar(path), json.dumps(identity, indent=2))
    if path.endswith(".json"):
        atomic.write_text(path, json.dumps(
            [{k: v for k, v in timeline_json(r, task=task).items() if k != "model"}
             for r in results], indent=2))
        return
    rows = [row for result in results for row in segment_rows(result)]
    atomic.write_text(path, pd.DataFrame(rows, columns=["file", *COLUMNS]).to_csv(index=False))


def timeline_params(args):
    """``TimelineParams`` of the CLI's flags; a bad value → ParameterError naming the flag.

    Raises:
        ParameterError: ``--hop_s``, ``--num_speakers``, ``--speaker_threshold`` or
            ``--gender_weight`` out of range (one line, ``--name=value ...``).
    """
    from agegender.timeline import TimelineParams  # noqa: PLC0415

    values = {"hop_s": args.hop_s}
    for name in ("speaker_threshold", "gender_weight"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    values["num_speakers"] = getattr(args, "num_speakers", None)
    try:
        return TimelineParams(**values)
    except ParameterError as err:
        raise ParameterError(f"--{err}") from err


def shipped_companions(args, detector) -> tuple:
    """Without ``--model_path``, the timeline uses every shipped model: the detectors of the
    shipped models of the other tasks (an age model beside the gender one, when one ships),
    or none, said in one line."""
    from agegender import AgeGenderDetector  # noqa: PLC0415
    from agegender.errors import ModelError  # noqa: PLC0415
    from agegender.shipped import pretrained_path  # noqa: PLC0415

    if args.model_path is not None or detector.task != "gender":
        return ()
    try:
        pretrained_path("age")
    except ModelError:
        print("no age model ships (models/pretrained/README.md): the age columns stay empty")
        return ()
    return (AgeGenderDetector(None, "age", batch_size=args.batch_size,
                              precision=args.precision, verify=not args.no_verify,
                              min_voiced=args.min_voiced),)


def run_timelines(detector, files: list[str], args, identity: dict, *,
                  more: tuple = ()) -> int:
    """Writes ``args.timeline_dir/<name>.*`` per file (and ``args.output``); exit status 0
    if any file was done. ``more``: detectors of further tasks (age beside gender).

    Raises:
        OutputError: a planned file exists (without ``args.overwrite``), another run holds
            the folder, or it cannot be written.
    """
    # Long because: a 7-line docstring; the per-file loop (write, report, errors) is 55 lines.
    from agegender.checkpoints import describe_model  # noqa: PLC0415
    from agegender.inference import input_problem  # noqa: PLC0415
    from agegender.timeline_formats import FORMATS, write_timeline  # noqa: PLC0415

    params = timeline_params(args)
    output = getattr(args, "output", None)
    check_timeline_output(output)
    prefixes = planned_prefixes(files, args.timeline_dir)
    if not getattr(args, "overwrite", False):
        taken = existing_outputs(prefixes, FORMATS)
        if taken:
            raise OutputError(
                f"{taken[0]}: exists and this run did not write it"
                + (f" ({len(taken) - 1} more planned files exist)" if len(taken) > 1 else "")
                + "; pass --overwrite to replace them, or choose another --timeline_dir")
    with folder_lock(args.timeline_dir):
        # Leftovers of a killed run's timeline files (and only those: it may be your folder).
        _remove_timeline_leftovers(args.timeline_dir, FORMATS)
        done, results = 0, []
        for file, prefix in zip(files, prefixes, strict=True):
            problem = input_problem(file)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                continue
            try:
                result = detector.timeline(file, params, more=more)
            except AgeGenderError as err:
                print(f"error: {err}", file=sys.stderr)
                continue
            try:
                write_timeline(result, prefix, task=detector.task, model=identity,
                               more_tasks=tuple(d.task for d in more))
            except OSError as err:
                raise OutputError(f"--timeline_dir={args.timeline_dir}: cannot be written "
                                  f"({err.strerror or err})") from err
            results.append(result)
            print(f"{file}: {summary(result)} -> {prefix}.{{csv,json,rttm,TextGrid,png}}, "
                  f"{prefix.name}_speakers.csv")
            done += 1
    if output:
        try:
            write_segments(output, results, identity, detector.task)
        except OSError as err:
            raise OutputError(f"--output={output}: cannot be written "
                              f"({err.strerror or err})") from err
        print(f"segments of {done} file(s) written to {output}")
    print(f"{done} of {len(files)} files put on a timeline ({detector.task}) by "
          f"{describe_model(identity, short=True)}")
    return 0 if done else 1


def summary(result: dict) -> str:
    """``15.0 s, 7 segments, 2 speakers: S1 male 6.1 s, S2 female 4.0 s`` (the CLI's line
    per file)."""
    from agegender.timeline import NO_SPEECH  # noqa: PLC0415

    speakers = result.get("speakers", [])
    if speakers:
        said = ", ".join(f"{row['speaker']} {row['gender'] or row['age'] or ''} "
                         f"{row['speech_s']:.1f} s".replace("  ", " ") for row in speakers)
    else:
        seconds = defaultdict(float)
        for segment in result["segments"]:
            if segment.label != NO_SPEECH:
                seconds[segment.label] += segment.end - segment.start
        said = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(seconds.items()))
    return (f"{result['duration']:.1f} s, {len(result['segments'])} segments, "
            f"{len(speakers)} speaker(s)" + (f": {said}" if said else ": no speech"))


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``folder`` itself (created if missing) for the block:
    no lock file is left in what may be the user's own folder; the lock goes with the
    process, even after ``kill -9``.

    Raises:
        OutputError: another process holds it, or the folder cannot be made or opened.
    """
    import fcntl  # noqa: PLC0415

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise OutputError(f"--timeline_dir={folder}: cannot be made or opened "
                          f"({err.strerror or err})") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise OutputError(f"--timeline_dir={folder}: another timeline run is writing "
                              "this folder; wait for it to finish, or give this run another "
                              "--timeline_dir") from err
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_timeline_leftovers(folder: str | os.PathLike, formats: tuple[str, ...]) -> int:
    """Removes ``.tmp-`` files of interrupted timeline writes (targets ending in one of
    ``formats``) from ``folder``; returns how many."""
    from agegender import atomic  # noqa: PLC0415

    if not Path(folder).is_dir():
        return 0
    removed = 0
    for path, target in list(atomic.leftovers(folder)):
        if target.endswith(tuple(f".{fmt}" for fmt in formats)) and not path.is_dir():
            path.unlink(missing_ok=True)
            removed += 1
    return removed

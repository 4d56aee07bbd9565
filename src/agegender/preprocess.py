"""The three preprocessing stages: clean → spectrograms → tfrecords.

Outputs, all under the dataset folder (or ``--output_dir``) except the reports:

* ``Manifest/cv-valid-{split}.csv``: the clean clip table (the clean layout, as a manifest;
  the user's audio is never moved, deleted or rewritten).
* ``Spectrograms/cv-valid-{split}/<key>.png`` (``--inputs`` with ``spectrogram``),
  ``<key>.pitch.f32`` (the voice statistics, with ``pitch``) and ``<key>.embedding.f32`` (the
  speaker embedding, with ``embedding``), and ``Spectrograms/features.json``; with
  ``--augment_copies N`` also ``<key>~copy1.*`` … ``<key>~copyN.*`` for training clips.
* ``TFRecord/cv-valid-{split}/spec_data_{i:03d}.tfrecord`` + ``shards.json``.
* ``RESULTS/<dataset folder name>/dataset_summary.csv`` + ``.png`` and
  ``RESULTS/<dataset folder name>/preprocess_report.csv`` (``report_dir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from agegender import atomic, commonvoice, figures, labels, layouts, leakage, provenance, runlock
from agegender.channel import waveform_copy
from agegender.config import SPLITS, CopyParams, FeatureParams, PreprocessParams, split_dirname
from agegender.errors import AudioError, ParameterError
from agegender.commonvoice import manifest_path, read_clean_manifest
from agegender.features import load_speech, png_bytes, spectrogram_image, waveform_pitch
from agegender.tfrecords import Example, write_shards
from agegender.voice_stats import STAT_NAMES
from agegender.workers import imap_unordered

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("clean", "spectrograms", "tfrecords")
ENCODER_RATE_HZ = 16_000  # voice_encoder.GE2E.sample_rate (no Keras import to read it here)
REPORT_COLUMNS = ("stage", "split", "key", "path", "reason")


def report_dir(results_dir: str | os.PathLike, dataset_dir: str | os.PathLike) -> Path:
    """``RESULTS/<name of the dataset folder>/``: where one dataset's preprocessing reports go,
    so preprocessing a second dataset leaves the first one's reports alone.

    Example:
        >>> report_dir("results", "data/CommonVoice/").as_posix()
        'results/CommonVoice'
    """
    return Path(results_dir) / Path(os.path.abspath(dataset_dir)).name


_NAME_MAX = 240  # bytes: the longest name and its atomic temporary sibling fit 255
_SUFFIXES = {"spectrogram": ".png", "pitch": ".pitch.f32", "embedding": ".embedding.f32"}


def clip_file(dataset_dir: str | os.PathLike, split: str, key: str, kind: str) -> Path:
    """Where preprocessing keeps one input ``kind`` of a clip:
    ``DIR/Spectrograms/cv-valid-{split}/<key>`` + ``.png`` (spectrogram), ``.pitch.f32``
    (voice statistics) or ``.embedding.f32`` (speaker embedding), the last two raw
    little-endian float32. A key too long for a file name (over 222 UTF-8 bytes) is cut and
    given 8 hex digits of its SHA-1, stably."""
    longest = max(len(suffix) for suffix in _SUFFIXES.values())
    stem = key
    if len(key.encode("utf-8")) + longest > _NAME_MAX:
        tag = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        cut = key.encode("utf-8")[:_NAME_MAX - longest - 9].decode("utf-8", errors="ignore")
        stem = f"{cut}-{tag}"
    return Path(dataset_dir) / "Spectrograms" / split_dirname(split) / (stem + _SUFFIXES[kind])


def png_path(dataset_dir: str | os.PathLike, split: str, key: str) -> Path:
    """``DIR/Spectrograms/cv-valid-{split}/<key>.png`` (``clip_file``'s spectrogram)."""
    return clip_file(dataset_dir, split, key, "spectrogram")


def read_values(path: str | os.PathLike) -> np.ndarray:
    """A ``.f32`` input file (``clip_file``) → float32 [values]."""
    return np.fromfile(path, dtype="<f4")


@dataclasses.dataclass(frozen=True)
class CleanResult:
    """What the clean stage (``run_clean``) made and noticed.

    Kept beside the tables, not in ``DataFrame.attrs``, which pandas drops on ``concat``
    and some merges.

    Attributes:
        kept: clean clips (``commonvoice.clean_clips``), one row per usable clip.
        dropped: the rows cleaning dropped, with a ``reason`` column.
        leakage: the split check's record (``leakage.check_splits``): ``overlapping``
            lines name speakers in two splits that were allowed.
        missing_tables: one line per split table not found (``layouts.ClipTable``).
        layout_warnings: lines from writing the clean ``Audio/`` layout (raw runs).
        label_warnings: one line per label column with unrecognised values.
        label_notes: such lines the demo corpus causes on purpose (its ``other`` labels,
            ``provenance.DEMO_LABEL_VALUES``): notes, not warnings, on the demo corpus.
    """

    kept: pd.DataFrame
    dropped: pd.DataFrame
    leakage: dict
    missing_tables: tuple[str, ...] = ()
    layout_warnings: tuple[str, ...] = ()
    label_warnings: tuple[str, ...] = ()
    label_notes: tuple[str, ...] = ()


def run_clean(dataset_dir: str | os.PathLike, params: PreprocessParams,
              results_dir: str | os.PathLike, *,
              output_dir: str | os.PathLike | None = None) -> CleanResult:
    """Stage 1: reads the layout, drops what is unusable, writes manifests and the summary.

    Args:
        output_dir: where ``Manifest/`` (and a raw run's ``Audio/`` links) go; None: in
            ``dataset_dir``. Elsewhere, the manifests name the audio by absolute path, so
            the stages and scripts that read ``output_dir`` still find it.

    Returns:
        ``CleanResult``: the kept and dropped clip tables (``commonvoice.clean_clips``) and
        what cleaning noticed.
    """
    out = Path(output_dir) if output_dir is not None else Path(dataset_dir)
    read = layouts.read_clips(dataset_dir, params.dataset_type,
                              split_by_speaker=params.split_by_speaker, seed=params.seed,
                              follow_symlinks=params.follow_symlinks)
    clips = read.clips
    kept, dropped = commonvoice.clean_clips(clips)
    # Before anything is written: a refused split leaves the previous outputs as they were.
    split_leakage = leakage.check_splits(kept, dataset_dir,
                                         allow_speaker_overlap=params.allow_speaker_overlap)
    columns = ["key", "audio_path", "speaker_id", *commonvoice.CLEAN_COLUMNS]
    for split in SPLITS:
        table = kept.loc[kept["split"] == split, columns]
        if os.path.realpath(out) != os.path.realpath(dataset_dir):
            table = table.assign(audio_path=[os.path.abspath(Path(dataset_dir) / path)
                                             for path in table["audio_path"]])
        atomic.write_text(manifest_path(out, split), table.to_csv(index=False))
    leakage.write_record(out, split_leakage)
    provenance.write_source(out, dataset_dir)  # the model trained on it will name it
    if params.dataset_type == "raw":  # the original README's next step reads Audio/
        from agegender.clean_layout import write_clean_layout  # noqa: PLC0415

        layout_warnings = tuple(write_clean_layout(dataset_dir, kept, output_dir=out))
    else:
        layout_warnings = ()
    counts = commonvoice.group_counts(clips, kept)
    results = Path(results_dir)
    atomic.write_text(results / "dataset_summary.csv", counts.to_csv(index=False))
    figures.class_distribution(counts, results / "dataset_summary.png")
    log.info("clean: %d rows read, %d kept, %d dropped", len(clips), len(kept), len(dropped))
    for reason, number in _reason_counts(dropped).items():
        log.info("clean: dropped %d × %s", number, reason)
    for name, column in (("gender", "gender_code"), ("age", "age_code")):
        missing = int((kept[column] < 0).sum())
        if missing:
            log.info("clean: %d kept clips have no %s label (they serve the other task)",
                     missing, name)
    demo = provenance.is_demo_dataset(dataset_dir)
    label_warnings, label_notes = [], []
    for name, values in commonvoice.unrecognised_counts(clips).items():
        expected = demo and set(values.index) <= provenance.DEMO_LABEL_VALUES
        line = commonvoice.unrecognised_line(name, values)
        provenance.log_problem(log, line, expected_in_demo=expected, prefix="clean: ")
        (label_notes if expected else label_warnings).append(line)
    return CleanResult(kept, dropped, split_leakage, missing_tables=read.missing_tables,
                       layout_warnings=layout_warnings,
                       label_warnings=tuple(label_warnings), label_notes=tuple(label_notes))


def split_report(dataset_dir: str | os.PathLike,
                 counts: dict[str, dict]) -> tuple[list[str], list[str]]:
    """Logs a WARNING per split/task that is empty or tiny; on the demo corpus, those of
    the tasks it does not train (``provenance.DEMO_UNTRAINED_TASKS``) are notes instead.

    Args:
        dataset_dir: the dataset read (for the messages, and to tell the demo corpus).
        counts: ``{split: commonvoice.task_counts(...)}``.

    Returns:
        ``(warnings, notes)``: the lines.
    """
    # Speaker checks only make sense when the layout names speakers at all.
    has_speakers = any(count["speakers"] for per_task in counts.values()
                       for count in per_task.values())
    untrained = provenance.DEMO_UNTRAINED_TASKS if provenance.is_demo_dataset(dataset_dir) else ()
    lines, notes = [], []
    for split, per_task in counts.items():
        kept = {task: count for task, count in per_task.items() if task not in untrained}
        lines += commonvoice.split_warnings(split, kept, has_speakers=has_speakers)
        if any(count["examples"] for count in kept.values()):  # else "empty" said it all
            notes += commonvoice.split_warnings(
                split, {task: count for task, count in per_task.items() if task in untrained},
                has_speakers=has_speakers)
    for line in lines:
        log.warning("%s: %s", dataset_dir, line)
    for line in notes:
        provenance.log_problem(log, line, expected_in_demo=True, prefix=f"{dataset_dir}: ")
    return lines, notes


def _reason_counts(dropped: pd.DataFrame) -> dict[str, int]:
    # Group "age not one of the 6 groups: 'seventies'" and "...: ''" under one reason.
    return dropped["reason"].str.split(":").str[0].value_counts().to_dict()


COPY_MARK = "~copy"  # <key>~copy<k>: the k-th waveform copy of clip <key>


def copy_key(key: str, copy: int) -> str:
    """The key of copy ``copy`` of clip ``key`` (copy 0 is the clip itself)."""
    return f"{key}{COPY_MARK}{copy}" if copy else key


def with_copies(manifest: pd.DataFrame, copies: int) -> pd.DataFrame:
    """A split's manifest plus ``copies`` rows per clip for its waveform copies.

    Copy ``k`` of clip ``key`` gets the key ``key~copy<k>`` and keeps every other column
    (audio, speaker, labels); column ``copy`` is 0 for the clip itself, ``k`` for a copy.
    Each clip is followed by its copies.

    Args:
        manifest: rows with a ``key`` column (``read_clean_manifest``).
        copies: copies per clip, >= 0.

    Returns:
        A new table of ``len(manifest) * (copies + 1)`` rows, index 0..n-1.
    """
    table = manifest.assign(copy=0)
    if not copies or table.empty:
        return table.reset_index(drop=True)
    table = table.loc[table.index.repeat(copies + 1)].reset_index(drop=True)
    table["copy"] = np.tile(np.arange(copies + 1), len(manifest))
    table["key"] = [copy_key(key, copy) for key, copy in zip(table["key"], table["copy"],
                                                              strict=True)]
    return table


def copy_rng(seed: int, key: str, copy: int) -> np.random.Generator:
    """The random source of one copy: fixed by (seed, clip key, copy index), so a resumed or
    re-run preprocessing makes the same copy, whatever the order or the worker."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8")), copy])


def _features_record(features: FeatureParams) -> dict:
    return dataclasses.asdict(features)


def _check_feature_record(dataset_dir: Path, features: FeatureParams, *, overwrite: bool,
                          write: bool) -> None:
    """Refuses to mix PNGs of different feature settings, or to shard PNGs as if they had
    settings they were not made with; records the settings when ``write``."""
    record_path = dataset_dir / "Spectrograms" / "features.json"
    wanted = _features_record(features)
    if record_path.is_file() and not overwrite:
        try:
            stored = json.loads(record_path.read_text())
        except json.JSONDecodeError:
            stored = {}
        if stored != wanted:
            changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ParameterError(
                f"{record_path}: existing spectrograms were made with other settings "
                f"({', '.join(changed)}); pass the same settings, or --overwrite to remake them")
    if write:
        atomic.write_text(record_path, json.dumps(wanted, indent=2))


def _input_bytes(kind: str, source: np.ndarray, features: FeatureParams) -> bytes:
    """One input ``kind`` of a waveform, as its file holds it (``clip_file``)."""
    if kind == "spectrogram":
        return png_bytes(spectrogram_image(source, features))
    if kind == "pitch":
        return waveform_pitch(source, features).astype("<f4").tobytes()
    from agegender.voice_encoder import embed  # noqa: PLC0415  (Keras: only when asked)

    return embed(source, features.sample_rate).astype("<f4").tobytes()


def _spectrogram_job(job: tuple[str, str, list[tuple[dict[str, str], int]], FeatureParams,
                                 CopyParams, int, float]
                     ) -> tuple[int, int, list[tuple[str, str]]]:
    """Worker: one clip → its input files and its copies' (the audio is decoded once).

    Args:
        job: (audio path, clip key, [({kind: file path}, copy index 0 = the clip)],
            features, copy ranges, seed, min_voiced of the speech gate).

    Returns:
        (images tried, images written, [(first file path, problem)]); a clip that cannot be
        read is one problem, named by its first target, whatever the number of its copies.
    """
    audio, key, targets, features, copy_params, seed, min_voiced = job
    first = [next(iter(files.values())) for files, _ in targets]
    try:  # what clip_image does, kept for the copies
        waveform = load_speech(audio, features, min_voiced=min_voiced)
    except AudioError as err:
        return len(targets), 0, [(first[0], str(err).removeprefix(f"{audio}: "))]
    problems = []
    for (files, copy), name in zip(targets, first, strict=True):
        try:
            source = waveform if not copy else waveform_copy(
                waveform, features.sample_rate, copy_rng(seed, key, copy), copy_params)
            for kind, path in files.items():  # each file atomic: a kill leaves whole files
                atomic.write_bytes(path, _input_bytes(kind, source, features))
        except AudioError as err:
            problems.append((name, str(err)))
        except OSError as err:  # one clip's output must never end the run (a full disk does)
            problems.append((name, f"cannot write its inputs {name}: {err.strerror or err}"))
    return len(targets), len(targets) - len(problems), problems


def _missing_files(root: Path, split: str, key: str, inputs: tuple[str, ...]
                   ) -> dict[str, str]:
    """{kind: path} of the inputs of a clip that are still to make."""
    return {kind: str(clip_file(root, split, key, kind)) for kind in inputs
            if not clip_file(root, split, key, kind).is_file()}


def run_spectrograms(dataset_dir: str | os.PathLike, features: FeatureParams,
                     params: PreprocessParams) -> list[dict]:
    """Stage 2: the input files ``params.inputs`` asks for (``clip_file``) of every clean
    clip, in ``params.workers`` processes.

    Files that exist are kept unless ``params.overwrite``. Bad clips are skipped and
    returned.

    Returns:
        Problems, one dict per skipped clip (``REPORT_COLUMNS``).
    """
    from tqdm import tqdm  # noqa: PLC0415

    root = Path(dataset_dir)
    _check_feature_record(root, features, overwrite=params.overwrite, write=True)
    jobs, owners = [], {}
    for split in SPLITS:
        copies = params.augment_copies if split == "train" else 0
        for row in read_clean_manifest(root, split).itertuples(index=False):
            targets = []  # the clip's own input files and its copies' that are still to make
            for copy in range(copies + 1):
                key = copy_key(row.key, copy)
                files = ({kind: str(clip_file(root, split, key, kind)) for kind in params.inputs}
                         if params.overwrite else
                         _missing_files(root, split, key, params.inputs))
                if not files:
                    continue
                targets.append((files, copy))
                owners[next(iter(files.values()))] = (split, key, row.audio_path)
            if targets:
                jobs.append((str(root / row.audio_path), row.key, targets, features,
                             params.copy, params.seed, params.min_voiced))
    problems = []
    if not jobs:
        log.info("spectrograms: every input file already exists (use --overwrite to remake)")
        return problems
    for split in SPLITS:
        (root / "Spectrograms" / split_dirname(split)).mkdir(parents=True, exist_ok=True)
        atomic.remove_leftovers(root / "Spectrograms" / split_dirname(split))  # of a kill
    workers = min(params.workers, len(jobs))
    images = sum(len(job[2]) for job in jobs)
    bar = tqdm(total=images, desc=f"inputs ({', '.join(params.inputs)})", unit="clip",
               disable=None)  # terminal only
    try:  # the bar ends its line even when a full disk ends the stage
        if workers > 1:
            # Forked workers (numpy/librosa/PIL only: preprocessing never imports TensorFlow,
            # tests/test_imports.py) whose death (an OOM kill) ends the stage with one line
            # (workers.WorkerDied, from the executor's BrokenProcessPool).
            with contextlib.closing(imap_unordered(_spectrogram_job, jobs, workers,
                                                   name="spectrogram worker")) as results:
                problems, written = _collect(results, owners, bar)
        else:
            problems, written = _collect(map(_spectrogram_job, jobs), owners, bar)
    finally:
        bar.close()
    log.info("spectrograms: %d images written, %d skipped as bad clips", written,
             len(problems))
    return problems


def _collect(results, owners: dict, bar) -> tuple[list[dict], int]:
    """The workers' results → (problems as report rows, images written)."""
    problems, total = [], 0
    for tried, written, failed in results:
        bar.update(tried)
        total += written
        for target, problem in failed:
            split, key, audio = owners[target]
            problems.append({"stage": "spectrograms", "split": split, "key": key,
                             "path": audio, "reason": problem})
    return problems, total


def run_tfrecords(dataset_dir: str | os.PathLike, features: FeatureParams,
                  params: PreprocessParams) -> dict[str, dict]:
    """Stage 3: shards the clips' input files of each split (train shuffled, seeded) into
    TFRecords.

    Returns:
        ``{split: index}`` of the written shard indexes.
    """
    # Long because: one loop over the splits; make_example is a closure over that split's manifest
    # rows.
    from tqdm import tqdm  # noqa: PLC0415

    root = Path(dataset_dir)
    # Sharding never remakes PNGs, so --overwrite does not excuse a settings mismatch here.
    _check_feature_record(root, features, overwrite=False, write=False)
    indexes = {}
    for split in SPLITS:
        copies = params.augment_copies if split == "train" else 0
        manifest = with_copies(read_clean_manifest(root, split), copies)
        present = [not _missing_files(root, split, key, params.inputs)
                   for key in manifest["key"]]
        skipped = len(manifest) - sum(present)
        # A boolean Series: an empty list would select no columns instead of no rows.
        manifest = manifest[pd.Series(present, index=manifest.index, dtype="bool")]
        manifest = manifest.reset_index(drop=True)
        if skipped:
            log.info("tfrecords: %s: %d clips have no input files (bad clips) and are left "
                     "out", split, skipped)
        order = np.arange(len(manifest))
        if split == "train":
            # Manifests are grouped by speaker/class; shuffle so no shard is one class.
            np.random.default_rng(params.seed).shuffle(order)
        rows = {row.key: row for row in manifest.itertuples(index=False)}
        keys = [manifest["key"].iloc[i] for i in order]

        def make_example(key: str, split: str = split, rows: dict = rows) -> Example:
            row = rows[key]
            stored = {kind: clip_file(root, split, key, kind).read_bytes()
                      for kind in params.inputs}
            height, width, channels = features.image_shape
            return Example(png=stored.get("spectrogram", b""), height=height, width=width,
                           channels=channels, key=key, speaker_id=str(row.speaker_id),
                           label_codes={task: int(getattr(row, f"{task}_code"))
                                        for task in labels.TASKS},
                           pitch=stored.get("pitch", b""),
                           embedding=stored.get("embedding", b""))

        # The rows' digest makes a relabelled clip change the plan, so its shard is rewritten.
        # (Without the copy column, which the keys repeat: no copies, the same digest as ever.)
        rows_digest = hashlib.sha256(manifest.iloc[order].drop(columns="copy").to_csv(
            index=False).encode("utf-8")).hexdigest()
        counts = commonvoice.task_counts(manifest)
        # Only tasks with a labelled example: a reader refuses the others by name.
        metadata = {"image_shape": list(features.image_shape),
                    "tasks": [task for task in labels.TASKS if counts[task]["examples"]],
                    "task_counts": counts, "features": _features_record(features),
                    "split": split, "rows_digest": rows_digest,
                    "inputs": list(params.inputs)}
        if "pitch" in params.inputs:
            metadata["pitch_features"] = list(STAT_NAMES)
        if "embedding" in params.inputs:
            from agegender.model import EMBEDDING_SIZE  # noqa: PLC0415

            metadata["embedding_size"] = EMBEDDING_SIZE
        if copies:  # absent otherwise, so shards made before copies existed stay valid
            metadata |= {"augment_copies": copies, "copy": dataclasses.asdict(params.copy)}
        with tqdm(total=len(keys), desc=f"tfrecords {split}", unit="clip", disable=None) as bar:
            indexes[split] = write_shards(
                root / "TFRecord" / split_dirname(split), keys, make_example,
                shard_size=params.shard_size, metadata=metadata, overwrite=params.overwrite,
                progress=bar.update)
        log.info("tfrecords: %s: %d examples in %d shards (labelled: %s)", split,
                 indexes[split]["num_examples"], len(indexes[split]["shards"]),
                 ", ".join(f"{task} {counts[task]['examples']}" for task in labels.TASKS))
    return indexes


OUTPUT_FOLDERS = ("Manifest", "Spectrograms", "TFRecord")  # what preprocessing writes in DIR
RESULT_NAMES = ("preprocess_report", "dataset_summary")  # what it writes in RESULTS_DIR


def sweep_leftovers(output_dir: str | os.PathLike, results_dir: str | os.PathLike) -> int:
    """Removes the ``.tmp-*`` files a killed run left in every folder preprocessing writes:
    ``Manifest/``, ``Spectrograms/**``, ``TFRecord/**`` and its own reports in ``results_dir``.

    Only safe while the run holds the folder's ``RunLock`` (else it could remove the
    temporary file another run is writing). ``Audio/`` is swept by the clean layout itself.

    Returns:
        How many leftovers were removed.
    """
    removed = atomic.remove_leftovers(results_dir, startswith=RESULT_NAMES)
    for name in OUTPUT_FOLDERS:
        for folder, subfolders, _ in os.walk(Path(output_dir) / name):
            removed += atomic.remove_leftovers(folder)
            subfolders[:] = [sub for sub in subfolders if not sub.startswith(atomic.TEMP_PREFIX)]
    if removed:
        log.info("removed %d temporary files left by an interrupted run", removed)
    return removed


def kept_shards_note(dataset_dir: str | os.PathLike, split: str, index: dict,
                     params: PreprocessParams) -> str:
    """A WARNING line when a split's shards were kept although ``--shard_size`` asks for
    another cut ("" otherwise): the plan of a finished split does not depend on the size,
    so only ``--overwrite`` re-shards."""
    total, size = index["num_examples"], params.shard_size
    wanted = [size] * (total // size) + ([total % size] if total % size else [])
    counts = index.get("shard_counts")
    if counts is None or counts == wanted:
        return ""
    line = (f"{split}: existing shards kept ({len(counts)} shard(s) of up to "
            f"{max(counts, default=0)} examples); --shard_size={size} would make "
            f"{len(wanted)}: add --overwrite to re-shard")
    log.warning("%s: %s", Path(dataset_dir) / "TFRecord", line)
    return line


def preprocess(dataset_dir: str | os.PathLike, *, params: PreprocessParams,
               features: FeatureParams, results_dir: str | os.PathLike = "results",
               stages: tuple[str, ...] = STAGES,
               output_dir: str | os.PathLike | None = None) -> dict:
    """Runs the chosen stages in order and writes ``preprocess_report.csv`` (and, with the
    clean stage, the dataset summary) into ``report_dir(results_dir, dataset_dir)``.

    ``Manifest/ Spectrograms/ TFRecord/`` go into ``output_dir`` (None: ``dataset_dir``, as
    the original project), so a read-only or shared dataset needs no copy; ``train.py`` and
    ``test.py`` then take ``output_dir`` as their ``--dataset_dir``. One run at a time per
    output folder: a second one stops at once (``runlock.RunLock``).

    Returns:
        See ``_run_stages``.

    Raises:
        OutputError: another preprocessing run holds the dataset's lock (names its PID).
        ParameterError: ``embedding`` asked for below the voice encoder's 16 kHz.
    """
    if "embedding" in params.inputs and features.sample_rate < ENCODER_RATE_HZ:
        # Resampled up from 8 kHz the encoder hears no band above 4 kHz: on cv-sample's test
        # split its gender head fell from UAR 0.967 to 0.940 (docs/experiments.md, "Heads on
        # the voice-encoder embedding").
        raise ParameterError(f"--inputs with embedding needs --sample_rate {ENCODER_RATE_HZ} "
                             f"(the voice encoder's rate), not {features.sample_rate}")
    out = Path(output_dir) if output_dir is not None else Path(dataset_dir)
    if not Path(dataset_dir).is_dir():  # said by the clean stage; no lock folder made there
        return _run_stages(dataset_dir, params=params, features=features,
                           results_dir=results_dir, stages=stages, out=out)
    fresh = not (out / "Manifest").exists()
    with runlock.RunLock(out, what="preprocessing",
                         lock_path=out / "Manifest" / runlock.LOCK_NAME) as lock:
        try:
            sweep_leftovers(out, report_dir(results_dir, dataset_dir))
            return _run_stages(dataset_dir, params=params, features=features,
                               results_dir=results_dir, stages=stages, out=out)
        except BaseException:
            if fresh:  # a first run that stopped before writing a manifest leaves no Manifest/
                lock.remove_if_alone()
            raise


def _run_stages(dataset_dir: str | os.PathLike, *, params: PreprocessParams,
                features: FeatureParams, results_dir: str | os.PathLike, stages: tuple[str, ...],
                out: Path) -> dict:
    """Runs the chosen stages in order and writes ``preprocess_report.csv``.

    Returns:
        Summary: rows kept/dropped by cleaning (and kept without a gender/age label), clips
        skipped, examples per split and labelled examples per split and task, and
        ``warnings``: one line per missing split table and per empty or tiny split/task;
        ``notes``: such lines the demo corpus causes on purpose (``provenance``).
    """
    # Long because: one block per stage, in order, each timing itself into the report; the code is
    # 54 lines.
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ParameterError(f"--stage={unknown[0]!r} is not one of {', '.join(STAGES)}, all")
    results_dir = report_dir(results_dir, dataset_dir)
    summary: dict = {}
    problems: list[dict] = []
    warnings: list[str] = []
    notes: list[str] = []
    if "clean" in stages:
        cleaned = run_clean(dataset_dir, params, results_dir, output_dir=out)
        kept, dropped = cleaned.kept, cleaned.dropped
        summary["kept"], summary["dropped"] = len(kept), len(dropped)
        summary["dropped_by_reason"] = _reason_counts(dropped)
        summary["missing_labels"] = {"gender": int((kept["gender_code"] < 0).sum()),
                                     "age": int((kept["age_code"] < 0).sum())}
        warnings += [f"{table}, that split is empty" for table in cleaned.missing_tables]
        warnings += cleaned.layout_warnings
        warnings += cleaned.label_warnings
        notes += cleaned.label_notes
        allowed = [f"{line} (allowed by --allow_speaker_overlap)"
                   for line in cleaned.leakage["overlapping"]]
        warnings += allowed
        problems += [{"stage": "clean", "split": "", "key": "", "path": "", "reason": line}
                     for line in allowed]
        if "tfrecords" not in stages:  # else the tfrecords stage judges the final splits
            found, noted = split_report(dataset_dir, {
                split: commonvoice.task_counts(kept[kept["split"] == split])
                for split in SPLITS})
            warnings, notes = warnings + found, notes + noted
        problems += [{"stage": "clean", "split": row.split, "key": row.key,
                      "path": row.audio_path or f"{row.source_file}:{row.source_row}",
                      "reason": row.reason} for row in dropped.itertuples(index=False)]
    if "spectrograms" in stages:
        bad = run_spectrograms(out, features, params)
        summary["bad_clips"] = len(bad)
        problems += bad
    if "tfrecords" in stages:
        indexes = run_tfrecords(out, features, params)
        summary["examples"] = {split: index["num_examples"] for split, index in indexes.items()}
        summary["labelled"] = {split: {task: count["examples"] for task, count in
                                       index["task_counts"].items()}
                               for split, index in indexes.items()}
        found, noted = split_report(dataset_dir, {split: index["task_counts"]
                                                  for split, index in indexes.items()})
        warnings, notes = warnings + found, notes + noted
        warnings += [line for split, index in indexes.items()
                     if (line := kept_shards_note(dataset_dir, split, index, params))]
    report_path = Path(results_dir) / "preprocess_report.csv"
    report = pd.DataFrame(problems, columns=list(REPORT_COLUMNS))
    if report_path.is_file():
        # A staged run keeps what earlier stages reported.
        earlier = pd.read_csv(report_path, dtype=str, keep_default_na=False)
        earlier = earlier[~earlier["stage"].isin(stages)]
        report = pd.concat([earlier, report], ignore_index=True)
    atomic.write_text(report_path, report.to_csv(index=False))
    summary["report"] = str(report_path)
    summary["warnings"] = warnings
    summary["notes"] = notes
    return summary

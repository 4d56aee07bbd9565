"""The demo corpus on disk: planning the clips, the CSV tables, writing and resuming.

Layout (Kaggle Common Voice v1)::

    OUT/cv-valid-train.csv                              filename,text,...,duration,client_id
    OUT/cv-valid-train/cv-valid-train/sample-000000.mp3  mono MP3, 48 kHz
    OUT/speakers.csv    one row per synthetic speaker with every voice parameter
    OUT/clips.csv       filename, split, speaker_id, sentence
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from agegender import atomic
from agegender.config import SPLITS, split_dirname
from agegender.demo.synthesis import build_espeak_root, find_espeak, install_variant, synthesize
from agegender.demo.voices import SENTENCES, DemoParams, VoiceParams, extra_voices, speaker_voices
from agegender.errors import DatasetError, ParameterError

logger = logging.getLogger(__name__)

# The header of the Kaggle Common Voice v1 CSVs, in their order, and the speaker as modern
# Common Voice releases name it (``client_id``; the ``raw`` reader takes it), so that reports
# on the demo can be per speaker.
CORPUS_COLUMNS: tuple[str, ...] = (
    "filename", "text", "up_votes", "down_votes", "age", "gender", "accent", "duration",
    "client_id",
)
CLIPS_COLUMNS: tuple[str, ...] = ("filename", "split", "speaker_id", "sentence")
SPEAKERS_FILE = "speakers.csv"
CLIPS_FILE = "clips.csv"


@dataclass(frozen=True)
class ClipPlan:
    """One clip to make: who says what, where it goes, and its own random seed.

    Attributes:
        filename: corpus-relative name, ``cv-valid-train/sample-000000.mp3``.
        split: ``train``, ``dev`` or ``test``.
        voice: the speaker.
        sentence: the text spoken, with punctuation.
        up_votes: Common Voice up votes (decoration).
        down_votes: Common Voice down votes (decoration).
        seed: seed of the clip's post-processing randomness (padding, noise, tremolo phase).
    """

    filename: str
    split: str
    voice: VoiceParams
    sentence: str
    up_votes: int
    down_votes: int
    seed: int


@dataclass(frozen=True)
class DemoSummary:
    """What ``make_demo_dataset`` made.

    Attributes:
        out_dir: the corpus folder.
        clips_per_split: rows of each ``cv-valid-<split>.csv``.
        unlabelled_per_split: of those, rows with an empty or ``other`` gender or age.
        speakers_per_split: speakers of each split (balanced and extra).
        synthesized: clips synthesized by this run.
        skipped: clips whose MP3 was already there (a resumed run).
    """

    out_dir: Path
    clips_per_split: dict[str, int]
    unlabelled_per_split: dict[str, int]
    speakers_per_split: dict[str, int]
    synthesized: int
    skipped: int
def corpus_csv_name(split: str) -> str:
    """Returns the corpus CSV name of a split, ``cv-valid-train.csv``."""
    return f"{split_dirname(split)}.csv"


def clip_filename(split: str, index: int) -> str:
    """Returns the ``filename`` cell of a clip, ``cv-valid-train/sample-000000.mp3``."""
    return f"{split_dirname(split)}/sample-{index:06d}.mp3"


def clip_path(out_dir: Path | str, filename: str) -> Path:
    """Returns where a ``filename`` cell's audio lies: one folder deeper, as in the Kaggle files.

    Example:
        >>> clip_path("OUT", "cv-valid-dev/sample-000003.mp3").as_posix()
        'OUT/cv-valid-dev/cv-valid-dev/sample-000003.mp3'
    """
    return Path(out_dir) / filename.split("/", 1)[0] / filename

def plan_clips(params: DemoParams) -> list[ClipPlan]:
    """Decides every clip: speaker, sentence, file name, votes and seed.

    Balanced speakers say ``params.sentences_per_speaker`` different sentences; extra speakers
    say one. Within a split the rows are shuffled (so extra rows are interspersed, as in the real
    files) and numbered from ``sample-000000`` in that order.

    Returns:
        ``params.num_clips`` plans, ordered by split then file name.
    """
    rng = np.random.default_rng([params.seed, 3])
    plans = []
    balanced, extra = speaker_voices(params), extra_voices(params)
    for split in SPLITS:
        rows: list[tuple[VoiceParams, str]] = []
        for voice in (v for v in balanced if v.split == split):
            chosen = rng.choice(len(SENTENCES), size=params.sentences_per_speaker, replace=False)
            rows += [(voice, SENTENCES[i]) for i in chosen]
        for voice in (v for v in extra if v.split == split):
            rows.append((voice, SENTENCES[rng.integers(len(SENTENCES))]))
        order = rng.permutation(len(rows))
        for index, row_index in enumerate(order):
            voice, sentence = rows[row_index]
            plans.append(
                ClipPlan(
                    filename=clip_filename(split, index),
                    split=split,
                    voice=voice,
                    sentence=sentence,
                    up_votes=int(rng.integers(1, 7)),
                    down_votes=int(rng.integers(0, 3)),
                    seed=int(rng.integers(2**31)),
                )
            )
    return plans


def corpus_text(sentence: str) -> str:
    """Writes a sentence as Common Voice v1's ``text`` column does: lower case, no punctuation.

    Example:
        >>> corpus_text("It's easy to tell the depth of a well.")
        "it's easy to tell the depth of a well"
    """
    return re.sub(r"[^a-z' ]+", "", sentence.lower()).strip()


def speakers_table(voices: Sequence[VoiceParams]) -> pd.DataFrame:
    """Returns ``speakers.csv``'s table: a row per speaker, a column per ``VoiceParams`` field."""
    return pd.DataFrame(
        [dataclasses.asdict(v) for v in voices],
        columns=[f.name for f in dataclasses.fields(VoiceParams)],
    )


def clips_table(plans: Sequence[ClipPlan]) -> pd.DataFrame:
    """Returns ``clips.csv``'s table: ``filename, split, speaker_id, sentence``."""
    return pd.DataFrame(
        [(p.filename, p.split, p.voice.speaker_id, p.sentence) for p in plans],
        columns=list(CLIPS_COLUMNS),
    )


def corpus_table(plans: Sequence[ClipPlan]) -> pd.DataFrame:
    """Returns one split's ``cv-valid-<split>.csv`` table, in the Kaggle column order, then
    ``client_id`` (the speaker id of ``speakers.csv``)."""
    return pd.DataFrame(
        [
            (
                p.filename,
                corpus_text(p.sentence),
                p.up_votes,
                p.down_votes,
                p.voice.listed_age,
                p.voice.listed_gender,
                p.voice.accent,
                "",  # duration is empty in every real v1 row
                p.voice.speaker_id,
            )
            for p in plans
        ],
        columns=list(CORPUS_COLUMNS),
    )

def _csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as the corpus stores it: CSV, no index, ``\n`` line ends, UTF-8."""
    return table.to_csv(index=False, lineterminator="\n").encode()


def _make_clip(job: tuple[ClipPlan, str, int, str]) -> str:
    """Worker: synthesizes one clip and writes its MP3 atomically; returns its filename."""
    plan, out_dir, sample_rate, espeak_root = job
    audio = synthesize(
        plan.voice, plan.sentence, sample_rate=sample_rate, seed=plan.seed, espeak_root=espeak_root
    )
    with atomic.replacing(clip_path(out_dir, plan.filename)) as tmp:
        sf.write(tmp, audio, sample_rate, format="MP3")
    return plan.filename


def is_demo_corpus(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds a ``speakers.csv`` written by this module: a synthetic
    demo corpus (what ``provenance`` records as ``kind: synthetic``)."""
    path = Path(out_dir) / SPEAKERS_FILE
    if not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as file:
        header = file.readline().strip()
    return header == ",".join(f.name for f in dataclasses.fields(VoiceParams))


def _check_out_dir(out_dir: Path, planned: dict[str, bytes], *, overwrite: bool) -> bool:
    """Decides whether ``out_dir`` may be written, and whether existing MP3s can be kept.

    Returns:
        True when existing MP3s belong to this very plan (a resumed run) and may be skipped.

    Raises:
        DatasetError: ``out_dir`` is a file, holds someone else's files, or holds a demo corpus
            made with other settings, and ``overwrite`` is False.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"--out {out_dir} exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return False
    if overwrite:
        return False
    if not is_demo_corpus(out_dir):
        raise DatasetError(
            f"--out {out_dir} is not empty and holds no demo corpus (no speakers.csv of ours); "
            "choose another folder, or pass --overwrite to add ours (only files with the demo's "
            "names are replaced)"
        )
    for name, data in planned.items():
        path = out_dir / name
        if path.is_file() and path.read_bytes() != data:
            raise DatasetError(
                f"--out {out_dir} holds a demo corpus made with other settings ({name} differs); "
                "choose another folder or pass --overwrite to replace it"
            )
    return True


def _remove_partial_files(out_dir: Path) -> int:
    """Removes the temporary files of ours that an interrupted run left behind."""
    folders = [out_dir] + [clip_path(out_dir, clip_filename(s, 0)).parent for s in SPLITS]
    ours = ("sample-", SPEAKERS_FILE, CLIPS_FILE, "cv-valid-")
    removed = 0
    for folder in folders:
        for path, target in atomic.leftovers(folder) if folder.is_dir() else ():
            if target.startswith(ours) and path.is_file():
                path.unlink()
                removed += 1
    return removed


def _remove_stale_clips(out_dir: Path, keep: set[str]) -> int:
    """Removes MP3s listed in our previous ``clips.csv`` that the new plan no longer has."""
    if not is_demo_corpus(out_dir) or not (out_dir / CLIPS_FILE).is_file():
        return 0
    old = pd.read_csv(out_dir / CLIPS_FILE, usecols=["filename"], dtype=str)["filename"]
    removed = 0
    for filename in old.dropna():
        path = clip_path(out_dir, filename)
        if filename not in keep and path.suffix == ".mp3" and path.is_file():
            path.unlink()
            removed += 1
    return removed


def make_demo_dataset(
    out_dir: Path | str,
    params: DemoParams | None = None,
    *,
    num_workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoSummary:
    """Builds the synthetic corpus in the Kaggle Common Voice v1 layout.

    Plan files (``speakers.csv``, ``clips.csv``) are written first and the corpus CSVs last, each
    atomically, so an interrupted run leaves no half file; re-running with the same arguments
    keeps the MP3s already made.

    Args:
        out_dir: corpus folder; created if missing. It must be empty or hold a corpus of ours.
        params: corpus size and seed; ``DemoParams()`` when None.
        num_workers: clips made in parallel (threads, each driving an espeak-ng process),
            >= 1; all cores when None.
        overwrite: write even if ``out_dir`` holds other files or a demo corpus made with other
            settings. Only our own file names are replaced (and our own stale clips removed);
            other files are left alone.
        progress: show a tqdm progress bar of the clips.

    Returns:
        Counts of what is in the corpus and what this run synthesized.

    Raises:
        ParameterError: ``num_workers`` is below 1.
        DatasetError: espeak-ng is missing, or ``out_dir`` may not be written (see above).
        AudioError: espeak-ng fails on a clip.
    """
    # Long because: a 24-line docstring; the code (checks, resume, per-split writes, espeak jobs)
    # reads top to bottom once.
    if params is None:
        params = DemoParams()
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ParameterError(f"num_workers={num_workers!r} must be a positive integer")
    _, data_dir = find_espeak()
    out_dir = Path(out_dir)

    plans = plan_clips(params)
    voices = speaker_voices(params) + extra_voices(params)
    planned = {
        SPEAKERS_FILE: _csv_bytes(speakers_table(voices)),
        CLIPS_FILE: _csv_bytes(clips_table(plans)),
    }
    resume = _check_out_dir(out_dir, planned, overwrite=overwrite)
    if overwrite:
        removed = _remove_stale_clips(out_dir, {p.filename for p in plans})
        if removed:
            logger.info("removed %d clips of the previous demo corpus in %s", removed, out_dir)
    if out_dir.is_dir():
        _remove_partial_files(out_dir)

    for split in SPLITS:
        clip_path(out_dir, clip_filename(split, 0)).parent.mkdir(parents=True, exist_ok=True)
    for name, data in planned.items():
        atomic.write_bytes(out_dir / name, data)

    todo = [p for p in plans if not (resume and clip_path(out_dir, p.filename).is_file())]
    skipped = len(plans) - len(todo)
    if skipped:
        logger.info("keeping %d clips already made in %s", skipped, out_dir)
    if todo:
        logger.info(
            "synthesizing %d clips of %d speakers with espeak-ng (%s) on %d workers",
            len(todo), len(voices), data_dir, min(num_workers, len(todo)),
        )
    with tempfile.TemporaryDirectory(prefix="agegender-espeak-") as tmp:
        espeak_root = build_espeak_root(tmp, data_dir)
        for voice in voices:
            install_variant(voice, espeak_root)
        jobs = [(p, str(out_dir), params.sample_rate, str(espeak_root)) for p in todo]
        bar = tqdm(
            total=len(jobs), desc="demo clips", unit="clip", mininterval=1.0,
            disable=None if progress else True,  # None: on a terminal only, not in a log
        )
        with bar:
            for _ in _run_jobs(jobs, num_workers):
                bar.update()

    for split in SPLITS:
        table = corpus_table([p for p in plans if p.split == split])
        atomic.write_bytes(out_dir / corpus_csv_name(split), _csv_bytes(table))

    return DemoSummary(
        out_dir=out_dir,
        clips_per_split={s: sum(p.split == s for p in plans) for s in SPLITS},
        unlabelled_per_split={
            s: sum(p.split == s and not p.voice.labelled for p in plans)
            for s in SPLITS
        },
        speakers_per_split={s: sum(v.split == s for v in voices) for s in SPLITS},
        synthesized=len(todo),
        skipped=skipped,
    )


def _run_jobs(jobs: list[tuple[ClipPlan, str, int, str]], num_workers: int) -> Iterator[str]:
    """Runs ``_make_clip`` over the jobs on ``num_workers`` threads, yielding as clips finish.

    Threads rather than processes: a clip's time goes to the espeak-ng subprocess, soxr and the
    LAME encoder, all outside the GIL, so threads scale with cores (1.9x on 2) while worker
    processes would each have to start and re-import numpy, pandas and soundfile.
    """
    if num_workers == 1 or len(jobs) <= 1:
        yield from map(_make_clip, jobs)
        return
    with ThreadPoolExecutor(max_workers=min(num_workers, len(jobs))) as pool:
        futures = [pool.submit(_make_clip, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            # On a failure or an interrupt, clips not yet started are dropped, not waited for.
            for future in futures:
                future.cancel()

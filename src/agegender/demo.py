"""An offline synthetic demo corpus in the Kaggle Common Voice v1 "raw" layout.

The real corpus is large and needs a download; this module speaks a list of English sentences
with espeak-ng in many synthetic voices so every later stage (cleaning, features, training,
evaluation, inference) can run end to end on a machine without internet. The layout is that of
the Kaggle "Common Voice" v1 release::

    OUT/cv-valid-train.csv                              filename,text,up_votes,...,duration
    OUT/cv-valid-train/cv-valid-train/sample-000000.mp3  mono MP3, 48 kHz
    OUT/cv-valid-dev.csv, OUT/cv-valid-dev/cv-valid-dev/...
    OUT/cv-valid-test.csv, OUT/cv-valid-test/cv-valid-test/...
    OUT/speakers.csv    one row per synthetic speaker with every voice parameter
    OUT/clips.csv       filename, split, speaker_id, sentence

Gender and age live in the voice, not in the file name: each speaker is its own espeak-ng voice
variant (pitch base and range, formant scaling for vocal-tract length, speed, flutter, roughness,
breathiness), followed by numpy post-processing (tremolo, microphone noise, level). Speakers are
balanced over the 12 gender x age groups and disjoint across train/dev/test. About 5 % extra
clips, from extra speakers, carry an empty or ``other`` gender or age, as the real files do, so
the cleaner downstream has rows to drop.

espeak-ng only loads voice variants from its data folder, so we never write into the system
one: a temporary folder holds a symlink copy of espeak-ng's data with our variants added, and
espeak-ng is pointed at it with ``--path``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm import tqdm

from agegender.errors import AudioError, DatasetError, ParameterError
from agegender.labels import AGES, GENDERS

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "dev", "test")
# The header of the Kaggle Common Voice v1 CSVs, in their order.
CORPUS_COLUMNS: tuple[str, ...] = (
    "filename", "text", "up_votes", "down_votes", "age", "gender", "accent", "duration",
)
CLIPS_COLUMNS: tuple[str, ...] = ("filename", "split", "speaker_id", "sentence")
SPEAKERS_FILE = "speakers.csv"
CLIPS_FILE = "clips.csv"
# Sample rates an MP3 file can hold (MPEG 1, 2 and 2.5 layer III).
MP3_SAMPLE_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
ESPEAK_INSTALL_HINT = "install it with `apt-get install espeak-ng`"

# Harvard sentences (IEEE 1969 recommended practice, lists 1-5): phonetically balanced, public
# domain and 2-4 s long when spoken, like a typical Common Voice prompt.
SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
)

# Common Voice accent value -> espeak-ng voice file, with how often we draw it (real v1 rows often
# leave the accent empty). British English is the file "en": espeak-ng 1.51 silently drops the
# "+variant" of "en-gb", which is only a language tag, and would speak in its default male voice.
ACCENTS: tuple[tuple[str, str, float], ...] = (
    ("us", "en-us", 0.45),
    ("england", "en", 0.25),
    ("scotland", "en-gb-scotland", 0.10),
    ("", "en-us", 0.20),
)

# Median F0 (Hz) we aim a speaker of each group at. Adult male ~100-130 Hz and female
# ~180-230 Hz; teens are higher (male teens mix broken and unbroken voices); female F0 falls
# with age, male F0 rises a little after fifty.
TARGET_F0_HZ: dict[tuple[str, str], float] = {
    ("male", "teens"): 150.0, ("male", "twenties"): 120.0, ("male", "thirties"): 115.0,
    ("male", "fourties"): 112.0, ("male", "fifties"): 112.0, ("male", "sixties"): 118.0,
    ("female", "teens"): 232.0, ("female", "twenties"): 215.0, ("female", "thirties"): 206.0,
    ("female", "fourties"): 198.0, ("female", "fifties"): 188.0, ("female", "sixties"): 182.0,
}
# Formant frequencies in % of espeak's (adult male) defaults: a shorter vocal tract (women,
# teenagers) raises every formant.
FORMANT_PERCENT: dict[tuple[str, str], float] = {
    ("male", "teens"): 108.0, ("male", "twenties"): 100.0, ("male", "thirties"): 99.0,
    ("male", "fourties"): 98.0, ("male", "fifties"): 97.0, ("male", "sixties"): 97.0,
    ("female", "teens"): 120.0, ("female", "twenties"): 117.0, ("female", "thirties"): 116.0,
    ("female", "fourties"): 115.0, ("female", "fifties"): 114.0, ("female", "sixties"): 113.0,
}


@dataclass(frozen=True)
class AgeProfile:
    """How a voice changes with the age group, before per-speaker variation.

    Attributes:
        speed_wpm: speaking rate, words per minute (espeak-ng ``-s``).
        flutter: espeak-ng ``flutter``, slow pitch wavering (0 steady ... 20 croaky).
        roughness: espeak-ng ``roughness``, 0-7, creak from alternate-cycle amplitude loss.
        breath: espeak-ng ``breath`` strength on F1, 0-100 (breathy noise at the formants).
        tremolo_depth: amplitude modulation depth, fraction of the level (vocal tremor).
    """

    speed_wpm: float
    flutter: float
    roughness: float
    breath: float
    tremolo_depth: float


AGE_PROFILES: dict[str, AgeProfile] = {
    "teens": AgeProfile(speed_wpm=185, flutter=1, roughness=0, breath=0, tremolo_depth=0.0),
    "twenties": AgeProfile(speed_wpm=180, flutter=2, roughness=1, breath=2, tremolo_depth=0.0),
    "thirties": AgeProfile(speed_wpm=172, flutter=3, roughness=1, breath=4, tremolo_depth=0.02),
    "fourties": AgeProfile(speed_wpm=165, flutter=4, roughness=2, breath=6, tremolo_depth=0.04),
    "fifties": AgeProfile(speed_wpm=157, flutter=6, roughness=3, breath=9, tremolo_depth=0.07),
    "sixties": AgeProfile(speed_wpm=147, flutter=9, roughness=5, breath=14, tremolo_depth=0.12),
}
# Voiced-frame median F0 over espeak's (base, top) pitch span: median ~= base + k * (top - base).
# Measured with librosa.yin on the default corpus.
_PITCH_MEDIAN_POSITION = 0.55


@dataclass(frozen=True)
class DemoParams:
    """Size and randomness of the demo corpus.

    Attributes:
        num_speakers: balanced speakers, a multiple of 12 (one share per gender x age group)
            and at least 36 so train, dev and test each get one speaker of every group.
        sentences_per_speaker: clips per balanced speaker, each a different sentence, 1 to
            ``len(SENTENCES)``.
        seed: seed of every random choice; the same seed gives the same corpus.
        sample_rate: sample rate of the MP3 files, Hz (one of ``MP3_SAMPLE_RATES``).
        extra_unlabelled_fraction: extra clips with an empty or ``other`` gender or age, as a
            fraction of the balanced clips of each split, 0 to 0.5 (at least one per split when
            above 0).
    """

    num_speakers: int = 120
    sentences_per_speaker: int = 4
    seed: int = 0
    sample_rate: int = 48000
    extra_unlabelled_fraction: float = 0.05

    def __post_init__(self) -> None:
        num_groups = len(GENDERS) * len(AGES)
        if (
            not isinstance(self.num_speakers, int)
            or self.num_speakers < 3 * num_groups
            or self.num_speakers % num_groups
        ):
            raise ParameterError(
                f"num_speakers={self.num_speakers!r} must be a multiple of {num_groups} (one "
                f"share per gender x age group) and at least {3 * num_groups} (one speaker of "
                "every group in each of train, dev and test)"
            )
        if not isinstance(self.sentences_per_speaker, int) or not (
            1 <= self.sentences_per_speaker <= len(SENTENCES)
        ):
            raise ParameterError(
                f"sentences_per_speaker={self.sentences_per_speaker!r} must be between 1 and "
                f"{len(SENTENCES)} (the number of built-in sentences)"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed={self.seed!r} must be a non-negative integer")
        if self.sample_rate not in MP3_SAMPLE_RATES:
            raise ParameterError(
                f"sample_rate={self.sample_rate!r} is not an MP3 sample rate; use one of "
                f"{', '.join(map(str, MP3_SAMPLE_RATES))}"
            )
        if not 0.0 <= self.extra_unlabelled_fraction <= 0.5:
            raise ParameterError(
                f"extra_unlabelled_fraction={self.extra_unlabelled_fraction!r} must be between "
                "0 and 0.5"
            )

    @property
    def speakers_per_group(self) -> int:
        """Balanced speakers of each gender x age group."""
        return self.num_speakers // (len(GENDERS) * len(AGES))

    @property
    def group_speakers_per_split(self) -> dict[str, int]:
        """Speakers of each group in each split: about 80/10/10 %, at least one in dev/test."""
        held_out = max(1, (self.speakers_per_group + 5) // 10)
        return {
            "train": self.speakers_per_group - 2 * held_out,
            "dev": held_out,
            "test": held_out,
        }

    @property
    def balanced_clips_per_split(self) -> dict[str, int]:
        """Clips of balanced (labelled) speakers in each split."""
        num_groups = len(GENDERS) * len(AGES)
        return {
            split: count * num_groups * self.sentences_per_speaker
            for split, count in self.group_speakers_per_split.items()
        }

    @property
    def extra_clips_per_split(self) -> dict[str, int]:
        """Extra clips with a missing or ``other`` label in each split."""
        if self.extra_unlabelled_fraction == 0:
            return {split: 0 for split in SPLITS}
        return {
            split: max(1, round(self.extra_unlabelled_fraction * count))
            for split, count in self.balanced_clips_per_split.items()
        }

    @property
    def num_clips(self) -> int:
        """All clips of the corpus, balanced and extra."""
        return sum(self.balanced_clips_per_split.values()) + sum(
            self.extra_clips_per_split.values()
        )


@dataclass(frozen=True)
class VoiceParams:
    """One synthetic speaker: its labels and every parameter of its voice.

    Attributes:
        speaker_id: stable id, ``spk000`` for balanced speakers, ``unl000`` for extra ones.
        split: ``train``, ``dev`` or ``test``.
        gender: the gender the voice was built for (``GENDERS``).
        age: the age group the voice was built for (``AGES``).
        listed_gender: the gender written in the corpus CSV: ``gender`` for balanced speakers,
            ``""`` or ``other`` for some extra speakers.
        listed_age: the age written in the corpus CSV, likewise ``age`` or ``""``.
        accent: Common Voice accent value (``us``, ``england``, ``scotland`` or ``""``).
        espeak_voice: espeak-ng language voice the variant is applied to (``en-us``, ...).
        pitch_base_hz: espeak-ng ``pitch`` base, Hz; about the lowest F0 of a phrase.
        pitch_top_hz: espeak-ng ``pitch`` top, Hz; sets the intonation range.
        formant_percent: F0-F8 formant frequencies in % of espeak's adult-male defaults.
        formant_width_percent: formant bandwidths in % of the defaults (wider = softer).
        speed_wpm: speaking rate, words per minute.
        flutter: espeak-ng ``flutter`` (pitch wavering).
        roughness: espeak-ng ``roughness``, 0-7 (creak).
        breath: espeak-ng ``breath`` strength on F1 (weaker on higher formants), 0-100.
        tremolo_hz: rate of the amplitude tremolo added afterwards, Hz.
        tremolo_depth: depth of that tremolo, fraction of the level.
        noise_snr_db: level of the added microphone noise below the speech peak, dB.
        peak_level: peak amplitude of the clips, full scale = 1.
    """

    speaker_id: str
    split: str
    gender: str
    age: str
    listed_gender: str
    listed_age: str
    accent: str
    espeak_voice: str
    pitch_base_hz: int
    pitch_top_hz: int
    formant_percent: int
    formant_width_percent: int
    speed_wpm: int
    flutter: int
    roughness: int
    breath: int
    tremolo_hz: float
    tremolo_depth: float
    noise_snr_db: float
    peak_level: float

    @property
    def labelled(self) -> bool:
        """True when the corpus CSV lists this speaker's true gender and age."""
        return self.listed_gender == self.gender and self.listed_age == self.age

    @property
    def variant_name(self) -> str:
        """File name of this speaker's espeak-ng variant in ``voices/!v``."""
        return f"agegender_{self.speaker_id}"

    def variant_text(self) -> str:
        """The espeak-ng voice-variant file of this speaker (see espeak-ng ``docs/voices.md``)."""
        lines = [
            "language variant",
            f"name {self.variant_name}",
            f"gender {self.gender}",
            f"pitch {self.pitch_base_hz} {self.pitch_top_hz}",
        ]
        # Formant 0 is the low "body" resonance; scaling all of them together mimics a longer or
        # shorter vocal tract rather than a different vowel.
        lines += [
            f"formant {k} {self.formant_percent} 100 {self.formant_width_percent}"
            for k in range(9)
        ]
        lines += [f"flutter {self.flutter}", f"roughness {self.roughness}"]
        if self.breath > 0:
            weights = (1.0, 0.8, 0.6, 0.4, 0.2, 0.1)
            lines.append("breath " + " ".join(str(round(self.breath * w)) for w in weights))
        return "\n".join(lines) + "\n"


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
    return f"cv-valid-{split}.csv"


def clip_filename(split: str, index: int) -> str:
    """Returns the ``filename`` cell of a clip, ``cv-valid-train/sample-000000.mp3``."""
    return f"cv-valid-{split}/sample-{index:06d}.mp3"


def clip_path(out_dir: Path | str, filename: str) -> Path:
    """Returns where a ``filename`` cell's audio lies: one folder deeper, as in the Kaggle files.

    Example:
        >>> clip_path("OUT", "cv-valid-dev/sample-000003.mp3").as_posix()
        'OUT/cv-valid-dev/cv-valid-dev/sample-000003.mp3'
    """
    return Path(out_dir) / filename.split("/", 1)[0] / filename


def speaker_voices(params: DemoParams) -> list[VoiceParams]:
    """Draws the balanced speakers of the corpus, deterministic in ``params.seed``.

    Returns:
        ``params.num_speakers`` voices, grouped by split then gender then age; within a split
        every gender x age group has ``params.group_speakers_per_split[split]`` speakers.
    """
    rng = np.random.default_rng([params.seed, 1])
    voices = []
    for split in SPLITS:
        for gender in GENDERS:
            for age in AGES:
                for _ in range(params.group_speakers_per_split[split]):
                    speaker_id = f"spk{len(voices):03d}"
                    voices.append(
                        _draw_voice(rng, speaker_id, split, gender, age, gender, age)
                    )
    return voices


def extra_voices(params: DemoParams) -> list[VoiceParams]:
    """Draws the extra speakers, one per extra clip, whose CSV labels are empty or ``other``.

    Their voices are drawn like balanced ones, from a random group, so the audio is as real as
    any other; only the listed gender or age is missing.
    """
    rng = np.random.default_rng([params.seed, 2])
    # (gender hidden as, age hidden?) patterns, weighted roughly as in Common Voice v1, where
    # most unlabelled rows lack both.
    patterns = (("", True), ("", False), (None, True), ("other", False), ("other", True))
    weights = np.array([0.4, 0.15, 0.15, 0.2, 0.1])
    voices = []
    for split in SPLITS:
        for _ in range(params.extra_clips_per_split[split]):
            gender = GENDERS[rng.integers(len(GENDERS))]
            age = AGES[rng.integers(len(AGES))]
            listed_gender, hide_age = patterns[rng.choice(len(patterns), p=weights)]
            voices.append(
                _draw_voice(
                    rng,
                    f"unl{len(voices):03d}",
                    split,
                    gender,
                    age,
                    gender if listed_gender is None else listed_gender,
                    "" if hide_age else age,
                )
            )
    return voices


def _draw_voice(
    rng: np.random.Generator,
    speaker_id: str,
    split: str,
    gender: str,
    age: str,
    listed_gender: str,
    listed_age: str,
) -> VoiceParams:
    """Draws one speaker's voice around its group's profile."""
    profile = AGE_PROFILES[age]
    accent_index = rng.choice(len(ACCENTS), p=[weight for _, _, weight in ACCENTS])
    accent, espeak_voice, _ = ACCENTS[accent_index]
    # Log-normal spreads keep every speaker distinct yet near its group; F0 spread (~7 %) is
    # well under the male/female gap (~70 %).
    median_f0 = TARGET_F0_HZ[(gender, age)] * math.exp(rng.normal(0.0, 0.07))
    top_ratio = rng.uniform(1.3, 1.6)
    base = median_f0 / (1.0 + _PITCH_MEDIAN_POSITION * (top_ratio - 1.0))
    formant = FORMANT_PERCENT[(gender, age)] * math.exp(rng.normal(0.0, 0.025))
    width = (115.0 if gender == "female" else 100.0) * math.exp(rng.normal(0.0, 0.05))
    speed = profile.speed_wpm * math.exp(rng.normal(0.0, 0.07))
    flutter = max(0.0, profile.flutter + rng.normal(0.0, 1.0))
    roughness = min(7.0, max(0.0, profile.roughness + rng.normal(0.0, 0.7)))
    breath = max(0.0, profile.breath + rng.normal(0.0, 2.0))
    tremolo_depth = max(0.0, profile.tremolo_depth * math.exp(rng.normal(0.0, 0.3)))
    return VoiceParams(
        speaker_id=speaker_id,
        split=split,
        gender=gender,
        age=age,
        listed_gender=listed_gender,
        listed_age=listed_age,
        accent=accent,
        espeak_voice=espeak_voice,
        pitch_base_hz=round(base),
        pitch_top_hz=round(base * top_ratio),
        formant_percent=round(formant),
        formant_width_percent=round(width),
        speed_wpm=round(speed),
        flutter=round(flutter),
        roughness=round(roughness),
        breath=round(breath),
        tremolo_hz=round(rng.uniform(4.0, 7.0), 2),
        tremolo_depth=round(tremolo_depth, 3),
        noise_snr_db=round(rng.uniform(35.0, 50.0), 1),
        peak_level=round(rng.uniform(0.35, 0.9), 2),
    )


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
    """Returns one split's ``cv-valid-<split>.csv`` table, in the Kaggle column order."""
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
            )
            for p in plans
        ],
        columns=list(CORPUS_COLUMNS),
    )


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
        _write_atomic(path, text.encode())
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


def _temp_name(path: Path) -> Path:
    """Returns a fresh hidden name beside ``path``: same folder, so ``os.replace`` is atomic."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    return Path(name)


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes a file so that readers see the old file or the whole new one, never a part."""
    tmp = _temp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv_atomic(table: pd.DataFrame, path: Path) -> None:
    _write_atomic(path, table.to_csv(index=False, lineterminator="\n").encode())


def _make_clip(job: tuple[ClipPlan, str, int, str]) -> str:
    """Worker: synthesizes one clip and writes its MP3 atomically; returns its filename."""
    plan, out_dir, sample_rate, espeak_root = job
    audio = synthesize(
        plan.voice, plan.sentence, sample_rate=sample_rate, seed=plan.seed, espeak_root=espeak_root
    )
    path = clip_path(out_dir, plan.filename)
    tmp = _temp_name(path)
    try:
        sf.write(tmp, audio, sample_rate, format="MP3")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return plan.filename


def _is_our_corpus(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a ``speakers.csv`` written by this module."""
    path = out_dir / SPEAKERS_FILE
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
    if not _is_our_corpus(out_dir):
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
    """Removes the hidden ``.<name>.*.part`` files an interrupted run of ours left behind."""
    folders = [out_dir] + [clip_path(out_dir, clip_filename(s, 0)).parent for s in SPLITS]
    ours = (".sample-", f".{SPEAKERS_FILE}.", f".{CLIPS_FILE}.", ".cv-valid-")
    removed = 0
    for folder in folders:
        for path in folder.glob(".*.part") if folder.is_dir() else ():
            if path.name.startswith(ours) and path.is_file():
                path.unlink()
                removed += 1
    return removed


def _remove_stale_clips(out_dir: Path, keep: set[str]) -> int:
    """Removes MP3s listed in our previous ``clips.csv`` that the new plan no longer has."""
    if not _is_our_corpus(out_dir) or not (out_dir / CLIPS_FILE).is_file():
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
        SPEAKERS_FILE: speakers_table(voices).to_csv(index=False, lineterminator="\n").encode(),
        CLIPS_FILE: clips_table(plans).to_csv(index=False, lineterminator="\n").encode(),
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
        _write_atomic(out_dir / name, data)

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
            total=len(jobs), desc="demo clips", unit="clip", mininterval=1.0, disable=not progress
        )
        with bar:
            for _ in _run_jobs(jobs, num_workers):
                bar.update()

    for split in SPLITS:
        table = corpus_table([p for p in plans if p.split == split])
        _write_csv_atomic(table, out_dir / corpus_csv_name(split))

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
    processes would each re-import ``agegender`` and with it TensorFlow (~4 s apiece).
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

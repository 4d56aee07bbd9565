"""The synthetic speakers: what they say, and each one's voice drawn around its group.

A voice is an espeak-ng variant (pitch, formants, speed, flutter, roughness, breath) plus the
post-processing of ``synthesis`` (tremolo, microphone noise, level); every value is drawn from
the seeded ``DemoParams`` so the same seed gives the same speakers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agegender.config import SPLITS
from agegender.errors import ParameterError
from agegender.labels import AGES, GENDERS

# Sample rates an MP3 file can hold (MPEG 1, 2 and 2.5 layer III).
MP3_SAMPLE_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

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

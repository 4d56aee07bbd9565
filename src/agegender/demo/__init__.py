"""An offline synthetic demo corpus in the Kaggle Common Voice v1 "raw" layout.

The real corpus is large and needs a download; this package speaks a list of English sentences
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

Modules: ``voices`` (who speaks: parameters and drawn voices), ``synthesis`` (espeak-ng and
post-processing), ``corpus`` (planning, tables, writing and resuming the corpus).
"""

from agegender.config import SPLITS
from agegender.demo.corpus import (
    CLIPS_COLUMNS,
    CLIPS_FILE,
    CORPUS_COLUMNS,
    SPEAKERS_FILE,
    ClipPlan,
    DemoSummary,
    clip_filename,
    clip_path,
    clips_table,
    corpus_csv_name,
    corpus_table,
    corpus_text,
    is_demo_corpus,
    make_demo_dataset,
    plan_clips,
    speakers_table,
)
from agegender.demo.synthesis import (
    ESPEAK_INSTALL_HINT,
    build_espeak_root,
    find_espeak,
    install_variant,
    synthesize,
)
from agegender.demo.voices import (
    ACCENTS,
    AGE_PROFILES,
    FORMANT_PERCENT,
    MP3_SAMPLE_RATES,
    SENTENCES,
    TARGET_F0_HZ,
    AgeProfile,
    DemoParams,
    VoiceParams,
    extra_voices,
    speaker_voices,
)

__all__ = [
    "ACCENTS", "AGE_PROFILES", "CLIPS_COLUMNS", "CLIPS_FILE", "CORPUS_COLUMNS", "ESPEAK_INSTALL_HINT",
    "FORMANT_PERCENT", "MP3_SAMPLE_RATES", "SENTENCES", "SPEAKERS_FILE", "SPLITS", "TARGET_F0_HZ",
    "AgeProfile", "ClipPlan", "DemoParams", "DemoSummary", "VoiceParams", "build_espeak_root",
    "clip_filename", "clip_path", "clips_table", "corpus_csv_name", "corpus_table", "corpus_text",
    "extra_voices", "find_espeak", "install_variant", "is_demo_corpus", "make_demo_dataset",
    "plan_clips", "speaker_voices", "speakers_table", "synthesize",
]

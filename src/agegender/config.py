"""Parameters, one frozen dataclass per concern.

Derived values are properties, never stored twice (as in YAMNet's ``params.py``).
"""

from __future__ import annotations

import dataclasses
import math
import os

from agegender.errors import ParameterError

# BatchNorm moving-average momentum. Keras' 0.99 needs hundreds of steps to converge, more than
# a small corpus gives; the measurement is the table in README.md, section "The model"
# (and docs/experiments.md, "BatchNorm momentum").
DEFAULT_BN_MOMENTUM = 0.7

FEATURE_TYPES: tuple[str, ...] = ("spectrogram", "mel", "mfcc")
DATASET_TYPES: tuple[str, ...] = ("raw", "clean", "cv", "manifest")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
STRATEGIES: tuple[str, ...] = ("auto", "mirrored", "multiworker", "default")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced")
# What picks the best epoch (and stops early): dev UAR by default, since dev accuracy on
# imbalanced data rewards calling everyone the majority class; val_accuracy is the old rule.
MONITORS: tuple[str, ...] = ("val_uar", "val_accuracy")
FREQ_NORMS: tuple[str, ...] = ("none", "mean", "envelope")


def split_dirname(split: str) -> str:
    """Returns the folder name of a split, e.g. ``cv-valid-train`` for ``train``."""
    if split not in SPLITS:
        raise ParameterError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    return f"cv-valid-{split}"


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """How a clip becomes an image. Shared by preprocessing and inference.

    Attributes:
        feature_type: ``spectrogram`` (paper), ``mel`` or ``mfcc``.
        sample_rate: Hz every clip is resampled to.
        n_fft: STFT window and FFT length, samples.
        hop_length: STFT hop, samples.
        image_size: image height, pixels (and its width unless ``image_width`` is set).
        n_mels: mel bands for ``mel`` (and the mel stage of ``mfcc``).
        n_mfcc: coefficients for ``mfcc``.
        top_db: dynamic range kept below the clip's peak, dB.
        max_duration_s: only the first this-many seconds are read, so a clip of minutes or
            hours cannot exhaust memory; Common Voice clips are 1-10 s.
        image_width: image width, pixels; 0 = ``image_size`` (square).
        fmin_hz: lowest frequency kept, Hz (0: from 0 Hz).
        fmax_hz: highest frequency kept, Hz (0: up to ``sample_rate / 2``).
        vad_top_db: leading and trailing frames whose in-band energy is more than this many
            dB below the loudest frame are trimmed (energy VAD); 0 = keep everything.
        freq_norm: ``none``; ``mean``: each frequency row's mean over the clip's frames is
            subtracted (cepstral-mean-like), removing a fixed channel response;
            ``envelope``: each frame's spectral envelope (its dB spectrum smoothed over
            ``features.ENVELOPE_HZ``) is subtracted, leaving the harmonics (pitch) and
            removing any smooth channel response and the formants.
        fixed_time: False (paper): the whole clip is squeezed into the image width. True:
            one image column per STFT frame (a constant time scale); the clip is cropped or
            padded to ``image_width`` frames.

    Every field added after the paper's nine defaults to the paper's behaviour, so feature
    records stored without it (old shards and models) load unchanged.
    """

    feature_type: str = "spectrogram"
    sample_rate: int = 16_000
    n_fft: int = 256
    hop_length: int = 128
    image_size: int = 64
    n_mels: int = 64
    n_mfcc: int = 40
    top_db: float = 80.0
    max_duration_s: float = 15.0
    image_width: int = 0
    fmin_hz: float = 0.0
    fmax_hz: float = 0.0
    vad_top_db: float = 0.0
    freq_norm: str = "none"
    fixed_time: bool = False

    def __post_init__(self) -> None:
        if self.feature_type not in FEATURE_TYPES:
            raise ParameterError(
                f"feature_type={self.feature_type!r} is not one of {', '.join(FEATURE_TYPES)}"
            )
        if not 16 <= self.image_size <= 512:
            raise ParameterError(f"image_size={self.image_size} is outside 16..512")
        if self.image_width and not 16 <= self.image_width <= 512:
            raise ParameterError(f"image_width={self.image_width} is outside 16..512 (or 0)")
        if not 0 <= self.fmin_hz < self.band_top_hz <= self.sample_rate / 2:
            raise ParameterError(
                f"fmin_hz={self.fmin_hz}, fmax_hz={self.fmax_hz}: need 0 <= fmin_hz < fmax_hz "
                f"<= sample_rate / 2 = {self.sample_rate / 2}")
        if self.vad_top_db < 0:
            raise ParameterError(f"vad_top_db={self.vad_top_db} must be >= 0 (0: off)")
        if self.freq_norm not in FREQ_NORMS:
            raise ParameterError(
                f"freq_norm={self.freq_norm!r} is not one of {', '.join(FREQ_NORMS)}")
        if self.hop_length <= 0 or self.n_fft <= 0 or self.hop_length > self.n_fft:
            raise ParameterError(
                f"n_fft={self.n_fft}, hop_length={self.hop_length}: need 0 < hop_length <= n_fft"
            )
        if self.max_duration_s <= 0:
            raise ParameterError(f"max_duration_s={self.max_duration_s} must be positive")

    @property
    def max_samples(self) -> int:
        """Longest waveform kept, samples at ``sample_rate``."""
        return int(self.max_duration_s * self.sample_rate)

    @classmethod
    def preset(cls, name: str, **overrides) -> FeatureParams:
        """The parameters of a named preset (``FEATURE_PRESETS``), with ``overrides``."""
        if name not in FEATURE_PRESETS:
            raise ParameterError(
                f"feature_preset={name!r} is not one of {', '.join(FEATURE_PRESETS)}")
        return cls(**{**FEATURE_PRESETS[name], **overrides})

    @property
    def band_top_hz(self) -> float:
        """Highest frequency kept, Hz."""
        return self.fmax_hz or self.sample_rate / 2

    @property
    def band_bins(self) -> slice:
        """STFT bins kept for ``spectrogram``: ``fmin_hz`` to ``fmax_hz`` inclusive."""
        hz_per_bin = self.sample_rate / self.n_fft
        low = int(math.ceil(self.fmin_hz / hz_per_bin - 1e-9))
        high = int(math.floor(self.band_top_hz / hz_per_bin + 1e-9))
        return slice(low, high + 1)

    @property
    def freq_bins(self) -> int:
        """Rows of the feature matrix before resizing."""
        if self.feature_type == "spectrogram":
            bins = self.band_bins
            return bins.stop - bins.start
        if self.feature_type == "mel":
            return self.n_mels
        return self.n_mfcc

    @property
    def frames_per_second(self) -> float:
        """STFT frames (image columns when ``fixed_time``) a second."""
        return self.sample_rate / self.hop_length

    @property
    def min_duration_s(self) -> float:
        """Shortest clip accepted, seconds. Paper: 0.15 s (19 STFT frames, about a
        syllable; shorter clips are smeared over the 64 columns). ``fixed_time``: 0.5 s,
        under which four fifths of a 2.56-s crop would be padding."""
        return 0.5 if self.fixed_time else 0.15

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the RGB image a clip becomes."""
        return (self.image_size, self.image_width or self.image_size, 3)


# Named feature settings (``--feature_preset``); FeatureParams fields not named keep their
# defaults. ``paper``: Tursunov et al. (2021), bit-identical to the defaults. ``voice``: one
# telephone band for every channel, harmonics resolved, spectral envelope removed, silence
# trimmed, a constant time scale (README, "Feature presets", gives the measurements).
FEATURE_PRESETS: dict[str, dict] = {
    "paper": {},
    "voice": {
        "sample_rate": 8_000,       # every channel, telephone included, gives the same band
        "n_fft": 512,               # 64 ms window, 15.6 Hz bins: harmonics of 80-400 Hz voices
        "hop_length": 320,          # 40 ms: 25 columns a second, 64 columns = 2.56 s
        "image_size": 128,          # 128 rows over 300-3400 Hz: 24 Hz a row
        "image_width": 64,
        "fmin_hz": 300.0,           # the telephone band, 300-3400 Hz
        "fmax_hz": 3400.0,
        "top_db": 60.0,
        "vad_top_db": 40.0,
        "freq_norm": "envelope",   # drop every smooth channel response, keep the harmonics
        "fixed_time": True,
    },
}


# The kinds of model input preprocessing can store per clip and models can read
# (``model_inputs.KINDS`` describes each): the spectrogram image, the 45 voice statistics, the
# voice encoder's speaker embedding.
INPUT_KINDS: tuple[str, ...] = ("spectrogram", "pitch", "embedding")

# The networks build_model makes: the paper's, a linear model of the voice statistics, and a
# head on the voice encoder's speaker embedding (agegender.voice_encoder).
ARCHITECTURES: tuple[str, ...] = ("mam_cnn", "voice_stats", "embedding")


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """The network's hyper-parameters: the paper's MAM-CNN, or the voice-statistics model.

    Attributes:
        image_size: height of the RGB input (and its width unless ``image_width`` is set).
        num_classes: softmax outputs.
        task: ``gender``, ``age`` or ``gender_age``; stored in the model.
        class_names: one per output, stored in the model.
        l2: L2 factor on conv and dense kernels.
        bn_momentum: BatchNormalization moving-average momentum (see DEFAULT_BN_MOMENTUM).
        dense_units: width of the hidden dense layer.
        image_width: width of the RGB input, pixels; 0 = ``image_size`` (square).
        pitch_input: a second input, the clip's voice statistics (``voice_stats``: F0 and
            spectral envelope), joins the logits (``--pitch_input``; off = the paper's
            network).
        image_dropout: share of training clips, drawn anew each step, whose CNN logits are
            set to zero (``pitch_input`` only), so the voice-statistics head must classify on
            its own and the CNN only adds to it (0 = off).
        architecture: ``mam_cnn`` (the paper's network; default); ``voice_stats``: a
            logistic regression on the clip's voice statistics alone, no image (reads the
            ``pitch`` input only; ``image_*``, ``bn_momentum`` and ``dense_units`` are
            unused; on real Common Voice speakers it beats the fused MAM-CNN at gender at a
            thousandth of the cost: docs/experiments.md, "Common Voice, fifth session");
            ``embedding``: a head on the clip's speaker embedding from the pretrained voice
            encoder (``voice_encoder``), with ``pitch_input`` also on the voice statistics.
        embedding_input: a MAM-CNN also reads the clip's speaker embedding, whose logits join
            the CNN's as the voice statistics' do (``embedding`` always reads it).
        head_units: width of the hidden ReLU layer of the ``embedding`` head; 0 = a linear
            (logistic) head.
    """

    image_size: int = 64
    num_classes: int = 6
    task: str = "age"
    class_names: tuple[str, ...] = ()
    l2: float = 0.01
    bn_momentum: float = DEFAULT_BN_MOMENTUM
    dense_units: int = 80
    image_width: int = 0
    pitch_input: bool = False
    image_dropout: float = 0.0
    architecture: str = "mam_cnn"
    embedding_input: bool = False
    head_units: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"architecture={self.architecture!r} is not one of "
                                 f"{', '.join(ARCHITECTURES)}")
        if self.architecture == "voice_stats" and not self.pitch_input:
            raise ParameterError("architecture='voice_stats' needs pitch_input: the voice "
                                 "statistics are its only input")
        if self.architecture != "mam_cnn" and self.image_dropout:
            raise ParameterError(f"image_dropout={self.image_dropout} needs the MAM-CNN: a "
                                 f"{self.architecture} model has no image logits to drop")
        if self.architecture == "voice_stats" and self.embedding_input:
            raise ParameterError("architecture='voice_stats' reads the voice statistics alone; "
                                 "for the embedding too use architecture='embedding' with "
                                 "pitch_input")
        if self.head_units < 0:
            raise ParameterError(f"head_units={self.head_units} must be >= 0")
        if not 16 <= self.image_size <= 512:
            raise ParameterError(f"image_size={self.image_size} is outside 16..512")
        if self.image_width and not 16 <= self.image_width <= 512:
            raise ParameterError(f"image_width={self.image_width} is outside 16..512 (or 0)")
        if self.num_classes < 2:
            raise ParameterError(f"num_classes={self.num_classes} must be at least 2")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ParameterError(
                f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}"
            )
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ParameterError(f"bn_momentum={self.bn_momentum} is outside [0, 1)")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ParameterError(f"l2={self.l2} must be a finite number >= 0")
        if self.dense_units < 1:
            raise ParameterError(f"dense_units={self.dense_units} must be >= 1")
        if not 0.0 <= self.image_dropout < 1.0:
            raise ParameterError(f"image_dropout={self.image_dropout} is outside [0, 1)")
        if self.image_dropout and not self.pitch_input:
            raise ParameterError(f"image_dropout={self.image_dropout} needs pitch_input: "
                                 "without the voice statistics nothing is left to classify")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model's spectrogram input."""
        return (self.image_size, self.image_width or self.image_size, 3)

    @property
    def input_kinds(self) -> tuple[str, ...]:
        """The named inputs the model reads, in order (``model_inputs.KINDS``)."""
        if self.architecture == "voice_stats":
            return ("pitch",)
        main = ("embedding",) if self.architecture == "embedding" else ("spectrogram",)
        return (main + (("pitch",) if self.pitch_input else ())
                + (("embedding",) if self.embedding_input and main != ("embedding",) else ()))

    def to_record(self) -> dict:
        """The fields as plain JSON values, as the model file stores them."""
        record = dataclasses.asdict(self)
        record["class_names"] = list(self.class_names)
        return record

    @classmethod
    def from_record(cls, record: dict) -> ModelParams:
        """The inverse of ``to_record``; fields a newer version added keep their defaults,
        fields it does not know are refused by name (ParameterError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ParameterError(f"model parameters {unknown} are not known to this version "
                                 "of agegender (a model from a newer version?)")
        values = dict(record)
        values["class_names"] = tuple(values.get("class_names", ()))
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """How the model is fitted.

    Attributes:
        batch_size: examples a step (global, across replicas).
        learning_rate: Adam's step size.
        num_epochs: passes over the training split.
        seed: for shuffling and weight initialisation.
        class_weight: ``none`` or ``balanced`` (inverse class frequency).
        early_stopping_patience: epochs without a gain in ``monitor`` before stopping;
            0 = off.
        monitor: the dev metric that picks the best epoch and stops early: ``val_uar``
            (balanced accuracy over the task's classes) or ``val_accuracy``; ties go to the
            lower dev cross-entropy.
        strategy: ``auto``, ``mirrored``, ``multiworker`` or ``default``.
        mixed_precision: reduced-precision compute: float16 on GPUs, bfloat16 on CPUs.
        deterministic: bit-identical runs for one seed on one machine (op determinism and an
            ordered input pipeline); slower, so off by default.
        augment: SpecAugment-style time and frequency masks on training batches
            (``pipeline.spec_augment``).
    """

    batch_size: int = 128
    learning_rate: float = 1e-4
    num_epochs: int = 50
    seed: int = 42
    class_weight: str = "none"
    early_stopping_patience: int = 0
    strategy: str = "auto"
    mixed_precision: bool = False
    deterministic: bool = False
    augment: bool = False
    monitor: str = "val_uar"

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ParameterError(f"monitor={self.monitor!r} is not one of {', '.join(MONITORS)}")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size={self.batch_size} must be >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ParameterError(f"learning_rate={self.learning_rate} must be a finite "
                                 "number > 0")
        if self.num_epochs < 1:
            raise ParameterError(f"num_epochs={self.num_epochs} must be >= 1")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ParameterError(
                f"class_weight={self.class_weight!r} is not one of {', '.join(CLASS_WEIGHTS)}"
            )
        if self.strategy not in STRATEGIES:
            raise ParameterError(f"strategy={self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.early_stopping_patience < 0:
            raise ParameterError(
                f"early_stopping_patience={self.early_stopping_patience} must be >= 0"
            )


@dataclasses.dataclass(frozen=True)
class CopyParams:
    """How a waveform copy of a training clip differs from the clip (``--augment_copies``).

    Each copy is a random segment, played faster or slower (pitch, formants and tempo move
    together, as between two speakers of one sex), sent through a telephone line with some
    probability and given white noise at a random SNR with some probability. The ranges keep
    a voice inside its sex: ±10 % moves a 120 Hz man to 108-132 Hz and a 210 Hz woman to
    189-231 Hz.

    Attributes:
        speed: (lowest, highest) speed factor, drawn uniformly.
        telephone_p: probability of a telephone line (``channel.telephone``, μ-law or GSM).
        noise_p: probability of white noise.
        snr_db: (lowest, highest) signal-to-noise ratio of that noise, dB.
        segment_s: longest stretch of the clip a copy keeps, seconds (a random one), so copies
            of a long clip show other parts of it than the centre crop; 0 = the whole clip.
    """

    speed: tuple[float, float] = (0.9, 1.1)
    telephone_p: float = 0.5
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (15.0, 35.0)
    segment_s: float = 4.0

    def __post_init__(self) -> None:
        low, high = self.speed
        if not 0.5 <= low <= high <= 2.0:
            raise ParameterError(f"speed={self.speed} must satisfy 0.5 <= low <= high <= 2")
        for name in ("telephone_p", "noise_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ParameterError(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.snr_db[0] > self.snr_db[1]:
            raise ParameterError(f"snr_db={self.snr_db}: low must not exceed high")
        if self.segment_s < 0:
            raise ParameterError(f"segment_s={self.segment_s} must be >= 0")


def check_min_voiced(min_voiced: float) -> float:
    """``min_voiced`` if it is a share in [0, 1]; ParameterError otherwise.

    The one rule for the speech gate's ``min_voiced`` (``agegender.speech``), wherever it is
    given: preprocessing, inference, evaluation and the timeline.
    """
    try:
        value = float(min_voiced)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ParameterError(f"min_voiced={min_voiced!r} must be a share between 0 and 1 "
                             "(0: no speech gate)")
    return value


@dataclasses.dataclass(frozen=True)
class PreprocessParams:
    """How a dataset folder is turned into PNGs and TFRecord shards.

    Attributes:
        dataset_type: ``raw`` (Kaggle CV v1), ``clean`` (original project), ``cv`` (modern
            Common Voice) or ``manifest`` (one labelled table, ``DIR/manifest.csv``).
        split_by_speaker: rebuild train/dev/test from all rows by speaker (seeded, about
            80/10/10 of speakers, stratified by gender and age group); needs a speaker column.
        follow_symlinks: accept a path that lies inside the dataset folder as written but is a
            symlink to a file outside it (a path that escapes as written is still refused).
        shard_size: examples per TFRecord shard.
        num_workers: processes computing spectrograms; 0 = all cores.
        overwrite: redo PNGs and shards that already exist.
        seed: for the speaker split, the train-shard shuffle and the copies.
        augment_copies: extra images of each training clip, each from a waveform copy made
            as ``copy`` says (dev and test clips are never copied); 0 = none.
        copy: how a copy differs from its clip.
        min_voiced: the speech gate (``agegender.speech``): a clip with fewer voiced frames
            than this share is skipped as "no speech"; 0 = no gate.
        allow_speaker_overlap: go on when a speaker's clips lie in two splits (said in the
            preprocess report and the test report) instead of stopping.
        inputs: which model inputs to compute and store per clip (``INPUT_KINDS``); each
            costs only when asked: without ``spectrogram`` no PNG is rendered, without
            ``pitch`` no voice statistics are computed, and ``embedding`` runs the voice
            encoder. The default, ``spectrogram``, is what ``train.py``'s default model (the
            paper's MAM-CNN) reads; a ``--pitch_input`` or ``voice_stats`` model needs
            ``pitch`` too, and refuses shards without it by naming ``--inputs``.
    """

    dataset_type: str = "clean"
    split_by_speaker: bool = False
    follow_symlinks: bool = False
    shard_size: int = 1000
    num_workers: int = 0
    overwrite: bool = False
    seed: int = 42
    augment_copies: int = 0
    copy: CopyParams = dataclasses.field(default_factory=CopyParams)
    min_voiced: float = 0.1
    allow_speaker_overlap: bool = False
    inputs: tuple[str, ...] = ("spectrogram",)

    def __post_init__(self) -> None:
        check_min_voiced(self.min_voiced)
        unknown = [kind for kind in self.inputs if kind not in INPUT_KINDS]
        if unknown or not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ParameterError(f"inputs={','.join(self.inputs)}: expected one or more of "
                                 f"{', '.join(INPUT_KINDS)}, each once")
        if self.augment_copies < 0:
            raise ParameterError(f"augment_copies={self.augment_copies} must be >= 0")
        if self.dataset_type not in DATASET_TYPES:
            raise ParameterError(
                f"dataset_type={self.dataset_type!r} is not one of {', '.join(DATASET_TYPES)}"
            )
        if self.shard_size < 1:
            raise ParameterError(f"shard_size={self.shard_size} must be >= 1")
        if self.num_workers < 0:
            raise ParameterError(f"num_workers={self.num_workers} must be >= 0")

    @property
    def workers(self) -> int:
        """Processes actually used."""
        return self.num_workers or os.cpu_count() or 1

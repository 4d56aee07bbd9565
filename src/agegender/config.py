"""Parameters, one frozen dataclass per concern.

Derived values are properties, never stored twice (as in YAMNet's ``params.py``).
"""

from __future__ import annotations

import dataclasses
import os

from agegender.errors import ParameterError

# BatchNorm moving-average momentum. Keras' 0.99 needs hundreds of steps to converge, more than
# a small corpus gives; the measurement is the table in README.md, section "The model"
# (re-run it with bench/bn_momentum_bench.py).
DEFAULT_BN_MOMENTUM = 0.7

FEATURE_TYPES: tuple[str, ...] = ("spectrogram", "mel", "mfcc")
DATASET_TYPES: tuple[str, ...] = ("raw", "clean", "cv", "manifest")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
STRATEGIES: tuple[str, ...] = ("auto", "mirrored", "multiworker", "default")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced")


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
        image_size: side of the square output image, pixels.
        n_mels: mel bands for ``mel`` (and the mel stage of ``mfcc``).
        n_mfcc: coefficients for ``mfcc``.
        top_db: dynamic range kept below the clip's peak, dB.
        max_duration_s: only the first this-many seconds are read, so a clip of minutes or
            hours cannot exhaust memory; Common Voice clips are 1-10 s.
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

    def __post_init__(self) -> None:
        if self.feature_type not in FEATURE_TYPES:
            raise ParameterError(
                f"feature_type={self.feature_type!r} is not one of {', '.join(FEATURE_TYPES)}"
            )
        if not 16 <= self.image_size <= 512:
            raise ParameterError(f"image_size={self.image_size} is outside 16..512")
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

    @property
    def freq_bins(self) -> int:
        """Rows of the feature matrix before resizing."""
        if self.feature_type == "spectrogram":
            return self.n_fft // 2 + 1
        if self.feature_type == "mel":
            return self.n_mels
        return self.n_mfcc

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the RGB image a clip becomes."""
        return (self.image_size, self.image_size, 3)


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """The MAM-CNN's hyper-parameters.

    Attributes:
        image_size: side of the square RGB input, pixels.
        num_classes: softmax outputs.
        task: ``gender``, ``age`` or ``gender_age``; stored in the model.
        class_names: one per output, stored in the model.
        l2: L2 factor on conv and dense kernels.
        bn_momentum: BatchNormalization moving-average momentum (see DEFAULT_BN_MOMENTUM).
        dense_units: width of the hidden dense layer.
    """

    image_size: int = 64
    num_classes: int = 6
    task: str = "age"
    class_names: tuple[str, ...] = ()
    l2: float = 0.01
    bn_momentum: float = DEFAULT_BN_MOMENTUM
    dense_units: int = 80

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 512:
            raise ParameterError(f"image_size={self.image_size} is outside 16..512")
        if self.num_classes < 2:
            raise ParameterError(f"num_classes={self.num_classes} must be at least 2")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ParameterError(
                f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}"
            )
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ParameterError(f"bn_momentum={self.bn_momentum} is outside [0, 1)")
        if self.l2 < 0:
            raise ParameterError(f"l2={self.l2} must be >= 0")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model input."""
        return (self.image_size, self.image_size, 3)


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """How the model is fitted.

    Attributes:
        batch_size: examples a step (global, across replicas).
        learning_rate: Adam's step size.
        num_epochs: passes over the training split.
        seed: for shuffling and weight initialisation.
        class_weight: ``none`` or ``balanced`` (inverse class frequency).
        early_stopping_patience: epochs without val_accuracy gain before stopping; 0 = off.
        strategy: ``auto``, ``mirrored``, ``multiworker`` or ``default``.
        mixed_precision: reduced-precision compute: float16 on GPUs, bfloat16 on CPUs.
        deterministic: bit-identical runs for one seed on one machine (op determinism and an
            ordered input pipeline); slower, so off by default.
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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ParameterError(f"batch_size={self.batch_size} must be >= 1")
        if self.learning_rate <= 0:
            raise ParameterError(f"learning_rate={self.learning_rate} must be > 0")
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
        seed: for the speaker split and the train-shard shuffle.
    """

    dataset_type: str = "clean"
    split_by_speaker: bool = False
    follow_symlinks: bool = False
    shard_size: int = 1000
    num_workers: int = 0
    overwrite: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
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

"""Test set-up: the package from src/, quiet TensorFlow, and shared fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

TINY_IMAGE = 32  # training tests use 32-px images: 4x fewer FLOPs than the default 64


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A preprocessed raw-layout corpus: 24 train, 12 dev, 12 test clips, 32-px images, with
    the voice statistics (``--inputs=spectrogram,pitch``) that the pitch models read."""
    from synth import make_raw_corpus

    from agegender.config import FeatureParams, PreprocessParams
    from agegender.preprocess import preprocess

    root = make_raw_corpus(tmp_path_factory.mktemp("tiny") / "corpus")
    preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1, shard_size=10,
                                             inputs=("spectrogram", "pitch")),
               features=FeatureParams(image_size=TINY_IMAGE),
               results_dir=root.parent / "results")
    return root


@pytest.fixture(scope="session")
def trained_gender(tiny_dataset, tmp_path_factory) -> dict:
    """A gender model trained for 2 epochs on ``tiny_dataset``; paths and the result."""
    from agegender.config import TrainParams
    from agegender.training import train

    out = tmp_path_factory.mktemp("trained")
    result = train(tiny_dataset, "gender", train_params=TrainParams(
        batch_size=8, num_epochs=2, learning_rate=1e-3, seed=1), image_size=TINY_IMAGE,
        models_dir=out / "models", results_dir=out / "results", verbose=0)
    return {**result, "out": out, "dataset": tiny_dataset}

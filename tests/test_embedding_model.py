"""The voice-encoder path end to end: preprocessing stores embeddings, train.py fits a head
on them, the test step and the detector score it from the same inputs, the timeline runs."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory):
    """A raw corpus preprocessed with ``--inputs pitch,embedding`` (no PNG) and an
    embedding + statistics head trained on it."""
    from synth import make_raw_corpus

    from agegender.config import FeatureParams, ModelParams, PreprocessParams, TrainParams
    from agegender.preprocess import preprocess
    from agegender.training import train

    out = tmp_path_factory.mktemp("embedding")
    root = make_raw_corpus(out / "corpus", per_group={"train": 2, "dev": 1, "test": 1})
    preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1,
                                             inputs=("pitch", "embedding")),
               features=FeatureParams.preset("voice", sample_rate=16_000),
               results_dir=out / "results")
    result = train(root, "gender", train_params=TrainParams(
        batch_size=8, num_epochs=3, learning_rate=1e-3, seed=1),
        model_params=ModelParams(architecture="embedding", pitch_input=True, l2=0.01),
        models_dir=out / "models", results_dir=out / "results", verbose=0)
    return {**result, "root": root, "out": out}


def test_preprocessing_stores_the_embedding_inference_computes(embedding_run):
    from agegender.commonvoice import read_clean_manifest
    from agegender.config import FeatureParams
    from agegender.model_inputs import file_inputs
    from agegender.preprocess import clip_file, read_values

    root = embedding_run["root"]
    assert not list(root.glob("Spectrograms/*/*.png"))  # no image was asked for
    row = read_clean_manifest(root, "test").iloc[0]
    stored = read_values(clip_file(root, "test", row["key"], "embedding"))
    features = FeatureParams.preset("voice", sample_rate=16_000)
    served = file_inputs(root / row["audio_path"], features, ("embedding",),
                         min_voiced=0.1)["embedding"][0]
    assert stored.shape == (256,) and abs(float(np.linalg.norm(stored)) - 1.0) < 1e-4
    np.testing.assert_allclose(stored, served, atol=1e-5)


def test_the_head_is_scored_alike_by_the_test_step_and_the_detector(embedding_run, tmp_path):
    import keras

    import agegender  # noqa: F401  (registers the layers)
    from agegender import AgeGenderDetector
    from agegender.evaluation import evaluate
    from agegender.model import input_kinds

    plain = keras.models.load_model(embedding_run["keras"], safe_mode=True)
    assert input_kinds(plain) == ("embedding", "pitch")
    report = evaluate(embedding_run["root"], embedding_run["keras"], "gender",
                      results_dir=tmp_path, n_resamples=50)
    assert "speaker embedding" in report["text"]
    detector = AgeGenderDetector(embedding_run["keras"], min_voiced=0)
    clips = sorted((embedding_run["root"] / "cv-valid-test").rglob("*.wav"))[:3]
    results = detector.predict(clips)
    assert all(r["error"] is None and r["label"] in ("male", "female") for r in results)
    timeline = detector.timeline(clips[0])
    assert timeline["segments"] and timeline["duration"] > 0

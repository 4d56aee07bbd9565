"""Inference: API and CLI, batch vs single, bad files, train/serve identity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import TINY_IMAGE
from synth import voice

import inference as inference_cli
from agegender import AgeGenderDetector
from agegender.config import FeatureParams
from agegender.errors import ModelError, ParameterError
from agegender.features import clip_image, clip_images, read_png
from agegender.inference import expand_audio_paths
from agegender.preprocess import png_path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Audio of several formats, rates and channel counts, plus bad files."""
    folder = tmp_path_factory.mktemp("clips")
    wave = voice("female", "twenties", seed=7, rate=44_100)
    sf.write(folder / "a.mp3", wave, 44_100, format="MP3")
    sf.write(folder / "b.wav", np.stack([wave, wave * 0.5], axis=1), 44_100)
    sf.write(folder / "c.flac", voice("male", "sixties", seed=8, rate=8_000), 8_000)
    sf.write(folder / "d.ogg", voice("male", "teens", seed=9, rate=22_050), 22_050)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.mp3").write_bytes(b"\x00\x01not audio at all" * 10)
    return folder


GOOD = ["a.mp3", "b.wav", "c.flac", "d.ogg"]


def test_detector_predicts_every_format(trained_gender, clips):
    detector = AgeGenderDetector(trained_gender["keras"])
    assert detector.task == "gender" and detector.class_names == ("male", "female")
    results = detector.predict([clips / name for name in GOOD])
    for result in results:
        assert result["error"] is None
        assert result["label"] in ("male", "female")
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    # The detector's numbers are the model's on the preprocessing function's image.
    images = np.stack([clip_image(clips / name, detector.model.features) for name in GOOD])
    expected = detector.model.predict({"spectrogram": images.astype(np.float32)})  # [clips, 2]
    for result, row in zip(results, expected, strict=True):
        assert result["label"] == detector.class_names[int(row.argmax())]
        assert result["probability"] == pytest.approx(float(row.max()), abs=1e-5)


def test_batch_and_single_file_paths_agree(trained_gender, clips):
    detector = AgeGenderDetector(trained_gender["keras"], batch_size=3)
    batch = detector.predict([clips / name for name in GOOD])
    for name, together in zip(GOOD, batch, strict=True):
        (alone,) = detector.predict([clips / name])
        assert alone["label"] == together["label"]
        for cls, p in alone["probabilities"].items():
            assert p == pytest.approx(together["probabilities"][cls], abs=1e-5)


def test_bad_files_get_a_reason_and_others_still_predict(trained_gender, clips):
    detector = AgeGenderDetector(trained_gender["keras"])
    results = detector.predict([clips / "missing.wav", clips / "empty.wav",
                                clips / "corrupt.mp3", clips / "a.mp3"])
    reasons = [r["error"] for r in results]
    assert "missing.wav: file not found" in reasons[0]
    assert "empty.wav: empty file" in reasons[1]
    assert "corrupt.mp3: corrupt or not an audio file" in reasons[2]
    assert reasons[3] is None and results[3]["label"] in ("male", "female")


def test_image_is_identical_through_preprocessing_and_inference(trained_gender):
    dataset = trained_gender["dataset"]
    audio = dataset / "cv-valid-test" / "cv-valid-test" / "sample-000003.wav"
    stored = read_png(png_path(dataset, "test", "sample-000003").read_bytes())
    detector = AgeGenderDetector(trained_gender["keras"])
    assert detector.model.features == FeatureParams(image_size=TINY_IMAGE)
    np.testing.assert_array_equal(clip_image(audio, detector.model.features), stored)


def test_task_mismatch_and_missing_model(trained_gender, tmp_path):
    with pytest.raises(ModelError, match="not --cls_task='gender_age'"):
        AgeGenderDetector(trained_gender["keras"], "gender_age")
    with pytest.raises(ModelError, match="file not found"):
        AgeGenderDetector(tmp_path / "nope.keras")


def test_expand_audio_paths(clips):
    found = expand_audio_paths([str(clips), str(clips / "*.mp3"), "not-there.wav"])
    assert str(clips / "a.mp3") in found and str(clips / "c.flac") in found
    assert found.count(str(clips / "a.mp3")) == 1
    assert found[-1] == "not-there.wav"


def test_cli_matches_the_api_and_writes_outputs(trained_gender, clips, tmp_path, capsys):
    api = AgeGenderDetector(trained_gender["keras"]).predict([clips / n for n in GOOD])
    out_json, out_csv = tmp_path / "p.json", tmp_path / "p.csv"
    args = ["--model_path", trained_gender["keras"], "--audio_file",
            *[str(clips / n) for n in GOOD], str(clips / "empty.wav"), "--top_k=2"]
    assert inference_cli.main([*args, f"--output={out_json}"]) == 0
    printed = capsys.readouterr()
    for result in api:
        assert f"{result['file']}: {result['label']} (p={result['probability']:.3f})" \
            in printed.out
    assert "empty.wav: empty file" in printed.err
    assert "4 of 5 files predicted (gender)" in printed.out
    saved = json.loads(out_json.read_text())
    assert [r["label"] for r in saved[:4]] == [r["label"] for r in api]
    assert inference_cli.main([*args, f"--output={out_csv}"]) == 0
    table = pd.read_csv(out_csv)
    assert list(table.columns) == ["file", "label", "probability", "p_male", "p_female",
                                   "error"]


def test_cli_says_how_many_files_a_folder_gave_and_predicts_them_in_batches(
        trained_gender, clips, capsys):
    """Was: a folder was searched recursively with nothing said until the end."""
    api = AgeGenderDetector(trained_gender["keras"]).predict(expand_audio_paths([str(clips)]))
    assert inference_cli.main(["--model_path", trained_gender["keras"], "--audio_file",
                               str(clips), "--batch_size=2"]) == 0
    printed = capsys.readouterr()
    assert printed.err.splitlines()[0] == (
        f"6 file(s) to predict (folders searched recursively: {clips})")
    assert "\r" not in printed.err  # no progress-bar redraws when stderr is not a terminal
    for result in api:
        line = (f"{result['file']}: {result['label']} (p={result['probability']:.3f})"
                if result["label"] else f"error: {result['error']}")
        assert line in printed.out + printed.err
    assert "4 of 6 files predicted (gender)" in printed.out


def test_cli_exit_codes(trained_gender, clips, capsys):
    assert inference_cli.main(["--model_path", trained_gender["keras"], "--audio_file",
                               str(clips / "empty.wav")]) == 1
    assert inference_cli.main(["--model_path", trained_gender["keras"], "--audio_file",
                               str(clips / "a.mp3"), "--cls_task=age"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") >= 2 and "Traceback" not in err
    assert "error: --model_path=" in err and "trained for cls_task='gender'" in err


def test_bfloat16_precision_agrees_with_float32(trained_gender, clips):
    files = [clips / name for name in GOOD]
    exact = AgeGenderDetector(trained_gender["keras"]).predict(files)
    fast = AgeGenderDetector(trained_gender["keras"], precision="bfloat16")
    for a, b in zip(exact, fast.predict(files), strict=True):
        for cls, p in a["probabilities"].items():
            assert b["probabilities"][cls] == pytest.approx(p, abs=0.05)
    with pytest.raises(ParameterError, match="precision='float16' is not one of"):
        AgeGenderDetector(trained_gender["keras"], precision="float16")


def test_bfloat16_copy_runs_in_bfloat16(trained_gender):
    from agegender.checkpoints import bfloat16_copy, load_model

    copy = bfloat16_copy(load_model(trained_gender["keras"]))
    assert copy.get_layer("dense").compute_dtype == "bfloat16"
    assert copy.get_layer("probabilities").compute_dtype == "float32"


def test_cli_output_files_name_their_model(trained_gender, clips, tmp_path, capsys):
    from agegender.checkpoints import model_identity

    identity = model_identity(trained_gender["keras"])
    for out in (tmp_path / "p.csv", tmp_path / "p.json"):
        assert inference_cli.main(["--model_path", trained_gender["keras"], "--audio_file",
                                   str(clips / "a.mp3"), f"--output={out}"]) == 0
        sidecar = json.loads((tmp_path / f"{out.name}.model.json").read_text())
        assert sidecar["sha256"] == identity["sha256"] and sidecar["task"] == "gender"
        assert sidecar["epoch"] == trained_gender["best_epoch"]
    printed = capsys.readouterr().out
    assert f"by best_model_gender.keras (sha256 {identity['sha256'][:12]}" in printed


@pytest.fixture(scope="module")
def voice_model(tmp_path_factory):
    """An untrained gender model on small voice-preset images (32×16: the same code path as
    the real 128×64, 16x fewer FLOPs); predictions are arbitrary but reproducible."""
    import dataclasses

    from agegender.config import ModelParams
    from agegender.model import build_model

    import keras

    keras.utils.set_random_seed(0)  # the same model whichever tests ran before
    features = FeatureParams.preset("voice", image_size=32, image_width=16)
    model = build_model(ModelParams(image_size=32, image_width=16, num_classes=2,
                                    task="gender", class_names=("male", "female")),
                        features=dataclasses.asdict(features))
    # Untrained outputs sit at 0.5 for every image: large output weights let crops differ.
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights(
        [np.random.default_rng(0).normal(0, 30, kernel.shape).astype("float32"), bias])
    path = tmp_path_factory.mktemp("voice_model") / "voice.keras"
    model.save(path)
    return path, features


def test_detector_averages_the_crops_of_a_long_clip(voice_model, tmp_path):
    path, features = voice_model
    wave = np.concatenate([voice("female", "twenties", seed=1, seconds=1.0, rate=16_000),
                           voice("male", "sixties", seed=2, seconds=1.0, rate=16_000)])
    clip = tmp_path / "long.wav"
    sf.write(clip, wave, 16_000)  # 2 s = 50 frames: 4 crops of 16 would cover it
    detector = AgeGenderDetector(path, max_crops=3)
    assert detector.model.features == features
    crops = clip_images(clip, features, max_crops=3)
    assert crops.shape == (3, 32, 16, 3)
    per_crop = detector.model.predict({"spectrogram": crops.astype(np.float32)})  # [3, 2]
    (result,) = detector.predict([clip])
    expected = per_crop.mean(axis=0)
    assert [result["probabilities"][name] for name in ("male", "female")] == pytest.approx(
        expected.tolist(), abs=1e-6)
    # One crop: the centre crop preprocessing stores.
    (centre,) = AgeGenderDetector(path, max_crops=1).predict([clip])
    stored = detector.model.predict(
        {"spectrogram": clip_image(clip, features)[np.newaxis].astype(np.float32)})
    assert centre["probabilities"]["female"] == pytest.approx(float(stored[0, 1]), abs=1e-6)
    with pytest.raises(ParameterError, match="max_crops"):
        AgeGenderDetector(path, max_crops=0)


def test_cli_max_crops_reaches_the_detector(voice_model, tmp_path, capsys):
    path, _ = voice_model
    wave = np.concatenate([voice("female", "twenties", seed=1, seconds=1.0, rate=16_000),
                           voice("male", "sixties", seed=2, seconds=1.0, rate=16_000)])
    clip = tmp_path / "long.wav"
    sf.write(clip, wave, 16_000)
    outputs = {}
    for crops in (1, 3):
        out = tmp_path / f"crops{crops}.csv"
        assert inference_cli.main(["--model_path", str(path), "--audio_file", str(clip),
                                   f"--max_crops={crops}", "--output", str(out)]) == 0
        outputs[crops] = pd.read_csv(out)
        (expected,) = AgeGenderDetector(path, max_crops=crops).predict([clip])
        assert outputs[crops]["p_female"].iloc[0] == pytest.approx(
            expected["probabilities"]["female"], abs=1e-6)
    assert outputs[1]["p_female"].iloc[0] != pytest.approx(outputs[3]["p_female"].iloc[0],
                                                          abs=1e-6)
    assert inference_cli.main(["--model_path", str(path), "--audio_file", str(clip),
                               "--max_crops=0"]) != 0
    assert "max_crops=0 must be >= 1" in capsys.readouterr().err


def test_old_models_without_the_new_feature_fields_load(voice_model, tmp_path):
    """A model whose stored feature record predates the voice preset loads as the paper's."""
    from agegender.config import ModelParams
    from agegender.model import build_model

    old = {"feature_type": "spectrogram", "sample_rate": 16000, "n_fft": 256, "hop_length": 128,
           "image_size": 32, "n_mels": 64, "n_mfcc": 40, "top_db": 80.0, "max_duration_s": 15.0}
    path = tmp_path / "old.keras"
    build_model(ModelParams(image_size=32, num_classes=2, task="gender"),
                features=old).save(path)
    detector = AgeGenderDetector(path)
    assert detector.model.features == FeatureParams(image_size=32)


# -- issue 21, items 3 and 9: paths named once, the API expands as the CLI does -------------


def _looped_folder(root, links: int):
    """root/a/x.wav, root/a/b/y.wav and ``links`` links back up (a/loop0 -> .., ...)."""
    import os

    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "a" / "x.wav", np.zeros(800, np.float32), 16_000)
    sf.write(root / "a" / "b" / "y.wav", np.zeros(800, np.float32), 16_000)
    for i in range(links):
        os.symlink("..", root / "a" / f"loop{i}")
    return root


def test_glob_and_folder_through_a_symlink_loop_name_each_file_once(tmp_path):
    """Was: a quoted '**/*.wav' through a loop predicted one file 41 times."""
    root = _looped_folder(tmp_path, links=1)
    expected = [str(root / "a" / "b" / "y.wav"), str(root / "a" / "x.wav")]
    assert expand_audio_paths([str(root / "**" / "*.wav")]) == expected
    assert expand_audio_paths([str(root)]) == expected
    assert expand_audio_paths([str(root / "a" / "*.wav")]) == [str(root / "a" / "x.wav")]
    # A link and its target named together, or twice: one file, named as first given.
    assert expand_audio_paths([str(root / "a" / "loop0" / "a" / "x.wav"),
                               str(root / "a" / "x.wav")]) == [
        str(root / "a" / "loop0" / "a" / "x.wav")]


def test_glob_through_two_loop_links_ends(tmp_path):
    """Was: with two links back up, the glob never ended."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = _looped_folder(tmp_path, links=2)
    code = ("import sys; from agegender.inference import expand_audio_paths; "
            "print(len(expand_audio_paths([sys.argv[1]])))")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", code, str(root / "**" / "*.wav")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2"


def test_predict_takes_one_path_and_expands_folders_and_globs(trained_gender, clips):
    """Was: predict('x.wav') predicted each character of the string; predict([folder]) said
    the folder held no audio."""
    detector = AgeGenderDetector(trained_gender["keras"])
    (one,) = detector.predict(str(clips / "a.mp3"))
    (same,) = detector.predict(clips / "a.mp3")
    assert one["file"] == same["file"] == str(clips / "a.mp3")
    assert one["error"] is None and one["label"] == same["label"]
    in_folder = detector.predict([clips])
    assert sorted(r["file"] for r in in_folder) == sorted(
        str(clips / name) for name in [*GOOD, "empty.wav", "corrupt.mp3"])
    assert {r["file"] for r in in_folder if r["error"] is None} == {
        str(clips / name) for name in GOOD}
    globbed = detector.predict(str(clips / "*.mp3"))
    assert sorted(r["file"] for r in globbed) == [str(clips / "a.mp3"),
                                                   str(clips / "corrupt.mp3")]

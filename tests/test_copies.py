"""Waveform copies of training clips (``--augment_copies``): the transform
(``channel.waveform_copy``), the rows (``preprocess.with_copies``) and preprocessing with them,
end to end on a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synth

import preprocess_dataset
from agegender import preprocess
from agegender.channel import waveform_copy
from agegender.config import CopyParams, FeatureParams, PreprocessParams
from agegender.errors import ParameterError
from agegender.pipeline import split_folder
from agegender.tfrecords import INDEX_NAME, decode_example, read_records, scan_shard

RATE = 16_000
NO_CHANGE = CopyParams(speed=(1.0, 1.0), telephone_p=0.0, noise_p=0.0, segment_s=0.0)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.shape[0])))
    return float(np.fft.rfftfreq(wave.shape[0], 1.0 / rate)[np.argmax(spectrum)])


# -- the transform ----------------------------------------------------------------------------


def test_copy_with_nothing_drawn_is_the_clip() -> None:
    wave = synth.tone(200.0, seconds=1.0, rate=RATE)
    out = waveform_copy(wave, RATE, np.random.default_rng(0), NO_CHANGE)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, wave, atol=1e-6)


def test_speed_moves_pitch_and_length_together() -> None:
    wave = synth.tone(200.0, seconds=2.0, rate=RATE)
    faster = CopyParams(speed=(1.1, 1.1), telephone_p=0.0, noise_p=0.0, segment_s=0.0)
    out = waveform_copy(wave, RATE, np.random.default_rng(0), faster)
    assert abs(out.shape[0] - wave.shape[0] / 1.1) <= 2
    assert peak_hz(out, RATE) == pytest.approx(220.0, abs=2.0)


def test_telephone_copy_has_no_energy_above_the_band() -> None:
    rng = np.random.default_rng(3)
    noise = rng.uniform(-0.5, 0.5, RATE).astype(np.float32)  # white: energy up to 8 kHz
    line = CopyParams(speed=(1.0, 1.0), telephone_p=1.0, noise_p=0.0, segment_s=0.0)
    out = waveform_copy(noise, RATE, np.random.default_rng(0), line)
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(out.shape[0], 1.0 / RATE)
    above = spectrum[freqs > 4200].sum() / spectrum.sum()
    assert above < 1e-3
    assert out.shape[0] == pytest.approx(noise.shape[0], abs=4)


def test_noise_is_at_the_drawn_snr() -> None:
    wave = synth.tone(200.0, seconds=1.0, rate=RATE)
    noisy = CopyParams(speed=(1.0, 1.0), telephone_p=0.0, noise_p=1.0, snr_db=(20.0, 20.0),
                       segment_s=0.0)
    out = waveform_copy(wave, RATE, np.random.default_rng(0), noisy)
    residual = out - wave
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean(residual ** 2))
    assert snr == pytest.approx(20.0, abs=0.5)


def test_segment_is_cut_from_inside_the_clip() -> None:
    wave = np.linspace(-0.5, 0.5, 5 * RATE, dtype=np.float32)
    cut = CopyParams(speed=(1.0, 1.0), telephone_p=0.0, noise_p=0.0, segment_s=1.0)
    out = waveform_copy(wave, RATE, np.random.default_rng(1), cut)
    assert out.shape[0] == RATE
    start = int(np.argmin(np.abs(wave - out[0])))
    np.testing.assert_allclose(out, wave[start:start + RATE], atol=1e-6)


def test_copies_are_reproducible_and_differ_from_each_other() -> None:
    wave = synth.voice("male", "thirties", seed=1, seconds=5.0, rate=RATE)
    params = CopyParams()
    first = waveform_copy(wave, RATE, preprocess.copy_rng(42, "clip", 1), params)
    again = waveform_copy(wave, RATE, preprocess.copy_rng(42, "clip", 1), params)
    other = waveform_copy(wave, RATE, preprocess.copy_rng(42, "clip", 2), params)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.allclose(first, other)
    assert np.abs(first).max() <= 0.99 + 1e-6


def test_loud_copy_is_kept_below_full_scale() -> None:
    wave = np.clip(synth.tone(200.0, seconds=1.0, rate=RATE) * 10, -1, 1)
    noisy = CopyParams(speed=(1.0, 1.0), telephone_p=0.0, noise_p=1.0, snr_db=(0.0, 0.0),
                       segment_s=0.0)
    out = waveform_copy(wave, RATE, np.random.default_rng(0), noisy)
    assert np.abs(out).max() <= 0.99 + 1e-6


@pytest.mark.parametrize("bad", [{"speed": (1.2, 1.0)}, {"speed": (0.1, 1.0)},
                                 {"telephone_p": 1.5}, {"noise_p": -0.1},
                                 {"snr_db": (30.0, 10.0)}, {"segment_s": -1.0}])
def test_bad_copy_ranges_are_refused(bad: dict) -> None:
    with pytest.raises(ParameterError, match=next(iter(bad))):
        CopyParams(**bad)


def test_negative_copies_are_refused() -> None:
    with pytest.raises(ParameterError, match="augment_copies=-1"):
        PreprocessParams(augment_copies=-1)


# -- the rows ---------------------------------------------------------------------------------


def test_with_copies_adds_marked_rows_after_each_clip() -> None:
    table = pd.DataFrame({"key": ["a", "b"], "audio_path": ["x/a.mp3", "x/b.mp3"],
                          "gender_code": [0, 1]})
    out = preprocess.with_copies(table, 2)
    assert list(out["key"]) == ["a", "a~copy1", "a~copy2", "b", "b~copy1", "b~copy2"]
    assert list(out["copy"]) == [0, 1, 2, 0, 1, 2]
    assert list(out["audio_path"]) == ["x/a.mp3"] * 3 + ["x/b.mp3"] * 3
    assert list(out["gender_code"]) == [0, 0, 0, 1, 1, 1]
    none = preprocess.with_copies(table, 0)
    assert list(none["key"]) == ["a", "b"] and list(none["copy"]) == [0, 0]
    assert list(table.columns) == ["key", "audio_path", "gender_code"]  # input left alone


def test_copy_rng_depends_on_seed_key_and_copy() -> None:
    draw = [preprocess.copy_rng(*args).random() for args in
            ((42, "a", 1), (42, "a", 1), (43, "a", 1), (42, "b", 1), (42, "a", 2))]
    assert draw[0] == draw[1]
    assert len(set(draw[1:])) == 4


# -- preprocessing with copies ----------------------------------------------------------------


def stored(root: Path, split: str) -> tuple[dict, dict[str, dict]]:
    """(shard index, {key: decoded example}) of a split, read without TensorFlow."""
    folder = split_folder(root, split)
    index = json.loads((folder / INDEX_NAME).read_text())
    examples = {}
    for name in index["shards"]:
        scan = scan_shard(folder / name)
        for record in read_records(folder / name, [(o, n) for o, n, *_ in scan.good]):
            example = decode_example(record)
            examples[example["clip/key"].decode()] = example
    return index, examples


@pytest.fixture(scope="module")
def with_two_copies(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("copies")
    root = synth.make_raw_corpus(base / "corpus", per_group={"train": 1, "dev": 1, "test": 1},
                                 seconds=1.5)
    (root / "cv-valid-train" / "cv-valid-train" / "sample-000000.wav").write_bytes(b"junk")
    params = PreprocessParams(dataset_type="raw", num_workers=1, shard_size=10,
                              augment_copies=2)
    summary = preprocess.preprocess(root, params=params, features=FeatureParams(),
                                    results_dir=base / "results")
    return {"root": root, "results": base / "results", "summary": summary, "params": params}


def test_train_gets_two_copies_of_each_good_clip_and_dev_test_none(with_two_copies) -> None:
    root = with_two_copies["root"]
    index, train = stored(root, "train")
    originals = sorted(k for k in train if "~copy" not in k)
    assert len(originals) == 11  # 12 clips, one junk
    assert sorted(train) == sorted(f"{k}{s}" for k in originals for s in ("", "~copy1", "~copy2"))
    assert index["augment_copies"] == 2 and index["copy"]["speed"] == [0.9, 1.1]
    for split in ("dev", "test"):
        index, examples = stored(root, split)
        assert len(examples) == 12 and not any("~copy" in k for k in examples)
        assert "augment_copies" not in index and "copy" not in index


def test_copies_keep_speaker_and_labels_and_differ_in_pixels(with_two_copies) -> None:
    _, train = stored(with_two_copies["root"], "train")
    for key, example in train.items():
        clip = train[key.split("~copy")[0]]
        for field in ("clip/speaker_id", "label/gender", "label/age", "label/gender_age"):
            assert example[field] == clip[field], (key, field)
        if key != key.split("~copy")[0]:
            assert example["image/png"] != clip["image/png"], key


def test_a_bad_clip_is_reported_once_not_per_copy(with_two_copies) -> None:
    report = pd.read_csv(with_two_copies["summary"]["report"])
    bad = report[report["stage"] == "spectrograms"]
    assert list(bad["key"]) == ["sample-000000"]
    assert with_two_copies["summary"]["bad_clips"] == 1
    assert with_two_copies["summary"]["examples"] == {"train": 33, "dev": 12, "test": 12}


def test_rerun_keeps_every_png_and_a_lost_copy_comes_back_identical(with_two_copies) -> None:
    root = with_two_copies["root"]
    folder = root / "Spectrograms" / "cv-valid-train"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("*.png")}
    lost = folder / "sample-000003~copy2.png"
    lost.unlink()
    preprocess.preprocess(root, params=with_two_copies["params"], features=FeatureParams(),
                          results_dir=with_two_copies["results"])
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("*.png")}
    assert after.keys() == before.keys()
    assert after[lost.name][1] == before[lost.name][1]  # remade, byte for byte
    assert {k: v for k, v in after.items() if k != lost.name} == {
        k: v for k, v in before.items() if k != lost.name}  # the others never rewritten


def test_cli_flag_reaches_the_params(tmp_path: Path) -> None:
    args = preprocess_dataset.parse_args(["--dataset_dir", str(tmp_path),
                                          "--augment_copies=3"])
    assert args.augment_copies == 3
    assert preprocess_dataset.parse_args(["--dataset_dir", "x"]).augment_copies == 0


def test_cli_negative_copies_is_one_error_line(tmp_path: Path, capsys) -> None:
    synth.make_raw_corpus(tmp_path, per_group={"train": 1})
    status = preprocess_dataset.main(["--dataset_dir", str(tmp_path), "--dataset_type=raw",
                                      "--augment_copies=-2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0
    assert any("augment_copies=-2 must be >= 0" in line for line in err)

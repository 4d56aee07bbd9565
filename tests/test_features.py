"""Tests of agegender.features: audio file → mono waveform → feature matrix → RGB image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import synth

from agegender import features
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import AudioError
from agegender.features import (clip_image, feature_matrix, load_clip, png_bytes, read_png,
                                 spectrogram_image)

PARAMS = FeatureParams()


def lut_index(image: np.ndarray) -> np.ndarray:
    """Inverts the viridis look-up: uint8 [H, W, 3] image → [H, W] scalar 0-255.

    Two pairs of neighbouring viridis entries round to the same uint8 colour; either index of
    a pair is returned, an error of 1 level out of 255.
    """
    lut = features._viridis_lut().astype(np.int64)  # [256, 3]
    codes = lut[:, 0] << 16 | lut[:, 1] << 8 | lut[:, 2]
    pixels = image.astype(np.int64)
    pixel_codes = pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2]
    order = np.argsort(codes)
    position = np.searchsorted(codes[order], pixel_codes)
    assert np.all(codes[order][np.clip(position, 0, 255)] == pixel_codes), "not a viridis pixel"
    return order[position]


def row_frequency(row: float, params: FeatureParams) -> float:
    """Centre frequency (Hz) of an image row of a ``spectrogram`` image (row 0 = top)."""
    bins = params.n_fft // 2 + 1
    flipped = (row + 0.5) * bins / params.image_size - 0.5  # row of the flipped matrix
    return (bins - 1 - flipped) * params.sample_rate / params.n_fft


@pytest.fixture
def sine_wav(tmp_path: Path) -> Path:
    return synth.write_audio(tmp_path / "sine440.wav", synth.tone(440.0, seconds=0.5))


def assert_image(image: np.ndarray, params: FeatureParams = PARAMS) -> None:
    assert image.shape == params.image_shape == (params.image_size, params.image_size, 3)
    assert image.dtype == np.uint8


# -- inputs of every kind ---------------------------------------------------------------------

def test_sine_gives_a_uint8_rgb_image(sine_wav: Path) -> None:
    image = clip_image(sine_wav, PARAMS)
    assert_image(image)
    assert image.shape == (64, 64, 3)
    assert len(np.unique(lut_index(image))) > 10  # a picture, not a flat colour


def test_noise_gives_an_image_with_contrast(tmp_path: Path) -> None:
    noise = 0.3 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    image = clip_image(synth.write_audio(tmp_path / "noise.wav", noise), PARAMS)
    assert_image(image)
    assert lut_index(image).std() > 5


def test_silence_gives_a_flat_image_without_nan(tmp_path: Path) -> None:
    # A digitally silent file is refused (issue 9: no voice, one flat colour); the feature
    # functions themselves still handle a zero waveform without dividing by zero.
    silent = synth.write_audio(tmp_path / "silence.wav", np.zeros(8000, np.float32))
    with pytest.raises(AudioError, match="silent"):
        load_clip(silent, PARAMS)
    with np.errstate(divide="raise", invalid="raise"):
        matrix = feature_matrix(np.zeros(8000, np.float32), PARAMS)
    assert np.all(np.isfinite(matrix))
    image = spectrogram_image(np.zeros(8000, np.float32), PARAMS)
    assert_image(image)
    # A constant matrix is scaled to all-zero: every pixel is the lowest viridis colour.
    assert np.all(lut_index(image) == 0)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = synth.tone(440.0, seconds=0.5)
    right = synth.tone(1000.0, seconds=0.5)
    stereo = synth.write_audio(tmp_path / "stereo.wav", np.stack([left, right], axis=1))
    waveform = load_clip(stereo, PARAMS)
    assert waveform.ndim == 1
    np.testing.assert_allclose(waveform, (left + right) / 2, atol=1e-4)
    assert_image(clip_image(stereo, PARAMS))


def test_8khz_clip_is_resampled_to_16khz(tmp_path: Path) -> None:
    wave = synth.tone(440.0, seconds=0.5, rate=8000)
    clip = synth.write_audio(tmp_path / "narrow.wav", wave, rate=8000)
    waveform = load_clip(clip, PARAMS)
    assert waveform.dtype == np.float32
    assert abs(waveform.shape[0] - 8000) <= 2  # 0.5 s at 16 kHz
    spectrum = np.abs(np.fft.rfft(waveform))
    peak_hz = np.argmax(spectrum) * PARAMS.sample_rate / waveform.shape[0]
    assert abs(peak_hz - 440.0) < 10
    assert_image(clip_image(clip, PARAMS))


@pytest.mark.parametrize("samples", [1, 10, 100, 255])
def test_clip_shorter_than_one_fft_window(tmp_path: Path, samples: int) -> None:
    # Issue 9: refused with the reason (it became a near-flat image before); the waveform
    # functions still zero-pad a short waveform.
    wave = synth.tone(440.0)[:samples] + np.float32(0.1)
    clip = synth.write_audio(tmp_path / f"short{samples}.wav", wave)
    with pytest.raises(AudioError, match="too short"):
        load_clip(clip, PARAMS)
    assert_image(spectrogram_image(wave, PARAMS))


def test_same_input_gives_identical_png_bytes(tmp_path: Path, sine_wav: Path) -> None:
    copy = tmp_path / "copy.wav"
    copy.write_bytes(sine_wav.read_bytes())
    first = png_bytes(clip_image(sine_wav, PARAMS))
    assert first == png_bytes(clip_image(sine_wav, PARAMS))
    assert first == png_bytes(clip_image(copy, PARAMS))
    assert first.startswith(b"\x89PNG\r\n\x1a\n")


# -- what the image shows ---------------------------------------------------------------------

@pytest.mark.parametrize("frequency", [440.0, 3000.0])
def test_brightest_row_is_the_tone_frequency(tmp_path: Path, frequency: float) -> None:
    clip = synth.write_audio(tmp_path / "tone.wav", synth.tone(frequency, seconds=0.5))
    brightness = lut_index(clip_image(clip, PARAMS)).mean(axis=1)  # [rows]
    row = int(np.argmax(brightness))
    hz_per_row = PARAMS.sample_rate / 2 / PARAMS.image_size
    assert abs(row_frequency(row, PARAMS) - frequency) <= 1.5 * hz_per_row, (row, frequency)


def test_higher_tone_is_drawn_higher_up(tmp_path: Path) -> None:
    rows = {}
    for frequency in (440.0, 3000.0):
        clip = synth.write_audio(tmp_path / f"{frequency:.0f}.wav", synth.tone(frequency))
        rows[frequency] = int(np.argmax(lut_index(clip_image(clip, PARAMS)).mean(axis=1)))
    assert rows[3000.0] < rows[440.0]  # low rows = high frequencies
    assert rows[440.0] > PARAMS.image_size * 3 // 4  # 440 Hz is near the bottom


@pytest.mark.parametrize("feature_type, rows", [("spectrogram", 129), ("mel", 64),
                                                ("mfcc", 40)])
def test_every_feature_type_works(sine_wav: Path, feature_type: str, rows: int) -> None:
    params = FeatureParams(feature_type=feature_type)
    matrix = feature_matrix(load_clip(sine_wav, params), params)
    assert matrix.shape[0] == rows == params.freq_bins
    assert np.all(np.isfinite(matrix))
    image = clip_image(sine_wav, params)
    assert_image(image, params)
    if feature_type != "spectrogram":
        assert not np.array_equal(image, clip_image(sine_wav, PARAMS))


def test_mel_brightest_row_moves_up_with_frequency(tmp_path: Path) -> None:
    params = FeatureParams(feature_type="mel")
    rows = []
    for frequency in (300.0, 1000.0, 4000.0):
        clip = synth.write_audio(tmp_path / f"{frequency:.0f}.wav", synth.tone(frequency))
        rows.append(int(np.argmax(lut_index(clip_image(clip, params)).mean(axis=1))))
    assert rows[0] > rows[1] > rows[2]


def test_image_size_is_honoured(sine_wav: Path) -> None:
    params = FeatureParams(image_size=32)
    image = clip_image(sine_wav, params)
    assert image.shape == (32, 32, 3)


# -- max_duration_s ---------------------------------------------------------------------------

def test_max_duration_reads_only_the_first_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    wave = (synth.tone(440.0, seconds=3.0)
            + 0.05 * rng.standard_normal(48_000).astype(np.float32))
    wave[16_000:] += synth.tone(2500.0, seconds=2.0)  # later seconds look different
    long_clip = synth.write_audio(tmp_path / "long.wav", wave)
    head_clip = synth.write_audio(tmp_path / "head.wav", wave[:16_000])
    params = FeatureParams(max_duration_s=1.0)
    assert load_clip(long_clip, params).shape == (params.max_samples,) == (16_000,)
    np.testing.assert_array_equal(clip_image(long_clip, params), clip_image(head_clip, params))
    assert not np.array_equal(clip_image(long_clip, PARAMS), clip_image(head_clip, PARAMS))


def test_max_duration_caps_resampled_clips(tmp_path: Path) -> None:
    clip = synth.write_audio(tmp_path / "long8k.wav", synth.tone(300.0, seconds=3.0, rate=8000),
                             rate=8000)
    params = FeatureParams(max_duration_s=0.5)
    assert load_clip(clip, params).shape == (8000,)


# -- bad files --------------------------------------------------------------------------------

def _missing(directory: Path) -> Path:
    return directory / "missing-clip.mp3"


def _empty(directory: Path) -> Path:
    path = directory / "empty-clip.mp3"
    path.write_bytes(b"")
    return path


def _corrupt(directory: Path) -> Path:
    path = directory / "corrupt-clip.mp3"
    path.write_bytes(np.random.default_rng(3).bytes(4000))
    return path


def _text(directory: Path) -> Path:
    path = directory / "text-clip.mp3"
    path.write_text("this is a text file, not audio\n" * 20)
    return path


def _truncated_wav(directory: Path) -> Path:
    good = synth.write_audio(directory / "whole.wav", synth.tone(440.0, seconds=0.2))
    path = directory / "truncated-clip.wav"
    path.write_bytes(good.read_bytes()[:30])  # half a RIFF header
    return path


@pytest.mark.parametrize("make, words", [
    (_missing, "not found"),
    (_empty, "empty"),
    (_corrupt, "corrupt"),
    (_text, "corrupt"),
    (_truncated_wav, "corrupt"),
])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path: Path, make, words: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError) as raised:
        load_clip(path, PARAMS)
    assert path.name in str(raised.value)
    assert words in str(raised.value)
    with pytest.raises(AudioError, match=path.name):
        clip_image(path, PARAMS)


def test_a_folder_is_not_an_audio_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(AudioError, match="folder.wav"):
        load_clip(folder, PARAMS)


def test_two_dimensional_waveform_is_refused() -> None:
    with pytest.raises(AudioError, match="1-D"):
        feature_matrix(np.zeros((100, 2), np.float32), PARAMS)


# -- PNG and train/serve identity -------------------------------------------------------------

def test_png_round_trip_is_lossless(sine_wav: Path) -> None:
    image = clip_image(sine_wav, PARAMS)
    np.testing.assert_array_equal(read_png(png_bytes(image)), image)


def test_shipped_clips_give_the_stored_images() -> None:
    """The paper preset's images of the shipped CC0 clips (decode, resample, speech gate,
    STFT, dB, resize, viridis, PNG) equal, pixel for pixel, those stored in
    ``tests/data/shipped_clip_images.npz`` (made at ea0875c, before the gate, PNG writer and
    default inputs were made cheaper): a trained MAM-CNN sees the same input."""
    from agegender.features import load_speech, spectrogram_image

    root = Path(__file__).resolve().parents[1]
    stored = np.load(root / "tests" / "data" / "shipped_clip_images.npz")
    assert len(stored["names"]) == 6
    for name, expected in zip(stored["names"], stored["images"], strict=True):
        image = spectrogram_image(load_speech(root / "models" / "pretrained" / "clips" / name,
                                              PARAMS), PARAMS)
        difference = np.abs(image.astype(int) - expected).max()
        assert difference == 0, f"{name}: pixels differ by up to {difference} levels"
        np.testing.assert_array_equal(read_png(png_bytes(image)), expected)


def test_preprocessed_png_equals_clip_image(tmp_path: Path) -> None:
    from agegender import preprocess  # noqa: PLC0415

    root = synth.make_raw_corpus(tmp_path / "corpus",
                                 per_group={"train": 1, "dev": 0, "test": 0}, seconds=0.5)
    rate8k = synth.write_audio(root / "cv-valid-train" / "cv-valid-train" / "rate8k.wav",
                               synth.voice("male", "twenties", seed=77, seconds=0.5, rate=8000),
                               rate=8000)  # a voice: a pure tone is 'no speech' to the gate
    synth.append_csv(root / "cv-valid-train.csv",
                     [synth.v1_row("cv-valid-train/rate8k.wav", age="twenties", gender="male")])
    params = PreprocessParams(dataset_type="raw", num_workers=1)
    preprocess.preprocess(root, params=params, features=PARAMS, results_dir=tmp_path / "results",
                          stages=("clean", "spectrograms"))
    manifest = preprocess.read_clean_manifest(root, "train")
    assert len(manifest) == 13
    for row in manifest.itertuples(index=False):
        stored = read_png(preprocess.png_path(root, "train", row.key).read_bytes())
        np.testing.assert_array_equal(stored, clip_image(root / row.audio_path, PARAMS))
    assert sf.info(rate8k).samplerate == 8000


def test_stft_and_db_match_librosa():
    """Our direct STFT and dB conversion equal librosa's (the reference implementation)."""
    import librosa

    from agegender.features import amplitude_db, stft_magnitude

    rng = np.random.default_rng(11)
    for length in (100, 256, 4001, 16000):
        wave = rng.standard_normal(length).astype(np.float32) * 0.1
        padded = np.pad(wave, (0, max(0, 256 - length)))
        ours = stft_magnitude(wave, 256, 128)
        reference = np.abs(librosa.stft(padded, n_fft=256, hop_length=128, center=True,
                                        pad_mode="constant"))
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=2e-5)
        np.testing.assert_allclose(amplitude_db(reference, 80.0),
                                   librosa.amplitude_to_db(reference, ref=np.max, top_db=80.0),
                                   atol=1e-3)
    silent = amplitude_db(np.zeros((129, 10), np.float32), 80.0)
    assert np.all(np.isfinite(silent)) and np.ptp(silent) == 0.0

"""Leave-speakers-out probe of the feature presets on real speech, and the channel check.

Real speech: ``~/.cache/agegender/real_speech/dataset/manifest.csv`` (path, gender, speaker,
channel; made by ``bench/real_speech.py``). Each split trains the MAM-CNN (gender, balanced
class weights, a fixed number of epochs, the last epoch's model: no test speaker chooses a
checkpoint) on the other speakers and reports, per unseen speaker, the share of its clips
called right, and the split's clip UAR. Images come from ``features.clip_image`` (the
product's path); models from ``model.build_model``; augmentation from
``pipeline.spec_augment``.

Channel check (``--channel``): the same voices at their own rate and through a simulated
telephone line (``channel.telephone``: 8 kHz, 300-3400 Hz, μ-law or GSM 06.10), mean
|difference| of the 0-1 images, beside the male/female distance of two synthetic voices.

Usage:
    python bench/feature_probe.py [--epochs 10] [--variants paper,voice,voice+augment]
    python bench/feature_probe.py --channel
    python bench/feature_probe.py --speed
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from agegender.config import FeatureParams  # noqa: E402

MANIFEST = Path.home() / ".cache/agegender/real_speech/dataset/manifest.csv"
# Test speakers of each split: every split holds both genders on both channels where the
# corpus allows (it has one telephone man, Carlo Flora); every speaker is tested at least once.
SPLITS = {
    "A": ("june_wallack", "carlo_flora", "gabriela_pysna", "nl_big_fish"),
    "B": ("allison_smith", "paola_dal_zot", "vit_musil", "nl_small_fish"),
    "C": ("ivrvoice_ru", "carlo_flora", "cs_corridor_r", "gabriela_pysna"),
}
VARIANTS = {
    "paper": (FeatureParams.preset("paper"), False),
    "paper+augment": (FeatureParams.preset("paper"), True),
    "voice": (FeatureParams.preset("voice"), False),  # freq_norm="envelope"
    "voice+augment": (FeatureParams.preset("voice"), True),
    "voice-none": (FeatureParams.preset("voice", freq_norm="none"), False),
    "voice-none+augment": (FeatureParams.preset("voice", freq_norm="none"), True),
    "voice-mean": (FeatureParams.preset("voice", freq_norm="mean"), False),
}
GENDERS = ("male", "female")


def images_of(table: pd.DataFrame, params: FeatureParams) -> np.ndarray:
    from agegender.features import clip_image  # noqa: PLC0415

    root = MANIFEST.parent
    return np.stack([clip_image(root / path, params) for path in table["path"]])


def fit_and_predict(x_train, y_train, x_test, *, augment: bool, epochs: int, seed: int):
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from agegender.config import ModelParams  # noqa: PLC0415
    from agegender.model import build_model  # noqa: PLC0415
    from agegender.pipeline import spec_augment  # noqa: PLC0415
    from agegender.training import balanced_class_weight  # noqa: PLC0415

    keras.utils.set_random_seed(seed)
    height, width = x_train.shape[1:3]
    model = build_model(ModelParams(image_size=height, image_width=width, num_classes=2,
                                    task="gender", class_names=GENDERS))
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((x_train.astype(np.float32), y_train))
    data = data.shuffle(len(y_train), seed=seed).batch(32)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds)).map(
            lambda batch, pair: (spec_augment(batch[0], pair), batch[1]))
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0,
              class_weight=balanced_class_weight(y_train, 2))
    seconds = (time.perf_counter() - start) / epochs
    return model.predict(x_test.astype(np.float32), verbose=0).argmax(axis=1), seconds


def real_speech(epochs: int, variants: list[str], splits: list[str]) -> None:
    from sklearn.metrics import balanced_accuracy_score  # noqa: PLC0415

    table = pd.read_csv(MANIFEST)
    table = table[table["gender"].isin(GENDERS)].reset_index(drop=True)
    y = table["gender"].map(GENDERS.index).to_numpy(np.int32)
    speakers = table.groupby("speaker").agg(gender=("gender", "first"),
                                            channel=("channel", "first"),
                                            clips=("path", "size"))
    print(f"{len(table)} clips, {len(speakers)} speakers "
          f"({(speakers['gender'] == 'male').sum()} male); epochs {epochs}, batch 32, lr 1e-4")
    rows, uar = [], {}
    cache: dict[str, np.ndarray] = {}
    for name in variants:
        params, augment = VARIANTS[name]
        key = repr(params)
        if key not in cache:
            start = time.perf_counter()
            cache[key] = images_of(table, params)
            print(f"{name}: images {cache[key].shape[1:]} in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        x = cache[key]
        for split in splits:
            test = table["speaker"].isin(SPLITS[split]).to_numpy()
            predicted, epoch_s = fit_and_predict(x[~test], y[~test], x[test], augment=augment,
                                                 epochs=epochs, seed=42)
            truth = y[test]
            uar[(name, split)] = balanced_accuracy_score(truth, predicted)
            for speaker in SPLITS[split]:
                mine = table["speaker"][test].to_numpy() == speaker
                rows.append({"variant": name, "split": split, "speaker": speaker,
                             "gender": speakers.loc[speaker, "gender"],
                             "channel": speakers.loc[speaker, "channel"],
                             "right": float(np.mean(predicted[mine] == truth[mine]))})
            print(f"  {name} split {split}: UAR {uar[(name, split)]:.2f} "
                  f"({epoch_s:.1f} s an epoch); right: " + ", ".join(
                      f"{row['speaker']} {row['right']:.2f}" for row in rows[-len(SPLITS[split]):]),
                  flush=True)
    result = pd.DataFrame(rows)
    wide = result.pivot_table(index=["speaker", "gender", "channel", "split"],
                              columns="variant", values="right")[variants]
    print("\nshare of each unseen speaker's clips called right:")
    print(wide.round(2).to_string())
    print("\nclip UAR per split:")
    print(pd.DataFrame({name: [uar[(name, s)] for s in splits] for name in variants},
                       index=splits).round(2).to_string())


def channel_check() -> None:
    import soundfile as sf  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import synth  # noqa: PLC0415

    from agegender import features  # noqa: PLC0415
    from agegender.channel import telephone  # noqa: PLC0415

    lut = features._viridis_lut().astype(np.int64)
    codes = lut[:, 0] << 16 | lut[:, 1] << 8 | lut[:, 2]
    order = np.argsort(codes)

    def scalar(wave, rate, params):
        if rate != params.sample_rate:
            wave = soxr.resample(wave, rate, params.sample_rate, quality="HQ")
        rgb = features.spectrogram_image(wave.astype(np.float32), params).astype(np.int64)
        pixel = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
        return order[np.searchsorted(codes[order], pixel)] / 255.0

    table = pd.read_csv(MANIFEST)
    wide = table[table["channel"] != "8k-telephone"].groupby("speaker").head(2)
    voices = []
    for path in wide["path"]:
        wave, rate = sf.read(MANIFEST.parent / path, dtype="float32")
        voices.append((wave.mean(axis=1) if wave.ndim > 1 else wave, rate))
    male = synth.voice("male", "thirties", seed=1, seconds=3.0, rate=44_100)
    female = synth.voice("female", "thirties", seed=2, seconds=3.0, rate=44_100)
    print(f"{len(voices)} real wideband clips; mean |image difference| (0-1 images)")
    print(f"{'variant':12s} {'mu-law':>7s} {'GSM':>7s} {'tilt+mu':>8s} {'gain/20':>8s} "
          f"{'male-female':>12s}")
    import scipy.signal  # noqa: PLC0415

    for name in ("paper", "voice-none", "voice-mean", "voice"):
        params = VARIANTS[name][0]
        diffs = {"mulaw": [], "gsm": [], "tilt": [], "gain": []}
        for wave, rate in voices:
            clean = scalar(wave, rate, params)
            for codec in ("mulaw", "gsm"):
                diffs[codec].append(np.abs(clean - scalar(telephone(wave, rate, codec=codec),
                                                          8000, params)).mean())
            tilted = scipy.signal.lfilter([1.0, -0.9], [1.0], wave).astype(np.float32)
            diffs["tilt"].append(np.abs(clean - scalar(telephone(tilted, rate), 8000,
                                                       params)).mean())
            diffs["gain"].append(np.abs(clean - scalar(0.1 * wave, rate, params)).mean())
        speaker = np.abs(scalar(male, 44_100, params) - scalar(female, 44_100, params)).mean()
        print(f"{name:12s} {np.mean(diffs['mulaw']):7.3f} {np.mean(diffs['gsm']):7.3f} "
              f"{np.mean(diffs['tilt']):8.3f} {np.mean(diffs['gain']):8.4f} {speaker:12.3f}")


def speed(runs: int = 20) -> None:
    """CPU ms of ``clip_image`` on a 5-s 48 kHz MP3, paper vs voice interleaved; warm
    detector latency (decode → features → model, crops included) for both presets."""
    import tempfile  # noqa: PLC0415

    import soundfile as sf  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import synth  # noqa: PLC0415

    from agegender import AgeGenderDetector  # noqa: PLC0415
    from agegender.config import ModelParams  # noqa: PLC0415
    from agegender.features import clip_image  # noqa: PLC0415
    from agegender.model import build_model  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp())
    clip = tmp / "clip.mp3"
    sf.write(clip, synth.voice("female", "twenties", seed=1, seconds=5.0, rate=48_000),
             48_000, format="MP3")
    presets = {"paper": FeatureParams.preset("paper"), "voice": FeatureParams.preset("voice")}
    times = {name: [] for name in presets}
    for name, params in presets.items():
        clip_image(clip, params)  # warm caches (window, LUT, imports)
    for _ in range(runs):
        for name, params in presets.items():
            start = time.process_time()
            clip_image(clip, params)
            times[name].append(1000 * (time.process_time() - start))
    paper, voice = (float(np.median(times[name])) for name in presets)
    print(f"clip_image, CPU ms per 5-s 48 kHz MP3 (median of {runs}): paper {paper:.2f}, "
          f"voice {voice:.2f}, voice/paper {voice / paper:.2f}")
    for name, params in presets.items():
        height, width, _ = params.image_shape
        model = build_model(ModelParams(image_size=height, image_width=width, num_classes=2,
                                        task="gender", class_names=GENDERS),
                            features=dataclasses.asdict(params))
        model.save(tmp / f"{name}.keras")
    from agegender.features import clip_images  # noqa: PLC0415

    for name, max_crops, precision in (("paper", 1, "float32"), ("voice", 1, "float32"),
                                       ("voice", 3, "float32"), ("voice", 3, "bfloat16")):
        params = presets[name]
        detector = AgeGenderDetector(tmp / f"{name}.keras", num_threads=1,
                                     max_crops=max_crops, precision=precision)
        crops = len(clip_images(clip, params, max_crops))
        for _ in range(3):
            detector.predict([clip])
        wall, cpu = [], []
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            detector.predict([clip])
            wall.append(1000 * (time.perf_counter() - start))
            cpu.append(1000 * (time.process_time() - start_cpu))
        height, width, _ = params.image_shape
        print(f"warm detector latency, {name}, {crops} crop(s) of {height}×{width}, "
              f"{precision}: {np.median(wall):.1f} ms wall, {np.median(cpu):.1f} CPU ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--variants", default="paper,voice,voice+augment")
    parser.add_argument("--splits", default="A,B,C")
    parser.add_argument("--channel", action="store_true", help="run the channel check only")
    parser.add_argument("--speed", action="store_true", help="time features and inference only")
    args = parser.parse_args()
    if args.speed:
        speed()
        return
    if args.channel:
        channel_check()
        return
    real_speech(args.epochs, args.variants.split(","), args.splits.split(","))


if __name__ == "__main__":
    main()

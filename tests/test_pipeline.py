"""Tests of agegender.pipeline: the tf.data input over the shards, and what preprocessing puts
in them (round trip from audio to batches, shuffled training shards)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import synth
import tensorflow as tf

from agegender import pipeline, preprocess
from agegender.config import FeatureParams, PreprocessParams
from agegender.errors import DatasetError, ParameterError
from agegender.features import clip_image, read_png
from agegender.pipeline import make_dataset, split_folder, split_labels
from agegender.tfrecords import INDEX_NAME, feature_spec, shard_name, write_shards

TASKS = ("gender", "age", "gender_age")
FEATURES = FeatureParams()


def write_split(root: Path, split: str, examples: list, *, shard_size: int = 4,
                tasks: tuple[str, ...] = TASKS, image_size: int = 16) -> dict:
    by_key = {example.key: example for example in examples}
    return write_shards(split_folder(root, split), list(by_key), by_key.__getitem__,
                        shard_size=shard_size,
                        metadata={"image_shape": [image_size, image_size, 3],
                                  "tasks": list(tasks)})


def collect(dataset) -> dict[str, tuple]:
    """{key: (image uint8, label, speaker)} of a with_keys dataset."""
    out = {}
    for inputs, labels_, keys, speakers in dataset:
        assert list(inputs) == ["spectrogram"]  # the paper's model reads the image alone
        images = inputs["spectrogram"]
        assert images.dtype == tf.float32
        for image, label, key, speaker in zip(images.numpy(), labels_.numpy(), keys.numpy(),
                                              speakers.numpy(), strict=True):
            assert key.decode() not in out, "an example came twice"
            out[key.decode()] = (image.astype(np.uint8), int(label), speaker.decode())
    return out


@pytest.fixture
def shard_root(tmp_path: Path) -> tuple[Path, list]:
    examples = synth.random_examples(10, image_size=16)
    write_split(tmp_path, "dev", examples)
    return tmp_path, examples


# -- synthetic shards -------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_round_trip_images_labels_keys_speakers(shard_root, task: str) -> None:
    root, examples = shard_root
    dataset, index = make_dataset(root, "dev", task, batch_size=3, training=False,
                                  with_keys=True)
    assert index["num_examples"] == 10
    got = collect(dataset)
    assert set(got) == {example.key for example in examples}
    for example in examples:
        image, label, speaker = got[example.key]
        np.testing.assert_array_equal(image, read_png(example.png))
        assert label == example.label_codes[task]
        assert speaker == example.speaker_id


def test_batches_have_the_declared_shape_and_cardinality(shard_root) -> None:
    root, _ = shard_root
    dataset, _ = make_dataset(root, "dev", "age", batch_size=4, training=False)
    assert int(dataset.cardinality()) == math.ceil(10 / 4)
    batches = list(dataset)
    assert [int(inputs["spectrogram"].shape[0]) for inputs, _ in batches] == [4, 4, 2]
    inputs, labels_ = batches[0]
    images = inputs["spectrogram"]
    assert images.shape[1:] == (16, 16, 3) and images.dtype == tf.float32
    assert labels_.dtype == tf.int32
    assert float(tf.reduce_max(images)) <= 255.0 and float(tf.reduce_max(images)) > 1.0


def test_training_dataset_gives_every_example_once_an_epoch(shard_root) -> None:
    root, examples = shard_root
    dataset, _ = make_dataset(root, "dev", "gender", batch_size=5, training=True, seed=1,
                              with_keys=True)
    for _ in range(2):
        assert set(collect(dataset)) == {example.key for example in examples}
    # Training drops a partial last batch: 10 examples at batch 4 give 2 batches, 8 distinct.
    dropping, _ = make_dataset(root, "dev", "gender", batch_size=4, training=True, seed=1,
                               with_keys=True)
    keys = collect(dropping)
    assert len(keys) == len(set(keys)) == 8


def test_cached_dataset_equals_uncached(shard_root) -> None:
    root, _ = shard_root
    plain, _ = make_dataset(root, "dev", "age", batch_size=4, training=False, with_keys=True)
    cached, _ = make_dataset(root, "dev", "age", batch_size=4, training=False,
                             with_keys=True, cache=True)
    first, second = collect(plain), collect(cached)
    assert first.keys() == second.keys()
    for key, (image, label, _) in first.items():
        np.testing.assert_array_equal(image, second[key][0])
        assert label == second[key][1]


def test_split_labels_in_stored_order(shard_root) -> None:
    root, examples = shard_root
    codes = split_labels(root, "dev", "gender_age")
    assert codes.dtype == np.int32
    assert codes.tolist() == [example.label_codes["gender_age"] for example in examples]


def test_task_without_labels_is_a_dataset_error(tmp_path: Path) -> None:
    write_split(tmp_path, "train", synth.random_examples(4, tasks=("gender",)),
                tasks=("gender",))
    make_dataset(tmp_path, "train", "gender", batch_size=2, training=False)
    with pytest.raises(DatasetError, match="'age'"):
        make_dataset(tmp_path, "train", "age", batch_size=2, training=False)


def test_unknown_task_is_a_parameter_error(shard_root) -> None:
    root, _ = shard_root
    with pytest.raises(ParameterError, match="'voice'"):
        make_dataset(root, "dev", "voice", batch_size=2, training=False)


def test_image_size_mismatch_is_a_parameter_error(shard_root) -> None:
    root, _ = shard_root
    make_dataset(root, "dev", "age", batch_size=2, training=False, image_size=16)
    with pytest.raises(ParameterError, match="image_size=64"):
        make_dataset(root, "dev", "age", batch_size=2, training=False, image_size=64)


def test_empty_split_is_a_dataset_error(tmp_path: Path) -> None:
    write_split(tmp_path, "test", [])
    with pytest.raises(DatasetError, match="no examples"):
        make_dataset(tmp_path, "test", "age", batch_size=2, training=False)


def test_missing_split_is_a_dataset_error(shard_root) -> None:
    root, _ = shard_root
    with pytest.raises(DatasetError, match="cv-valid-train"):
        make_dataset(root, "train", "age", batch_size=2, training=False)


def test_incomplete_index_is_a_dataset_error(shard_root) -> None:
    root, _ = shard_root
    index_path = split_folder(root, "dev") / INDEX_NAME
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "complete": False}))
    with pytest.raises(DatasetError, match="incomplete"):
        make_dataset(root, "dev", "age", batch_size=2, training=False)


def test_unknown_split_is_a_parameter_error(shard_root) -> None:
    root, _ = shard_root
    with pytest.raises(ParameterError, match="'valid'"):
        make_dataset(root, "valid", "age", batch_size=2, training=False)


# -- shards made by preprocessing -------------------------------------------------------------

@pytest.fixture(scope="module")
def cv_corpus(tmp_path_factory) -> Path:
    """A preprocessed modern-Common-Voice corpus: 20 speakers × 2 clips, speaker ids kept."""
    root = synth.make_cv_corpus(tmp_path_factory.mktemp("cv"), speakers=20,
                                clips_per_speaker=2, seconds=0.4)
    preprocess.preprocess(root, params=PreprocessParams(dataset_type="cv", num_workers=1,
                                                        shard_size=8),
                          features=FEATURES, results_dir=root.parent / "results")
    return root


@pytest.fixture(scope="module")
def raw_corpus(tmp_path_factory) -> Path:
    """A preprocessed raw corpus, train only; its manifest lists male clips before female."""
    root = synth.make_raw_corpus(tmp_path_factory.mktemp("raw"),
                                 per_group={"train": 2, "dev": 0, "test": 0}, seconds=0.3)
    preprocess.preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=1,
                                                        shard_size=6),
                          features=FEATURES, results_dir=root.parent / "results")
    return root


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_preprocessed_round_trip(cv_corpus: Path, split: str) -> None:
    manifest = preprocess.read_clean_manifest(cv_corpus, split).set_index("key")
    for task in TASKS:
        dataset, index = make_dataset(cv_corpus, split, task, batch_size=5, training=False,
                                      with_keys=True, image_size=64)
        got = collect(dataset)
        assert set(got) == set(manifest.index)
        assert index["num_examples"] == len(manifest) > 0
        for key, (image, label, speaker) in got.items():
            row = manifest.loc[key]
            assert label == row[f"{task}_code"]
            assert speaker == row["speaker_id"] and speaker.startswith("client")
            if task == "gender":
                png = preprocess.png_path(cv_corpus, split, key).read_bytes()
                np.testing.assert_array_equal(image, read_png(png))
                np.testing.assert_array_equal(image,
                                              clip_image(cv_corpus / row["audio_path"], FEATURES))


def test_preprocessed_speakers_match_the_tsv(cv_corpus: Path) -> None:
    dataset, _ = make_dataset(cv_corpus, "test", "gender", batch_size=8, training=False,
                              with_keys=True)
    got = collect(dataset)
    # make_cv_corpus puts the last 10 % of speakers (client018, client019) in test.tsv.
    assert {speaker for _, _, speaker in got.values()} == {"client018", "client019"}
    assert got["common_voice_en_01800"][1] == 0  # client018 is male_masculine → male 0
    assert got["common_voice_en_01900"][1] == 1


def _stored_records(root: Path, split: str) -> list[dict]:
    index = pipeline.split_index(root, split)
    folder = split_folder(root, split)
    spec = feature_spec()
    return [[{name: value.numpy() for name, value in
              tf.io.parse_single_example(record, spec).items()}
             for record in tf.data.TFRecordDataset(str(folder / name))]
            for name in index["shards"]]


def test_train_shards_are_shuffled_not_grouped_by_class(raw_corpus: Path) -> None:
    manifest = preprocess.read_clean_manifest(raw_corpus, "train")
    assert len(manifest) == 24
    assert list(manifest["gender"][:12]) == ["male"] * 12  # the manifest is grouped
    shards = _stored_records(raw_corpus, "train")
    assert [len(shard) for shard in shards] == [6, 6, 6, 6]
    stored = [record["clip/key"].decode() for shard in shards for record in shard]
    assert sorted(stored) == sorted(manifest["key"])
    assert stored != list(manifest["key"])
    for shard in shards:
        assert {int(record["label/gender"]) for record in shard} == {0, 1}
        assert len({int(record["label/gender_age"]) for record in shard}) >= 3


def test_train_shuffle_is_seeded(raw_corpus: Path, tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415

    again = tmp_path / "again"
    shutil.copytree(raw_corpus, again, symlinks=True)
    for index_path in (again / "TFRecord").rglob(INDEX_NAME):
        index_path.unlink()
    preprocess.run_tfrecords(again, FEATURES,
                             PreprocessParams(dataset_type="raw", num_workers=1, shard_size=6))
    first = [r["clip/key"] for shard in _stored_records(raw_corpus, "train") for r in shard]
    second = [r["clip/key"] for shard in _stored_records(again, "train") for r in shard]
    assert first == second
    preprocess.run_tfrecords(again, FEATURES, PreprocessParams(
        dataset_type="raw", num_workers=1, shard_size=6, seed=3))
    third = [r["clip/key"] for shard in _stored_records(again, "train") for r in shard]
    assert sorted(third) == sorted(first) and third != first


def test_empty_dev_split_is_reported_by_the_pipeline(raw_corpus: Path) -> None:
    assert pipeline.split_index(raw_corpus, "train")["num_examples"] == 24
    with pytest.raises(DatasetError, match="dev split holds no examples"):
        make_dataset(raw_corpus, "dev", "age", batch_size=4, training=False)


def test_shard_files_follow_the_template(raw_corpus: Path) -> None:
    folder = split_folder(raw_corpus, "train")
    assert sorted(path.name for path in folder.glob("*.tfrecord")) == [
        shard_name(i) for i in range(4)]


# -- issue 10: examples labelled for one task only --------------------------------------------

def test_gender_only_examples_serve_gender_not_age(tmp_path: Path) -> None:
    examples = synth.random_examples(10, image_size=16)
    # Examples 0-3 have a gender label only (age and gender_age -1, as cleaning stores them).
    partial = [dataclasses.replace(e, label_codes={"gender": e.label_codes["gender"]})
               for e in examples[:4]]
    examples = partial + examples[4:]
    counts = {"gender": {"examples": 10}, "age": {"examples": 6}, "gender_age": {"examples": 6}}
    by_key = {example.key: example for example in examples}
    write_shards(split_folder(tmp_path, "dev"), list(by_key), by_key.__getitem__, shard_size=4,
                 metadata={"image_shape": [16, 16, 3], "tasks": list(TASKS),
                           "task_counts": counts})
    gender, _ = make_dataset(tmp_path, "dev", "gender", batch_size=4, training=False,
                             with_keys=True)
    assert len(collect(gender)) == 10
    for cache in (False, True):
        age, index = make_dataset(tmp_path, "dev", "age", batch_size=4, training=False,
                                  with_keys=True, cache=cache)
        assert int(age.cardinality()) == math.ceil(6 / 4)
        got = collect(age)
        assert set(got) == {example.key for example in examples[4:]}
        assert all(label >= 0 for _, label, _ in got.values())
    training, _ = make_dataset(tmp_path, "dev", "age", batch_size=4, training=True, seed=2)
    # 6 labelled for age; training drops the partial batch: one batch of 4.
    assert [int(labels_.shape[0]) for _, labels_ in training] == [4]
    assert split_labels(tmp_path, "dev", "age").tolist() == [e.label_codes["age"]
                                                             for e in examples[4:]]
    assert len(split_labels(tmp_path, "dev", "gender")) == 10


def test_task_with_no_labelled_example_is_a_dataset_error(tmp_path: Path) -> None:
    examples = synth.random_examples(3, tasks=("gender",))
    write_split(tmp_path, "test", examples)  # index claims every task, counts say none
    index_path = split_folder(tmp_path, "test") / INDEX_NAME
    index = json.loads(index_path.read_text())
    index["task_counts"] = {"gender": {"examples": 3}, "age": {"examples": 0},
                            "gender_age": {"examples": 0}}
    index_path.write_text(json.dumps(index))
    with pytest.raises(DatasetError,
                       match="no example of the test split has a label for cls_task='age'"):
        make_dataset(tmp_path, "test", "age", batch_size=2, training=False)


# -- SpecAugment ------------------------------------------------------------------------------

def test_spec_augment_masks_whole_rows_and_columns_deterministically() -> None:
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (6, 32, 16, 3)), tf.float32)
    seed = tf.constant([7, 9], tf.int64)
    first = pipeline.spec_augment(images, seed).numpy()
    assert first.shape == (6, 32, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, pipeline.spec_augment(images, seed).numpy())
    assert not np.array_equal(first, pipeline.spec_augment(images, tf.constant([1, 2])).numpy())
    changed = np.any(first != images.numpy(), axis=-1)  # [batch, H, W]
    assert 0.02 < changed.mean() < 0.6
    mean = images.numpy().mean(axis=(1, 2))  # [batch, 3]
    for image, mask, fill in zip(first, changed, mean, strict=True):
        np.testing.assert_allclose(image[mask], np.broadcast_to(fill, image[mask].shape),
                                   rtol=1e-5)
        # A mask is a whole row (frequency band) or a whole column (time span).
        rows, columns = mask.all(axis=1), mask.all(axis=0)
        np.testing.assert_array_equal(mask, rows[:, None] | columns[None, :])


def test_augment_changes_training_batches_only(shard_root) -> None:
    root, examples = shard_root
    original = {example.key: read_png(example.png).astype(np.float32) for example in examples}
    augmented = collect(make_dataset(root, "dev", "gender", batch_size=4, training=True,
                                     seed=3, with_keys=True, augment=True)[0])
    # Training drops the partial last batch (batches of 4).
    assert set(augmented) <= set(original) and len(augmented) == len(original) // 4 * 4
    changed = 0
    for key, (image, _, _) in augmented.items():
        assert image.shape == original[key].shape
        mask = np.any(image != original[key].astype(np.uint8), axis=-1)  # [H, W]
        rows, columns = mask.all(axis=1), mask.all(axis=0)
        np.testing.assert_array_equal(mask, rows[:, None] | columns[None, :])
        changed += bool(mask.any())
    assert changed >= len(original) // 2
    # Evaluation data is never augmented, even when asked.
    dev = collect(make_dataset(root, "dev", "gender", batch_size=4, training=False,
                               with_keys=True, augment=True)[0])
    for key, (image, _, _) in dev.items():
        np.testing.assert_array_equal(image, original[key].astype(np.uint8))


# -- issue 21 items 6 and 10: every record's channels and labels against the index -----------

def _grey_png(size: int, seed: int) -> bytes:
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_one_channel_pngs_where_the_index_says_three_are_named(tmp_path: Path) -> None:
    examples = synth.random_examples(8, image_size=16)
    examples[5] = dataclasses.replace(examples[5], png=_grey_png(16, 5))
    write_split(tmp_path, "dev", examples)
    with pytest.raises(DatasetError) as raised:
        make_dataset(tmp_path, "dev", "gender", batch_size=4, training=False)
    message = str(raised.value)
    assert f"{shard_name(1)}: record 1 (byte " in message
    assert "image has 1 channel(s), the index says 3" in message and "\n" not in message
    # --skip_corrupt goes on without it.
    data, index = make_dataset(tmp_path, "dev", "gender", batch_size=4, training=False,
                               with_keys=True, skip_corrupt=True)
    assert sorted(collect(data)) == sorted(e.key for i, e in enumerate(examples) if i != 5)
    assert index["corrupt"]["records"] == 1


@pytest.mark.parametrize("task, code", [("gender", 7), ("age", 6), ("gender_age", -2)])
def test_out_of_range_label_in_a_record_is_named(tmp_path: Path, task: str, code: int) -> None:
    examples = synth.random_examples(8, image_size=16)
    examples[2] = dataclasses.replace(examples[2],
                                      label_codes={**examples[2].label_codes, task: code})
    write_split(tmp_path, "dev", examples)
    with pytest.raises(DatasetError, match=rf"{shard_name(0)}: record 2 \(byte \d+\): "
                                           rf"label/{task} is {code}, outside 0\.\."):
        make_dataset(tmp_path, "dev", task, batch_size=4, training=True)


def test_index_counting_classes_of_another_task_is_refused(tmp_path: Path) -> None:
    examples = synth.random_examples(4, image_size=16)
    by_key = {example.key: example for example in examples}
    write_shards(split_folder(tmp_path, "dev"), list(by_key), by_key.__getitem__, shard_size=4,
                 metadata={"image_shape": [16, 16, 3], "tasks": ["gender"],
                           "task_counts": {"gender": {"examples": 4, "speakers": 3,
                                                      "classes": {"male": 2, "7": 2}}}})
    with pytest.raises(DatasetError, match=r"shard index counts classes '7', not classes of "
                                           r"cls_task='gender' \(male, female\)"):
        pipeline.split_index(tmp_path, "dev", "gender")

"""Tests of agegender.tfrecords: feature spec, shard names, resumable shard writing, index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import synth
import tensorflow as tf

from agegender import tfrecords
from agegender.errors import DatasetError
from agegender.features import read_png
from agegender.tfrecords import (INDEX_NAME, Example, feature_spec, read_index, shard_name,
                                 write_shards)

METADATA = {"image_shape": [16, 16, 3], "tasks": ["gender", "age", "gender_age"]}


class Maker:
    """``make_example`` for ``write_shards`` that counts its calls and can fail on a key."""

    def __init__(self, examples: list[Example], fail_on: str | None = None) -> None:
        self.by_key = {example.key: example for example in examples}
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, key: str) -> Example:
        if key == self.fail_on:
            raise RuntimeError(f"interrupted at {key}")
        self.calls.append(key)
        return self.by_key[key]


def stats(folder: Path) -> dict[str, tuple[int, int]]:
    """{file name: (inode, mtime_ns)} of every file in ``folder``."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in sorted(folder.iterdir())}


def stored_keys(folder: Path, names: list[str]) -> list[list[str]]:
    """Keys of each shard, in stored order."""
    spec = {"clip/key": feature_spec()["clip/key"]}
    return [[tf.io.parse_single_example(record, spec)["clip/key"].numpy().decode()
             for record in tf.data.TFRecordDataset(str(folder / name))] for name in names]


@pytest.fixture
def examples() -> list[Example]:
    return synth.random_examples(10)


def keys_of(examples: list[Example]) -> list[str]:
    return [example.key for example in examples]


# -- the spec ---------------------------------------------------------------------------------

def test_shard_name_template() -> None:
    assert shard_name(0) == "spec_data_000.tfrecord"
    assert shard_name(7) == "spec_data_007.tfrecord"
    assert shard_name(123) == "spec_data_123.tfrecord"
    assert shard_name(1000) == "spec_data_1000.tfrecord"


def test_serialize_writes_every_key_of_the_feature_spec() -> None:
    pitch = np.array([-0.3, -0.5, 0.1, 0.6, 1.0], "<f4").tobytes()
    embedding = np.array([0.6, 0.8], "<f4").tobytes()
    example = Example(png=b"\x89PNG fake", height=5, width=6, channels=3, key="clé-1",
                      speaker_id="spk", label_codes={"gender": 1, "age": 4, "gender_age": 4},
                      pitch=pitch, embedding=embedding)
    record = example.serialize()
    proto = tf.train.Example.FromString(record)
    assert set(proto.features.feature) == set(feature_spec())
    parsed = {name: value.numpy() for name, value in
              tf.io.parse_single_example(record, feature_spec()).items()}
    assert parsed == {
        "image/png": b"\x89PNG fake", "image/height": 5, "image/width": 6,
        "image/channels": 3, "clip/key": "clé-1".encode(), "clip/speaker_id": b"spk",
        "label/gender": 1, "label/age": 4, "label/gender_age": 4, "clip/pitch": pitch,
        "clip/embedding": embedding,
    }


def test_missing_task_label_is_written_as_minus_one() -> None:
    example = Example(png=b"x", height=1, width=1, channels=3, key="k", speaker_id="",
                      label_codes={"gender": 0})
    parsed = tf.io.parse_single_example(example.serialize(), feature_spec())
    assert int(parsed["label/gender"]) == 0
    assert int(parsed["label/age"]) == -1
    assert int(parsed["label/gender_age"]) == -1
    assert parsed["clip/speaker_id"].numpy() == b""
    assert parsed["clip/pitch"].numpy() == b""  # no pitch statistics stored


def reference_proto(example: Example) -> tf.train.Example:
    """The example built with TensorFlow's own protobuf classes, as the writer once did."""
    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    feature = {
        "image/png": _bytes(example.png), "image/height": _int(example.height),
        "image/width": _int(example.width), "image/channels": _int(example.channels),
        "clip/key": _bytes(example.key.encode("utf-8")),
        "clip/speaker_id": _bytes(example.speaker_id.encode("utf-8")),
        **{f"label/{task}": _int(example.label_codes.get(task, -1))
           for task in ("gender", "age", "gender_age")},
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.parametrize("example", [
    Example(png=b"", height=0, width=0, channels=0, key="", speaker_id="", label_codes={}),
    Example(png=b"\x89PNG" * 100, height=64, width=64, channels=3, key="clé-1",
            speaker_id="spk", label_codes={"gender": 1, "age": 5, "gender_age": 11}),
    Example(png=bytes(range(256)) * 70, height=300, width=2**40, channels=3, key="k" * 200,
            speaker_id="s", label_codes={"gender": 0, "age": -1}),
    *synth.random_examples(3),
], ids=["empty", "small", "large-varints", "random-0", "random-1", "random-2"])
def test_hand_encoding_parses_equal_to_tensorflows(example: Example) -> None:
    reference = reference_proto(example)
    ours = example.serialize()
    # Same bytes up to the (unspecified) order of the feature map's entries.
    assert tf.train.Example.FromString(ours) == reference
    assert len(ours) == len(reference.SerializeToString())
    assert sorted(ours) == sorted(reference.SerializeToString())


def test_fields_table_is_the_reader_spec() -> None:
    assert list(feature_spec()) == [name for name, _, _ in tfrecords.FIELDS]


def test_framing_is_what_tensorflow_writes(tmp_path: Path, examples: list[Example]) -> None:
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
        for example in examples:
            writer.write(example.serialize())
    ours = b"".join(tfrecords.tfrecord_frame(example.serialize()) for example in examples)
    assert ours == (tmp_path / "tf.tfrecord").read_bytes()


def test_crc32c_uses_the_c_extension() -> None:
    import google_crc32c

    assert google_crc32c.implementation == "c"


# -- writing ----------------------------------------------------------------------------------

def test_write_shards_layout_and_index(tmp_path: Path, examples: list[Example]) -> None:
    progress: list[int] = []
    index = write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4,
                         metadata=METADATA, progress=progress.append)
    names = [shard_name(i) for i in range(3)]
    assert index["shards"] == names
    assert index["shard_counts"] == [4, 4, 2]
    assert index["num_examples"] == 10
    assert index["complete"] is True
    assert index["image_shape"] == [16, 16, 3]
    assert sum(progress) == 10
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*names, INDEX_NAME])
    assert json.loads((tmp_path / INDEX_NAME).read_text()) == index
    assert read_index(tmp_path) == index
    assert stored_keys(tmp_path, names) == [keys_of(examples)[0:4], keys_of(examples)[4:8],
                                            keys_of(examples)[8:10]]


def test_stored_images_decode_to_the_written_arrays(tmp_path: Path,
                                                    examples: list[Example]) -> None:
    write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=100, metadata=METADATA)
    records = list(tf.data.TFRecordDataset(str(tmp_path / shard_name(0))))
    assert len(records) == 10
    for record, example in zip(records, examples, strict=True):
        parsed = tf.io.parse_single_example(record, feature_spec())
        decoded = tf.io.decode_png(parsed["image/png"], channels=3).numpy()
        assert (decoded == read_png(example.png)).all()
        assert int(parsed["label/gender_age"]) == example.label_codes["gender_age"]


def test_resume_with_the_same_plan_rewrites_nothing(tmp_path: Path,
                                                    examples: list[Example]) -> None:
    write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4, metadata=METADATA)
    before = stats(tmp_path)
    maker = Maker(examples)
    progress: list[int] = []
    index = write_shards(tmp_path, keys_of(examples), maker, shard_size=4, metadata=METADATA,
                         progress=progress.append)
    assert maker.calls == []
    assert stats(tmp_path) == before
    assert index["complete"] and index["num_examples"] == 10
    assert sum(progress) == 10


def test_overwrite_rewrites_every_shard(tmp_path: Path, examples: list[Example]) -> None:
    write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4, metadata=METADATA)
    before = stats(tmp_path)
    maker = Maker(examples)
    write_shards(tmp_path, keys_of(examples), maker, shard_size=4, metadata=METADATA,
                 overwrite=True)
    after = stats(tmp_path)
    assert maker.calls == keys_of(examples)
    assert set(after) == set(before)
    for name in after:
        assert after[name][0] != before[name][0], name  # a new file replaced the old one


def test_changed_plan_rewrites_and_removes_stale_shards(tmp_path: Path,
                                                        examples: list[Example]) -> None:
    write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4, metadata=METADATA)
    before = stats(tmp_path)
    fewer = keys_of(examples)[:6]
    maker = Maker(examples)
    index = write_shards(tmp_path, fewer, maker, shard_size=4, metadata=METADATA)
    after = stats(tmp_path)
    assert maker.calls == fewer
    assert sorted(after) == sorted([shard_name(0), shard_name(1), INDEX_NAME])
    assert not (tmp_path / shard_name(2)).exists()
    assert after[shard_name(0)][0] != before[shard_name(0)][0]
    assert index["shard_counts"] == [4, 2]
    assert stored_keys(tmp_path, index["shards"]) == [fewer[:4], fewer[4:]]


def test_changed_order_or_metadata_is_a_new_plan(tmp_path: Path,
                                                 examples: list[Example]) -> None:
    keys = keys_of(examples)
    write_shards(tmp_path, keys, Maker(examples), shard_size=4, metadata=METADATA)
    maker = Maker(examples)
    write_shards(tmp_path, keys[::-1], maker, shard_size=4, metadata=METADATA)
    assert maker.calls == keys[::-1]
    maker = Maker(examples)
    write_shards(tmp_path, keys[::-1], maker, shard_size=4,
                 metadata={**METADATA, "image_shape": [32, 32, 3]})
    assert maker.calls == keys[::-1]
    assert read_index(tmp_path)["image_shape"] == [32, 32, 3]


def test_interrupted_write_leaves_an_incomplete_index_and_resumes(
        tmp_path: Path, examples: list[Example]) -> None:
    keys = keys_of(examples)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_shards(tmp_path, keys, Maker(examples, fail_on=keys[5]), shard_size=4,
                     metadata=METADATA)
    # Shard 0 is finished, shard 1 was never renamed into place, nothing half-written is left.
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([shard_name(0), INDEX_NAME])
    assert json.loads((tmp_path / INDEX_NAME).read_text())["complete"] is False
    with pytest.raises(DatasetError, match="incomplete"):
        read_index(tmp_path)
    first = stats(tmp_path)[shard_name(0)]
    maker = Maker(examples)
    index = write_shards(tmp_path, keys, maker, shard_size=4, metadata=METADATA)
    assert maker.calls == keys[4:]  # shard 0 kept
    assert stats(tmp_path)[shard_name(0)] == first
    assert index["complete"] and read_index(tmp_path) == index
    assert stored_keys(tmp_path, index["shards"]) == [keys[:4], keys[4:8], keys[8:]]


def test_empty_split_gives_an_empty_complete_index(tmp_path: Path) -> None:
    index = write_shards(tmp_path, [], Maker([]), shard_size=4, metadata=METADATA)
    assert index["shards"] == [] and index["num_examples"] == 0 and index["complete"]
    assert read_index(tmp_path)["num_examples"] == 0


# -- reading the index ------------------------------------------------------------------------

def test_read_index_without_shards_points_to_the_preprocessor(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="preprocess_dataset.py"):
        read_index(tmp_path)


def test_read_index_with_a_missing_shard_names_it(tmp_path: Path,
                                                  examples: list[Example]) -> None:
    write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4, metadata=METADATA)
    os.unlink(tmp_path / shard_name(1))
    with pytest.raises(DatasetError, match=shard_name(1)):
        read_index(tmp_path)


def test_read_index_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / INDEX_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_index(tmp_path)


def test_write_shards_over_a_corrupt_index_starts_afresh(tmp_path: Path,
                                                         examples: list[Example]) -> None:
    """A truncated shards.json (e.g. a full disk) must not stop a re-run from rebuilding."""
    (tmp_path / INDEX_NAME).write_text('{"digest": "abc", "compl')
    index = write_shards(tmp_path, keys_of(examples), Maker(examples), shard_size=4,
                         metadata=METADATA)
    assert index["complete"] and read_index(tmp_path)["num_examples"] == 10


def test_plan_digest_depends_on_keys_order_and_metadata() -> None:
    digest = tfrecords.plan_digest(["a", "b"], {"x": 1})
    assert digest == tfrecords.plan_digest(["a", "b"], {"x": 1})
    assert digest != tfrecords.plan_digest(["b", "a"], {"x": 1})
    assert digest != tfrecords.plan_digest(["a", "b"], {"x": 2})
    assert digest != tfrecords.plan_digest(["ab"], {"x": 1})


@pytest.mark.parametrize("preset", ["paper", "voice"])
@pytest.mark.parametrize("feature_type", ["spectrogram", "mel", "mfcc"])
def test_tensorflow_reads_the_tf_free_writer_for_every_feature_preset(
        tmp_path: Path, preset: str, feature_type: str) -> None:
    """The shards are written without TensorFlow: TensorFlow's own reader must parse every
    preset's images back to the arrays and shape the index records."""
    from agegender.config import FeatureParams
    from agegender.features import png_bytes, spectrogram_image

    params = FeatureParams.preset(preset, feature_type=feature_type)
    images = [spectrogram_image(synth.voice(gender, "thirties", seed=i, seconds=3.0,
                                            rate=params.sample_rate), params)
              for i, gender in enumerate(("male", "female", "male"))]
    built = [Example(png=png_bytes(image), height=image.shape[0], width=image.shape[1],
                     channels=3, key=f"k{i}", speaker_id=f"s{i}",
                     label_codes={"gender": i % 2})
             for i, image in enumerate(images)]
    metadata = {"image_shape": list(params.image_shape), "tasks": ["gender"]}
    write_shards(tmp_path, keys_of(built), Maker(built), shard_size=2, metadata=metadata)
    names = read_index(tmp_path)["shards"]
    records = [record for name in names for record in tf.data.TFRecordDataset(
        str(tmp_path / name))]
    assert len(records) == 3
    for record, image in zip(records, images, strict=True):
        parsed = tf.io.parse_single_example(record, feature_spec())
        decoded = tf.io.decode_png(parsed["image/png"], channels=3).numpy()
        assert decoded.shape == tuple(params.image_shape)
        assert (decoded == image).all()
        assert [int(parsed[f"image/{k}"]) for k in ("height", "width")] == list(
            params.image_shape[:2])

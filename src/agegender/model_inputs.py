"""The one place that knows a model's inputs: which kinds exist, and how each is made.

Every model of this project takes a dict of named inputs, one entry per *input kind*. A
model records the kinds it reads (``ModelParams.input_kinds``, stored in the model file by
``LabelledOutput``), and every caller builds its inputs here, from audio (inference, the
timeline, the test step's crops) or checks them (export, float16/bfloat16 copies):

==============  =============================================  ==========================
kind            value per example                              made by
==============  =============================================  ==========================
``spectrogram`` float32 [H, W, 3] in 0-255, one per crop        ``features.spectrogram_images``
``pitch``       float32 [len(voice_stats.STAT_NAMES)], per clip ``features.waveform_pitch``
``embedding``   float32 [256] unit norm, per clip               ``voice_encoder.embed``
==============  =============================================  ==========================

A per-clip kind is repeated over the clip's crops, so a batch always holds one row per crop
of every kind. The TFRecord side (``pipeline.make_dataset``) reads the same kinds from the
shards. Adding a kind: an entry in ``KINDS`` and a line in ``waveform_inputs`` (and in
``random_inputs``), its computation in ``features``, its input in ``model.build_model`` and
its field in the shard spec (``tfrecords``) — nothing else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from agegender.config import FeatureParams
from agegender.errors import ModelError


@dataclasses.dataclass(frozen=True)
class InputKind:
    """One kind of model input.

    Attributes:
        name: the Keras input's name and the key of the inputs dict.
        per_crop: one value per crop of a clip (images); False: one per clip, repeated over
            its crops.
        description: what it holds, in words (docs, errors).
    """

    name: str
    per_crop: bool
    description: str


KINDS: dict[str, InputKind] = {
    "spectrogram": InputKind("spectrogram", True,
                             "spectrogram image, float32 [H, W, 3] in 0-255"),
    "pitch": InputKind("pitch", False,
                       "voice statistics (F0 and spectral envelope), float32 [45]"),
    "embedding": InputKind("embedding", False,
                           "speaker embedding of the GE2E voice encoder, float32 [256]"),
}


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple after checking each is known and there is at least one.

    Raises:
        ModelError: an unknown kind, or none.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ModelError(f"model inputs {list(kinds)}: expected one or more of "
                         f"{', '.join(KINDS)}")
    return kinds


def input_shape(kind: str, features: FeatureParams) -> tuple[int, ...]:
    """Shape of one example's value of ``kind`` (no batch axis)."""
    if kind == "spectrogram":
        return tuple(features.image_shape)
    if kind == "pitch":
        from agegender.voice_stats import STAT_NAMES  # noqa: PLC0415

        return (len(STAT_NAMES),)
    if kind == "embedding":
        from agegender.model import EMBEDDING_SIZE  # noqa: PLC0415

        return (EMBEDDING_SIZE,)
    raise ModelError(f"unknown model input {kind!r}")


def waveform_inputs(waveform: np.ndarray, features: FeatureParams, kinds: Sequence[str], *,
                    max_crops: int = 1) -> dict[str, np.ndarray]:
    """A waveform's model inputs: the one path from audio to what a model reads.

    Args:
        waveform: float32 [samples] at ``features.sample_rate``.
        features: the feature settings the model stores.
        kinds: the inputs the model reads (``ModelParams.input_kinds``).
        max_crops: images of a long clip for a ``fixed_time`` preset (see
            ``features.crop_starts``); 1 = the one image preprocessing stores.

    Returns:
        {kind: float32 [crops, ...]}; crops is 1 for a model without a per-crop kind.
    """
    from agegender.features import spectrogram_images, waveform_pitch  # noqa: PLC0415

    inputs: dict[str, np.ndarray] = {}
    if "spectrogram" in kinds:
        inputs["spectrogram"] = spectrogram_images(waveform, features, max_crops).astype(
            np.float32)  # [crops, H, W, 3]
    crops = len(next(iter(inputs.values()))) if inputs else 1
    if "pitch" in kinds:
        inputs["pitch"] = np.repeat(waveform_pitch(waveform, features)[np.newaxis], crops,
                                    axis=0)  # [crops, 45]
    if "embedding" in kinds:
        from agegender.voice_encoder import embed  # noqa: PLC0415

        inputs["embedding"] = np.repeat(embed(waveform, features.sample_rate)[np.newaxis],
                                        crops, axis=0)  # [crops, 256]
    return {kind: inputs[kind] for kind in kinds}


def waveforms_inputs(waveforms: Sequence[np.ndarray], features: FeatureParams,
                     kinds: Sequence[str], *,
                     embeddings: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Model inputs of many waveforms (the timeline's windows), one row (crop) each:
    ``stack`` of ``waveform_inputs``, but with every embedding made in one batched encoder
    call (``voice_encoder.embed_many``; the LSTM is the cost).

    Args:
        waveforms: float32 [samples] each, at ``features.sample_rate``.
        features: the model's feature settings.
        kinds: the inputs the model reads.
        embeddings: float32 [len(waveforms), 256], the waveforms' ``embed_many`` made
            already (the timeline's, which it also clusters): used, not made again.

    Returns:
        {kind: float32 [len(waveforms), ...]}.
    """
    others = [kind for kind in kinds if kind != "embedding"]
    batch = stack([waveform_inputs(w, features, others) for w in waveforms]) if others else {}
    if "embedding" in kinds and embeddings is not None:
        if len(embeddings) != len(waveforms):
            raise ModelError(f"{len(embeddings)} embeddings for {len(waveforms)} waveforms")
        batch["embedding"] = np.asarray(embeddings, np.float32)  # [windows, 256]
    elif "embedding" in kinds:
        from agegender.voice_encoder import embed_many  # noqa: PLC0415

        batch["embedding"] = embed_many(waveforms, features.sample_rate)  # [windows, 256]
    return {kind: batch[kind] for kind in kinds}


def file_inputs(path: str | os.PathLike, features: FeatureParams, kinds: Sequence[str], *,
                max_crops: int = 1, min_voiced: float = 0.0) -> dict[str, np.ndarray]:
    """An audio file's model inputs (``waveform_inputs`` of its decoded clip).

    ``min_voiced`` > 0 applies the preset's minimum duration and the speech gate as
    preprocessing does (``features.load_speech``).

    Raises:
        AudioError: the file cannot be decoded; ``speech.NoSpeechError`` when it has no voice.
    """
    (made,) = files_inputs([path], features, kinds, max_crops=max_crops,
                           min_voiced=min_voiced)
    if isinstance(made, Exception):
        raise made
    return made


def files_inputs(paths: Sequence[str | os.PathLike], features: FeatureParams,
                 kinds: Sequence[str], *, max_crops: int = 1, min_voiced: float = 0.0,
                 map_fn=map) -> list[dict[str, np.ndarray] | Exception]:
    """``file_inputs`` of many files, in order: each clip's inputs, or the ``AudioError``
    why it has none.

    Decoding and the per-clip kinds go through ``map_fn`` (e.g. a thread pool's ``map``);
    the speaker embeddings of all decoded clips are then made here, in one batched encoder
    call (``voice_encoder.embed_many``): the LSTM is the cost, and the one Keras encoder is
    not called from several threads at once.
    """
    from agegender.errors import AudioError  # noqa: PLC0415
    from agegender.features import clip_waveform  # noqa: PLC0415

    others = [kind for kind in kinds if kind != "embedding"]

    def decoded(path):
        try:
            waveform = clip_waveform(path, features, min_voiced=min_voiced)
            return waveform, (waveform_inputs(waveform, features, others, max_crops=max_crops)
                              if others else {})
        except AudioError as err:
            return err

    made = list(map_fn(decoded, paths))
    good = [i for i, item in enumerate(made) if not isinstance(item, Exception)]
    if "embedding" in kinds and good:
        from agegender.voice_encoder import embed_many  # noqa: PLC0415

        vectors = embed_many([made[i][0] for i in good], features.sample_rate)  # [good, 256]
        for i, vector in zip(good, vectors, strict=True):
            inputs = made[i][1]
            crops = crop_count(inputs) if inputs else 1
            inputs["embedding"] = np.repeat(vector[np.newaxis], crops, axis=0)
    return [item if isinstance(item, Exception) else {k: item[1][k] for k in kinds}
            for item in made]


def crop_count(inputs: dict[str, np.ndarray]) -> int:
    """Rows (crops) of one clip's inputs."""
    return len(next(iter(inputs.values())))


def stack(examples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates per-clip inputs ({kind: [crops, ...]}) into one batch along axis 0."""
    return {kind: np.concatenate([e[kind] for e in examples]) for kind in examples[0]}


def random_inputs(kinds: Sequence[str], features: FeatureParams, batch: int, *,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs of every kind in its range, for checks of a model copy (float16,
    bfloat16, export): images uniform in 0-255, statistics near their corpus centre."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for kind in kinds:
        shape = (batch, *input_shape(kind, features))
        if kind == "spectrogram":
            inputs[kind] = rng.uniform(0, 255, shape).astype(np.float32)
        elif kind == "embedding":
            values = np.abs(rng.normal(size=shape))  # the encoder ends in a ReLU
            inputs[kind] = (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(
                np.float32)
        else:
            from agegender.voice_stats import STAT_CENTRE, STAT_SPREAD  # noqa: PLC0415

            inputs[kind] = (np.asarray(STAT_CENTRE) + rng.normal(0, 0.5, shape)
                            * np.asarray(STAT_SPREAD)).astype(np.float32)
    return inputs


def feed(model, inputs: dict[str, np.ndarray]):
    """``inputs`` as ``model`` takes them: the dict, or its one array for a single-input
    model saved before models took dicts (Keras warns when a dict meets such a model)."""
    if isinstance(model.input, (dict, list, tuple)) or len(inputs) != 1:
        return inputs
    return next(iter(inputs.values()))

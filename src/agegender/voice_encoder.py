"""The GE2E speaker encoder (Wan et al., ICASSP 2018) with Resemblyzer's trained weights.

Audio → 40-band mel *power* frames (16 kHz, 25 ms window, 10 ms hop, no log) → 160-frame
partials (1.6 s) → three stacked LSTMs of 256 units → the last step's state → a 256→256 dense
layer with ReLU → L2 normalisation: one unit-norm 256-d embedding per partial. An utterance's
embedding is its partials' mean, renormalised. The weights were trained by Corentin Jemine
(Resemblyzer 0.1.4, Apache-2.0; LibriSpeech, VoxCeleb 1 and 2) and converted to
``models/pretrained/voice_encoder.npz`` by ``scripts/convert_voice_encoder.py`` (see NOTICE).

``encoder_frames`` is the one feature function of embeddings: preprocessing, inference and
the timeline all call it. The network is built from Keras' own layers (LSTM, Dense,
UnitNormalization), so nothing needs registering; its weights load from a plain ``.npz``
with ``allow_pickle=False`` (no torch, no pickle at run time). Importing this module costs
nothing: Keras, TensorFlow, librosa and soxr load on first use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegender import atomic
from agegender.errors import AudioError, ModelError, ParameterError

WEIGHTS_NAME = "voice_encoder.npz"


@dataclass(frozen=True)
class EncoderParams:
    """The GE2E front end and network, as Resemblyzer's weights were trained.

    Attributes:
        sample_rate: Hz every wave is resampled to.
        n_fft: STFT window and FFT length, samples (25 ms).
        hop_length: STFT hop, samples (10 ms).
        n_mels: mel bands (Slaney scale and area normalisation, 0 Hz to Nyquist).
        target_dbfs: quieter waves are amplified to this RMS level, dBFS (never attenuated).
        partial_frames: frames in one partial utterance (1.6 s).
        partials_per_s: partials started per second of audio (they overlap).
        min_coverage: the last partial is kept only if at least this share of it is audio.
        hidden: units of each LSTM layer.
        lstm_layers: stacked LSTM layers.
        embedding: size of the embedding (the dense layer's units).
    """

    sample_rate: int = 16_000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 40
    target_dbfs: float = -30.0
    partial_frames: int = 160
    partials_per_s: float = 1.3
    min_coverage: float = 0.75
    hidden: int = 256
    lstm_layers: int = 3
    embedding: int = 256

    @property
    def partial_step(self) -> int:
        """Frames between the starts of two partials (77 at 1.3 partials/s)."""
        return int(round(self.sample_rate / self.partials_per_s / self.hop_length))

    @property
    def partial_samples(self) -> int:
        """Samples one partial spans (25,600 = 1.6 s)."""
        return self.partial_frames * self.hop_length


GE2E = EncoderParams()


def weight_shapes(params: EncoderParams = GE2E) -> dict[str, tuple[int, ...]]:
    """Every array of the weights file, by its PyTorch state-dict name, with its shape."""
    shapes = {}
    for layer in range(params.lstm_layers):
        inputs = params.n_mels if layer == 0 else params.hidden
        shapes[f"lstm.weight_ih_l{layer}"] = (4 * params.hidden, inputs)
        shapes[f"lstm.weight_hh_l{layer}"] = (4 * params.hidden, params.hidden)
        shapes[f"lstm.bias_ih_l{layer}"] = (4 * params.hidden,)
        shapes[f"lstm.bias_hh_l{layer}"] = (4 * params.hidden,)
    shapes["linear.weight"] = (params.embedding, params.hidden)
    shapes["linear.bias"] = (params.embedding,)
    return shapes


def default_weights_path() -> Path:
    """``models/pretrained/voice_encoder.npz`` of the repository this package sits in."""
    from agegender.shipped import pretrained_dir  # noqa: PLC0415

    return pretrained_dir() / WEIGHTS_NAME


# ---------------------------------------------------------------------------- front end


@functools.lru_cache(maxsize=2)
def _mel_basis(params: EncoderParams) -> np.ndarray:
    """The mel filter bank [n_mels, n_fft // 2 + 1] float32 (librosa's Slaney filters)."""
    import librosa  # noqa: PLC0415

    return librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft,
                               n_mels=params.n_mels).astype(np.float32)


def encoder_frames(wave: np.ndarray, sample_rate: int, *,
                   params: EncoderParams = GE2E) -> np.ndarray:
    """The encoder's input frames of a wave: resampled, level-normalised mel power frames.

    Resampled to ``params.sample_rate`` (soxr HQ, as ``features.load_clip``), amplified to
    ``params.target_dbfs`` RMS if quieter (GE2E's training audio was), then |STFT|² (periodic
    Hann window of ``n_fft``, hop ``hop_length``, frames centred by zero padding) through the
    mel filter bank. No logarithm: the network was trained on power.

    GE2E's training front end also cut silences longer than 0.2 s with a WebRTC VAD; that is
    left to the caller (the project's speech gate), so that frame ``t`` of a long recording
    stays at ``t * hop_length`` samples.

    Args:
        wave: [samples] mono audio, float in [-1, 1].
        sample_rate: the wave's rate, Hz.
        params: front-end parameters.

    Returns:
        float32 [1 + samples_16k // hop_length, n_mels].

    Raises:
        AudioError: the wave is not 1-D, is empty, or holds NaN/inf.
        ParameterError: ``sample_rate`` is not a positive integer.
    """
    return _mel_frames(_prepared_wave(wave, sample_rate, params), params)


def _prepared_wave(wave: np.ndarray, sample_rate: int, params: EncoderParams) -> np.ndarray:
    """[samples] at ``sample_rate`` → [samples_16k] float32, checked, resampled, level raised."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise AudioError(f"wave must be 1-D [samples] and not empty, got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise AudioError("wave holds NaN or infinite samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate!r} is not a positive whole number of Hz")
    if sample_rate != params.sample_rate:
        import soxr  # noqa: PLC0415

        wave = soxr.resample(wave, int(sample_rate), params.sample_rate,
                             quality="HQ").astype(np.float32)  # [samples_16k]
    return _raised_to_level(wave, params.target_dbfs)  # [samples_16k]


def _mel_frames(wave: np.ndarray, params: EncoderParams) -> np.ndarray:
    """[samples_16k] → mel power frames [1 + samples_16k // hop_length, n_mels] float32."""
    from agegender.features import stft_magnitude  # noqa: PLC0415

    magnitude = stft_magnitude(wave, params.n_fft, params.hop_length)  # [bins, frames]
    mel = _mel_basis(params) @ (magnitude * magnitude)  # [n_mels, frames]
    # stft_magnitude pads a wave shorter than one window to one window; the frames centred
    # past the wave's end are dropped so the count is always 1 + samples // hop.
    mel = mel[:, : 1 + wave.shape[0] // params.hop_length]
    return np.ascontiguousarray(mel.T, dtype=np.float32)  # [frames, n_mels]


def _raised_to_level(wave: np.ndarray, target_dbfs: float) -> np.ndarray:
    """``wave`` amplified so its RMS is ``target_dbfs`` dBFS, unless it is already louder
    (GE2E raises quiet audio and leaves loud audio alone). Digital silence stays silent."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms == 0.0:
        return wave
    gain_db = target_dbfs - 20.0 * np.log10(rms)
    return wave if gain_db <= 0 else (wave * np.float32(10.0 ** (gain_db / 20.0)))


def partial_starts(n_samples: int, params: EncoderParams = GE2E) -> list[int]:
    """The first frame of every partial of an utterance of ``n_samples`` (at 16 kHz).

    Partials start every ``partial_step`` frames and together cover the utterance; the last
    one is dropped if less than ``min_coverage`` of it is audio and another remains. An
    utterance shorter than one partial gets one partial, zero-padded (GE2E's scheme).

    Returns:
        Increasing frame indices, at least one.
    """
    if n_samples < 0:
        raise ParameterError(f"n_samples={n_samples} is negative")
    frames = -(-(n_samples + 1) // params.hop_length)  # ceil: frames touching the audio
    step, width = params.partial_step, params.partial_frames
    starts = list(range(0, max(1, frames - width + step + 1), step))
    covered = (n_samples - starts[-1] * params.hop_length) / params.partial_samples
    if covered < params.min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def utterance_partials(wave: np.ndarray, sample_rate: int, *,
                       params: EncoderParams = GE2E) -> np.ndarray:
    """The partials of one utterance, ready for ``embed_partials``.

    Frames past the end of the audio are zero (the frames a zero-padded wave gives).

    Returns:
        float32 [partials, partial_frames, n_mels].
    """
    return _partials_and_spans(wave, sample_rate, params)[0]


def _partials_and_spans(wave: np.ndarray, sample_rate: int, params: EncoderParams
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``utterance_partials`` and where each partial lies in the wave: float64
    [partials, 2] (start, end) seconds, the end clipped to the wave's end."""
    wave = _prepared_wave(wave, sample_rate, params)  # [samples_16k]
    frames = _mel_frames(wave, params)  # [frames, n_mels]
    samples = wave.shape[0]
    starts = partial_starts(samples, params)
    needed = starts[-1] + params.partial_frames
    if frames.shape[0] < needed:
        frames = np.pad(frames, ((0, needed - frames.shape[0]), (0, 0)))  # [needed, n_mels]
    begin = np.asarray(starts, np.float64) * params.hop_length / params.sample_rate
    spans = np.stack([begin, np.minimum(begin + params.partial_samples / params.sample_rate,
                                        samples / params.sample_rate)], axis=1)
    return np.stack([frames[s: s + params.partial_frames] for s in starts]), spans


# ------------------------------------------------------------------------------ network


def build_voice_encoder(params: EncoderParams = GE2E):
    """The GE2E network as a Keras functional model, with untrained weights.

    Input ``frames`` [batch, time, n_mels] (160 frames per partial; any length runs) →
    output [batch, embedding], L2-normalised. Every layer is a built-in Keras layer, named.
    """
    import keras  # noqa: PLC0415

    frames = keras.Input((None, params.n_mels), name="frames")  # [batch, time, n_mels]
    x = frames
    for layer in range(params.lstm_layers):
        last = layer == params.lstm_layers - 1
        # Keras' defaults (tanh, sigmoid gates; gate order i, f, c, o) are PyTorch's LSTM.
        x = keras.layers.LSTM(params.hidden, return_sequences=not last,
                              name=f"lstm_{layer}")(x)  # [batch, time or -, hidden]
    x = keras.layers.Dense(params.embedding, activation="relu", name="projection")(x)
    x = keras.layers.UnitNormalization(axis=-1, name="l2_normalise")(x)  # [batch, embedding]
    return keras.Model(frames, x, name="ge2e_voice_encoder")


def read_weights(path: str | os.PathLike, params: EncoderParams = GE2E,
                 *, verify: bool = True) -> dict[str, np.ndarray]:
    """The encoder's arrays from a ``.npz`` written by ``scripts/convert_voice_encoder.py``.

    Args:
        path: the weights file.
        params: the network the arrays must fit (``weight_shapes``).
        verify: check the file against its ``<file>.sha256`` sidecar when there is one.

    Returns:
        PyTorch state-dict name → float32 array.

    Raises:
        ModelError: missing file, checksum mismatch, not a readable ``.npz``, or an array
            missing, of the wrong shape or not finite; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"voice encoder weights {path}: no such file (make it with "
                         "scripts/convert_voice_encoder.py)")
    if verify:
        expected = atomic.read_checksums(path)
        if expected is not None:
            actual = atomic.sha256_file(path)
            if actual not in expected:
                raise ModelError(f"voice encoder weights {path}: checksum mismatch, the file "
                                 f"is corrupt or was changed (expected {expected[0]}, got "
                                 f"{actual}, recorded in {atomic.checksum_path(path)})")
    import zipfile  # noqa: PLC0415

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ModelError(f"voice encoder weights {path}: not a readable .npz ({err})") from err
    for name, shape in weight_shapes(params).items():
        if name not in arrays:
            raise ModelError(f"voice encoder weights {path}: no array {name!r}")
        if arrays[name].shape != shape or arrays[name].dtype.kind != "f":
            raise ModelError(f"voice encoder weights {path}: {name} is {arrays[name].dtype} "
                             f"{arrays[name].shape}, expected float {shape}")
        if not np.isfinite(arrays[name]).all():
            raise ModelError(f"voice encoder weights {path}: {name} holds NaN or inf")
    return {name: arrays[name].astype(np.float32) for name in weight_shapes(params)}


def keras_weights(arrays: dict[str, np.ndarray], params: EncoderParams = GE2E) -> dict:
    """PyTorch arrays → Keras weights by layer name: an LSTM's kernel is ``W_ih.T``, its
    recurrent kernel ``W_hh.T``, its one bias ``b_ih + b_hh``; the dense kernel is ``W.T``."""
    weights = {}
    for layer in range(params.lstm_layers):
        weights[f"lstm_{layer}"] = [arrays[f"lstm.weight_ih_l{layer}"].T,  # [inputs, 4 hidden]
                                    arrays[f"lstm.weight_hh_l{layer}"].T,  # [hidden, 4 hidden]
                                    arrays[f"lstm.bias_ih_l{layer}"]
                                    + arrays[f"lstm.bias_hh_l{layer}"]]  # [4 hidden]
    weights["projection"] = [arrays["linear.weight"].T, arrays["linear.bias"]]
    return weights


def load_voice_encoder(path: str | os.PathLike | None = None, *,
                       params: EncoderParams = GE2E, verify: bool = True):
    """The GE2E encoder with trained weights (``build_voice_encoder`` + ``read_weights``).

    Args:
        path: weights ``.npz``; None: the shipped ``models/pretrained/voice_encoder.npz``.
        params: the network.
        verify: check the file's ``.sha256`` sidecar.

    Returns:
        A Keras model: [batch, time, n_mels] frames → [batch, embedding] unit vectors.

    Raises:
        ModelError: see ``read_weights``.
    """
    arrays = read_weights(default_weights_path() if path is None else path, params,
                          verify=verify)
    model = build_voice_encoder(params)
    for name, values in keras_weights(arrays, params).items():
        model.get_layer(name).set_weights(values)
    return model


@functools.lru_cache(maxsize=1)
def _shipped_encoder():
    return load_voice_encoder()


def embed_partials(frames_batch: np.ndarray, *, encoder=None,
                   batch_size: int = 128) -> np.ndarray:
    """Embeddings of many partials (or timeline windows) in few network calls.

    Args:
        frames_batch: float [n, frames, n_mels] (``encoder_frames`` rows; 160 frames each
            for GE2E's partials).
        encoder: from ``load_voice_encoder``; None: the shipped one (loaded once).
        batch_size: partials per network call (the LSTM is the cost; batching is the speed).

    Returns:
        float32 [n, embedding], each row of unit norm (0 where the network's output is 0).

    Raises:
        ParameterError: not 3-D, or ``batch_size`` below 1.
    """
    frames_batch = np.asarray(frames_batch, dtype=np.float32)
    if frames_batch.ndim != 3:
        raise ParameterError(f"frames_batch must be [n, frames, n_mels], got shape "
                             f"{frames_batch.shape}")
    if batch_size < 1:
        raise ParameterError(f"batch_size={batch_size} is below 1")
    encoder = _shipped_encoder() if encoder is None else encoder
    out = [np.asarray(encoder.predict_on_batch(frames_batch[i: i + batch_size]))
           for i in range(0, frames_batch.shape[0], batch_size)]
    if not out:
        return np.zeros((0, encoder.output_shape[-1]), np.float32)
    return np.concatenate(out).astype(np.float32)  # [n, embedding]


def embed(wave: np.ndarray, sample_rate: int, *, encoder=None,
          params: EncoderParams = GE2E) -> np.ndarray:
    """The embedding of one utterance: its partials' mean embedding, renormalised.

    Args:
        wave: [samples] mono audio in [-1, 1]; shorter than 1.6 s is zero-padded to one
            partial.
        sample_rate: its rate, Hz.
        encoder: from ``load_voice_encoder``; None: the shipped one.
        params: front end (must be the encoder's).

    Returns:
        float32 [embedding], unit norm.
    """
    partials = utterance_partials(wave, sample_rate, params=params)  # [p, frames, mels]
    mean = embed_partials(partials, encoder=encoder).mean(axis=0)  # [embedding]
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def embed_many(waves: Sequence[np.ndarray], sample_rate: int, *, encoder=None,
               params: EncoderParams = GE2E) -> np.ndarray:
    """``embed`` of many utterances (e.g. a recording's windows), their partials run
    through the network together.

    Returns:
        float32 [len(waves), embedding], each row as ``embed`` gives it.
    """
    return embed_with_partials(waves, sample_rate, encoder=encoder, params=params).utterances


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of many utterances and of the partials they are the mean of.

    Attributes:
        utterances: float32 [utterances, embedding], unit norm (as ``embed``).
        partials: float32 [partials, embedding], every partial's own embedding.
        owner: int64 [partials], the utterance each partial belongs to.
        spans: float64 [partials, 2], (start, end) seconds of each partial within its
            utterance (the end clipped to the utterance's end).
    """

    utterances: np.ndarray
    partials: np.ndarray
    owner: np.ndarray
    spans: np.ndarray

    @classmethod
    def empty(cls, params: EncoderParams = GE2E) -> Embeddings:
        """No utterances: every array with zero rows."""
        return cls(np.zeros((0, params.embedding), np.float32),
                   np.zeros((0, params.embedding), np.float32),
                   np.zeros(0, np.int64), np.zeros((0, 2)))


def embed_with_partials(waves: Sequence[np.ndarray], sample_rate: int, *, encoder=None,
                        params: EncoderParams = GE2E) -> Embeddings:
    """``embed_many``, keeping each partial's embedding and place: the timeline tells
    speakers apart partial by partial (1.6 s every 0.77 s), finer than its model windows,
    for the cost of the windows' embeddings alone.

    Returns:
        Embeddings (see there); zero rows when ``waves`` is empty.
    """
    made = [_partials_and_spans(wave, sample_rate, params) for wave in waves]
    if not made:
        return Embeddings.empty(params)
    partials = embed_partials(np.concatenate([m[0] for m in made]),
                              encoder=encoder)  # [all partials, embedding]
    counts = [len(m[0]) for m in made]
    bounds = np.cumsum([0, *counts])
    means = np.stack([partials[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:],
                                                                     strict=True)])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return Embeddings((means / np.where(norms > 0, norms, 1.0)).astype(np.float32), partials,
                      np.repeat(np.arange(len(made)), counts),
                      np.concatenate([m[1] for m in made]))

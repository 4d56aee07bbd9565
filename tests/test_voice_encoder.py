"""The GE2E voice encoder (``agegender.voice_encoder``) and its converter
(``scripts/convert_voice_encoder.py``).

The Keras network is checked against a plain-numpy LSTM written here from PyTorch's documented
LSTM equations, on the shipped weights; the front end against librosa's melspectrogram (what
GE2E was trained on); the converter on a small legacy-format checkpoint written here by hand.
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from agegender import voice_encoder as ve
from agegender.config import FeatureParams
from agegender.errors import AudioError, ModelError, ParameterError
from agegender.features import load_clip

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted((ROOT / "models" / "pretrained" / "clips").glob("*.mp3"))
RATE = 16_000

_SPEC = importlib.util.spec_from_file_location(
    "convert_voice_encoder", ROOT / "scripts" / "convert_voice_encoder.py")
convert = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(convert)


@pytest.fixture(scope="module")
def encoder():
    return ve.load_voice_encoder()


@pytest.fixture(scope="module")
def waves() -> dict[str, np.ndarray]:
    """The six shipped Common Voice clips (six different speakers) at 16 kHz."""
    return {clip.stem: load_clip(clip, FeatureParams()) for clip in CLIPS}


# ------------------------------------------------------------------- the network itself


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(x, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTM (gates i, f, g, o): [batch, time, in] → [batch, time, hidden], float64."""
    batch, hidden = x.shape[0], w_hh.shape[1]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # [batch, 4 hidden]
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def _numpy_encoder(frames, arrays):
    """GE2E in numpy: three LSTMs, the last step, dense, ReLU, L2 norm. [b, t, 40] → [b, 256]."""
    x = frames.astype(np.float64)
    for layer in range(3):
        x = _numpy_lstm(x, *(arrays[f"lstm.{kind}_l{layer}"].astype(np.float64)
                             for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    z = np.maximum(x[:, -1] @ arrays["linear.weight"].T.astype(np.float64)
                   + arrays["linear.bias"], 0.0)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_keras_encoder_matches_a_numpy_lstm_on_the_shipped_weights(encoder, waves):
    wave = waves[CLIPS[0].stem]
    partials = ve.utterance_partials(wave, RATE)[:2]  # [2, 160, 40]; numpy's loop is slow
    assert partials.shape == (2, 160, 40)
    expected = _numpy_encoder(partials, ve.read_weights(ve.default_weights_path()))
    got = ve.embed_partials(partials, encoder=encoder)
    assert got.shape == expected.shape == (partials.shape[0], 256)
    assert np.max(np.abs(got - expected)) <= 1e-5


def test_front_end_is_librosas_mel_power_of_the_level_raised_wave():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    wave = (0.01 * rng.standard_normal(RATE)).astype(np.float32)  # -40 dBFS: raised to -30
    raised = wave * np.float32(10 ** ((-30 - 20 * np.log10(np.sqrt(np.mean(wave ** 2)))) / 20))
    expected = librosa.feature.melspectrogram(y=raised, sr=RATE, n_fft=400, hop_length=160,
                                              n_mels=40).T  # [frames, 40]
    got = ve.encoder_frames(wave, RATE)
    assert got.shape == expected.shape == (101, 40) and got.dtype == np.float32
    assert np.max(np.abs(got - expected)) <= 1e-5 * expected.max()
    loud = 0.5 * wave / np.abs(wave).max()  # louder than -30 dBFS: left as it is
    np.testing.assert_allclose(
        ve.encoder_frames(loud, RATE),
        librosa.feature.melspectrogram(y=loud, sr=RATE, n_fft=400, hop_length=160,
                                       n_mels=40).T, rtol=1e-4, atol=1e-6 * expected.max())


def test_other_rates_are_resampled_to_16k():
    rng = np.random.default_rng(2)
    at_44k = (0.1 * rng.standard_normal(44_100)).astype(np.float32)  # 1 s
    assert ve.encoder_frames(at_44k, 44_100).shape == (101, 40)


def test_partial_starts_follow_ge2e():
    # 1.3 partials/s → a start every round(16000 / 1.3 / 160) = 77 frames; a 3 s clip has
    # ceil(48001 / 160) = 301 frames → starts 0, 77, 154; the last covers 0.91 of its 1.6 s.
    assert ve.partial_starts(48_000) == [0, 77, 154]
    # at 43,000 samples the third covers (43000 - 154 * 160) / 25600 = 0.717 < 0.75: dropped
    assert ve.partial_starts(43_000) == [0, 77]
    assert ve.partial_starts(44_000) == [0, 77, 154]  # 0.756: kept
    assert ve.partial_starts(1_000) == [0]  # shorter than one partial: one, padded


# ---------------------------------------------------------------- utterance embeddings


def test_embedding_shape_and_unit_norm(encoder, waves):
    for wave in waves.values():
        vector = ve.embed(wave, RATE, encoder=encoder)
        assert vector.shape == (256,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        assert (vector >= 0).all()  # ReLU before the norm


def test_same_speaker_halves_are_closer_than_other_speakers(encoder, waves):
    # The six shipped clips are six different speakers: each clip's two halves are "same
    # speaker", every half of another clip is "different speaker".
    halves = {name: [ve.embed(w[: w.shape[0] // 2], RATE, encoder=encoder),
                     ve.embed(w[w.shape[0] // 2:], RATE, encoder=encoder)]
              for name, w in waves.items()}
    for name, (first, second) in halves.items():
        same = float(first @ second)
        others = [float(first @ h) for other, pair in halves.items() if other != name
                  for h in pair]
        assert same > max(others), (name, same, max(others))


def test_a_clip_shorter_than_one_partial_is_zero_padded(encoder):
    t = np.arange(int(0.4 * RATE)) / RATE
    short = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))
             ).astype(np.float32)  # 0.4 s, loud enough that padding keeps it above -30 dBFS
    padded = np.pad(short, (0, 25_600 - short.shape[0]))  # one partial of audio, 1.6 s
    partials = ve.utterance_partials(short, RATE)  # [1, 160, 40]
    assert partials.shape == (1, 160, 40)
    assert not partials[0, 41:].any()  # 0.4 s = frames 0-40; the rest is zero padding
    # float32 rounding of the mel product differs with the frame count (~1e-4 relative)
    np.testing.assert_allclose(partials, ve.utterance_partials(padded, RATE),
                               atol=1e-4 * partials.max())
    vector = ve.embed(short, RATE, encoder=encoder)
    assert vector.shape == (256,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    assert float(vector @ ve.embed(padded, RATE, encoder=encoder)) > 1 - 1e-5


def test_embed_partials_batches_give_the_same_rows(encoder, waves):
    partials = np.concatenate([ve.utterance_partials(w, RATE) for w in waves.values()][:3])
    whole = ve.embed_partials(partials, encoder=encoder, batch_size=128)
    np.testing.assert_allclose(ve.embed_partials(partials, encoder=encoder, batch_size=2),
                               whole, atol=1e-6)
    assert ve.embed_partials(partials[:0], encoder=encoder).shape == (0, 256)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(AudioError, match="1-D"):
        ve.encoder_frames(np.zeros((2, 100), np.float32), RATE)
    with pytest.raises(AudioError, match="NaN"):
        ve.encoder_frames(np.full(1000, np.nan, np.float32), RATE)
    with pytest.raises(ParameterError, match="sample_rate=0"):
        ve.encoder_frames(np.zeros(1000, np.float32), 0)
    with pytest.raises(ParameterError, match="frames_batch"):
        ve.embed_partials(np.zeros((160, 40), np.float32), encoder=object())


# ------------------------------------------------------------------------ weights file


def _small_arrays(params: ve.EncoderParams) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {name: rng.normal(0, 0.1, shape).astype(np.float32)
            for name, shape in ve.weight_shapes(params).items()}


def test_weights_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.npz"
    with pytest.raises(ModelError, match=f"{missing}: no such file"):
        ve.load_voice_encoder(missing)
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    with pytest.raises(ModelError, match="garbled.npz: not a readable .npz"):
        ve.read_weights(garbled)
    small = ve.EncoderParams(n_mels=4, hidden=3, embedding=2)
    good = tmp_path / "small.npz"
    convert.write_npz(_small_arrays(small), good, np.float32)  # with its .sha256 sidecar
    assert set(ve.read_weights(good, small)) == set(ve.weight_shapes(small))
    with pytest.raises(ModelError, match="linear.weight is float32 \\(2, 3\\), expected"):
        ve.read_weights(good, ve.EncoderParams(n_mels=4, hidden=3, embedding=5), verify=False)
    data = bytearray(good.read_bytes())
    data[-30] ^= 0xFF  # one flipped byte
    good.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="small.npz: checksum mismatch"):
        ve.read_weights(good, small)


def test_small_network_loads_its_weights_where_keras_expects_them(tmp_path):
    small = ve.EncoderParams(n_mels=4, hidden=3, embedding=2, lstm_layers=2)
    arrays = _small_arrays(small)
    path = tmp_path / "small.npz"
    convert.write_npz(arrays, path, np.float32)
    model = ve.load_voice_encoder(path, params=small)
    frames = np.random.default_rng(4).normal(0, 1, (5, 7, 4)).astype(np.float32)
    x = frames.astype(np.float64)
    for layer in range(2):
        x = _numpy_lstm(x, *(arrays[f"lstm.{kind}_l{layer}"].astype(np.float64)
                             for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    z = np.maximum(x[:, -1] @ arrays["linear.weight"].T + arrays["linear.bias"], 0.0)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    expected = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    np.testing.assert_allclose(ve.embed_partials(frames, encoder=model), expected, atol=1e-5)


# --------------------------------------------------------------------------- converter


class _FakeStorage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, data


class _FakeTensor:
    """Pickles as torch's tensors do: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


def _legacy_checkpoint(obj, storages: list[_FakeStorage], monkeypatch) -> bytes:
    """The bytes ``torch.save(obj, _use_new_zipfile_serialization=False)`` writes."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    storage_types = {}
    for name in ("FloatStorage", "LongStorage", "HalfStorage"):
        storage_types[name] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_types[name])

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    kinds = {np.dtype("<f4"): "FloatStorage", np.dtype("<i8"): "LongStorage",
             np.dtype("<f2"): "HalfStorage"}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                return ("storage", storage_types[kinds[obj.data.dtype]], obj.key, "cpu",
                        obj.data.size, None)
            return None

    out = bytearray()
    for header in (convert.LEGACY_MAGIC, convert.LEGACY_PROTOCOL,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        out += pickle.dumps(header, protocol=2)
    import io

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    out += buffer.getvalue()
    out += pickle.dumps([s.key for s in storages], protocol=2)
    for storage in storages:
        out += struct.pack("<q", storage.data.size) + storage.data.tobytes()
    return bytes(out)


def test_converter_reads_a_legacy_checkpoint_exactly(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    flat = rng.normal(0, 1, 40).astype(np.float32)  # one storage shared by three tensors
    steps = np.array([7, -3, 2**40], np.int64)
    half = rng.normal(0, 1, 6).astype(np.float16)
    shared = _FakeStorage("140000001", flat)
    storages = [shared, _FakeStorage("140000002", steps), _FakeStorage("140000003", half)]
    state = OrderedDict([
        ("lstm.weight_ih_l0", _FakeTensor(shared, 0, (4, 5), (5, 1))),
        ("lstm.bias_ih_l0", _FakeTensor(shared, 20, (8,), (1,))),
        ("transposed", _FakeTensor(shared, 28, (3, 4), (1, 3))),  # a strided view
        ("steps", _FakeTensor(storages[1], 0, (3,), (1,))),
        ("half", _FakeTensor(storages[2], 0, (2, 3), (3, 1))),
    ])
    data = _legacy_checkpoint({"step": 12, "model_state": state}, storages, monkeypatch)
    path = tmp_path / "pretrained.pt"
    path.write_bytes(data)
    read, name = convert.checkpoint_bytes(path)
    got = convert.read_legacy_checkpoint(read, name=name)
    assert got["step"] == 12 and list(got["model_state"]) == list(state)
    ms = got["model_state"]
    np.testing.assert_array_equal(ms["lstm.weight_ih_l0"], flat[:20].reshape(4, 5))
    np.testing.assert_array_equal(ms["lstm.bias_ih_l0"], flat[20:28])
    np.testing.assert_array_equal(ms["transposed"], flat[28:40].reshape(4, 3).T)
    np.testing.assert_array_equal(ms["steps"], steps)
    assert ms["half"].dtype == np.float16
    np.testing.assert_array_equal(ms["half"], half.reshape(2, 3))
    # a cut file, and a checkpoint naming a class no state dict needs, are refused
    with pytest.raises(ModelError, match="truncated"):
        convert.read_legacy_checkpoint(data[:-10], name="cut.pt")
    evil = data.replace(b"ctorch._utils\n_rebuild_tensor_v2\n", b"cos\nsystem\n")
    with pytest.raises(ModelError, match="os.system"):
        convert.read_legacy_checkpoint(evil, name="evil.pt")
    with pytest.raises(ModelError, match="no model_state"):
        convert.encoder_arrays({"step": 1}, name="x.pt")


def test_convert_round_trips_a_small_checkpoint_exactly(tmp_path, monkeypatch):
    import hashlib
    import json
    import zipfile

    small = ve.EncoderParams(hidden=3, embedding=2, lstm_layers=1)  # 40 mels: real clips run
    shapes = ve.weight_shapes(small)
    rng = np.random.default_rng(6)
    # multiples of 1/64 in [-1, 1]: exact in float16 too, so either dtype must round-trip
    arrays = {name: (rng.integers(-64, 65, shape) / 64).astype(np.float32)
              for name, shape in shapes.items()}
    flat = np.concatenate([a.ravel() for a in arrays.values()])  # one storage, as Resemblyzer's
    storage = _FakeStorage("94768892331376", flat)
    state, offset = OrderedDict(), 0
    state["similarity_weight"] = _FakeTensor(_FakeStorage("1", np.ones(1, np.float32)), 0,
                                             (1,), (1,))
    for name, shape in shapes.items():
        stride = (shape[1], 1) if len(shape) == 2 else (1,)
        state[name] = _FakeTensor(storage, offset, shape, stride)
        offset += int(np.prod(shape))
    data = _legacy_checkpoint({"step": 3, "model_state": state, "optimizer_state": {}},
                              [storage, state["similarity_weight"].args[0]], monkeypatch)
    source = tmp_path / "pretrained.pt"
    source.write_bytes(data)
    output = tmp_path / "out" / "voice_encoder.npz"
    monkeypatch.setattr(convert, "COSINE_TOLERANCE", -1.0)  # float16 never close enough
    assert convert.convert(source, output, params=small)["dtype"] == "float32"
    monkeypatch.setattr(convert, "COSINE_TOLERANCE", 1.0)  # any change allowed
    record = convert.convert(source, output, params=small)
    assert record["dtype"] == "float16" and record["float16_check_clips"] == len(CLIPS)
    with np.load(output, allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(shapes)  # the training-only entries dropped
        for name, expected in arrays.items():
            np.testing.assert_array_equal(stored[name].astype(np.float32), expected)
            assert stored[name].dtype == np.dtype(record["dtype"])
    assert record["checkpoint_sha256"] == hashlib.sha256(data).hexdigest()
    assert (output.parent / "voice_encoder.npz.sha256").read_text().split()[0] \
        == record["weights_sha256"]
    assert json.loads((output.parent / "voice_encoder.json").read_text()) == record
    with zipfile.ZipFile(output) as archive:  # a fixed date: reconverting gives equal bytes
        assert {info.date_time for info in archive.infolist()} == {convert.NPZ_TIMESTAMP}
    model = ve.load_voice_encoder(output, params=small)
    assert model.output_shape == (None, 2)


def test_importing_the_module_loads_no_keras_tensorflow_or_librosa():
    import subprocess

    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); "
            "import agegender.voice_encoder; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'librosa', 'soxr') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_embed_many_equals_embed_one_at_a_time():
    """The timeline's batched path gives each window the embedding ``embed`` gives it."""
    from agegender.voice_encoder import embed, embed_many

    rng = np.random.default_rng(5)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8_000, 30_000, 52_000)]
    together = embed_many(waves, 16_000)
    assert together.shape == (3, 256)
    for wave, row in zip(waves, together, strict=True):
        np.testing.assert_allclose(row, embed(wave, 16_000), atol=2e-3)


def test_shipped_encoder_matches_torch_on_the_reference_fixture(encoder):
    """``scripts/torch_reference.py`` ran ``torch.nn.LSTM`` with Resemblyzer's own state dict on
    these frames (torch 2.13, float64); the Keras port with torch's float32 weights was within
    2.2e-7 of it. The shipped float16 weights were within 2.8e-4 (1 − cosine 4e-7): a swapped
    gate, a lost bias or a transposed kernel moves embeddings by orders of magnitude more."""
    with np.load(ROOT / "tests" / "data" / "voice_encoder_torch_reference.npz",
                 allow_pickle=False) as fixture:
        frames, expected = fixture["frames"], fixture["embeddings"]
    assert frames.shape == (4, 160, 40) and expected.shape == (4, 256)
    got = ve.embed_partials(frames, encoder=encoder)
    assert np.max(np.abs(got - expected)) <= 1e-3
    assert np.max(1.0 - np.sum(got * expected, axis=1)) <= 1e-5

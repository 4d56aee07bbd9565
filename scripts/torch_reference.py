#!/usr/bin/env python3
"""Checks the Keras voice encoder against ``torch.nn.LSTM`` with Resemblyzer's own weights.

Needs PyTorch, which the product never does: run it where torch is at hand, e.g.

    python -m venv --system-site-packages /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0
    pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz
    /tmp/torchvenv/bin/python scripts/torch_reference.py \
        --source /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl

``pretrained.pt`` is read by ``torch.load`` (not by ``convert_voice_encoder.py``'s unpickler,
so a fault there cannot hide here) into a torch network of GE2E's shape: ``nn.LSTM(40, 256,
3, batch_first=True)``, ``nn.Linear(256, 256)``, ReLU on the last step of the top layer, L2
norm. On the same partials (``utterance_partials`` of two shipped CC0 clips, 160 × 40 mel
power frames each) it prints how far from torch are (a) the Keras port loaded with torch's
float32 state dict and (b) the shipped encoder (``voice_encoder.npz``, float16 weights), and
writes the frames and torch's embeddings to ``tests/data/voice_encoder_torch_reference.npz``,
the fixture ``tests/test_voice_encoder.py`` checks the shipped encoder against in CI (where
there is no torch).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FIXTURE = ROOT / "tests" / "data" / "voice_encoder_torch_reference.npz"
CLIPS = ("common_voice_it_17420783.mp3", "common_voice_pl_21385213.mp3")
PARTIALS_PER_CLIP = 2


def torch_state(source: Path) -> dict[str, np.ndarray]:
    """Resemblyzer's ``model_state`` as float32 arrays, read by ``torch.load``."""
    import torch  # noqa: PLC0415

    data = (zipfile.ZipFile(source).read("resemblyzer/pretrained.pt")
            if source.suffix == ".whl" else source.read_bytes())
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return {key: value.detach().numpy().astype(np.float32)
            for key, value in checkpoint["model_state"].items()}


def torch_embeddings(state: dict[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    """GE2E in torch: [n, 160, 40] frames → [n, 256] unit-norm embeddings (float64 math)."""
    import torch  # noqa: PLC0415

    lstm = torch.nn.LSTM(40, 256, 3, batch_first=True).double()
    linear = torch.nn.Linear(256, 256).double()
    lstm.load_state_dict({key[len("lstm."):]: torch.from_numpy(value).double()
                          for key, value in state.items() if key.startswith("lstm.")})
    linear.load_state_dict({key[len("linear."):]: torch.from_numpy(value).double()
                            for key, value in state.items() if key.startswith("linear.")})
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(frames.astype(np.float64)))
        raw = torch.relu(linear(hidden[-1]))  # [n, 256], the top layer's last step
        out = raw / torch.linalg.norm(raw, dim=1, keepdim=True)
    return out.numpy()


def keras_port(state: dict[str, np.ndarray]):
    """The product's Keras encoder with torch's float32 weights."""
    from agegender import voice_encoder  # noqa: PLC0415

    model = voice_encoder.build_voice_encoder()
    wanted = voice_encoder.weight_shapes()
    for layer, values in voice_encoder.keras_weights({k: state[k] for k in wanted}).items():
        model.get_layer(layer).set_weights(values)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, type=Path,
                        help="Resemblyzer-0.1.4-py3-none-any.whl, or its pretrained.pt")
    parser.add_argument("--output", default=str(FIXTURE))
    args = parser.parse_args(argv)
    import torch  # noqa: PLC0415

    from agegender import voice_encoder  # noqa: PLC0415
    from agegender.config import FeatureParams  # noqa: PLC0415
    from agegender.features import load_clip  # noqa: PLC0415

    params = FeatureParams()
    frames = np.concatenate([
        voice_encoder.utterance_partials(
            load_clip(ROOT / "models" / "pretrained" / "clips" / clip, params),
            params.sample_rate)[:PARTIALS_PER_CLIP] for clip in CLIPS]).astype(np.float32)
    state = torch_state(args.source)
    reference = torch_embeddings(state, frames)
    port = voice_encoder.embed_partials(frames, encoder=keras_port(state))
    shipped = voice_encoder.embed_partials(frames, encoder=voice_encoder.load_voice_encoder())
    figures = {
        "torch": torch.__version__,
        "partials": int(frames.shape[0]),
        "port_float32_max_abs": float(np.max(np.abs(port - reference))),
        "shipped_float16_max_abs": float(np.max(np.abs(shipped - reference))),
        "shipped_float16_largest_1_minus_cosine": float(
            np.max(1.0 - np.sum(shipped * reference, axis=1))),
    }
    print(json.dumps(figures, indent=2))
    np.savez_compressed(args.output, frames=frames, embeddings=reference.astype(np.float32),
                        clips=np.array(CLIPS), figures=json.dumps(figures))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

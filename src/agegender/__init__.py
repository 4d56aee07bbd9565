"""Speaker gender and age from speech.

What ships: ``models/pretrained/gender.keras``, a logistic regression on a clip's speaker
embedding (from the pretrained GE2E voice encoder, ``models/pretrained/voice_encoder.npz``)
and its 45 voice statistics (F0 and spectral envelope), trained on the Common Voice speakers
of ``../shared/cv-sample``; ``AgeGenderDetector()`` and ``src/inference.py`` use it when given
no model. No age model ships.

What ``src/train.py`` builds: the MAM-CNN of Tursunov et al., Sensors 2021, 21(17):5892 (the
default architecture, ``mam_cnn``), that network with the voice statistics or the embedding
fused in (``--pitch_input``, ``--embedding_input``), the voice-statistics model alone
(``--architecture=voice_stats``) and heads on the embedding (``--architecture=embedding``).

Where each is measured: the model card ``models/pretrained/README.md`` (the shipped model and
every gender run on the same unseen speakers), ``bench/README.md`` (the scripts that measure
it again, speed and the timeline) and ``docs/experiments.md`` (the settled experiments).

Importing the package is cheap: Keras and TensorFlow (about 3.5 s) load only when something
uses them, so preprocessing never pays for them. ``keras.models.load_model("x.keras")``
still works after ``import agegender``: the custom layers register as soon as Keras is
imported (at once if it already is, else by a one-shot import hook; why a hook and not an
``import keras`` here, measured: docs/architecture.md, "Machinery kept and removed").
"""

from __future__ import annotations

import os
import sys

# TensorFlow reads this once, when it loads; set before anything imports it (never imported
# here) so that its C++ INFO and WARNING log stays quiet for every user of the package.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["AgeGenderDetector", "__version__"]


def __getattr__(name: str):
    """``agegender.AgeGenderDetector``, imported on first use (it needs Keras)."""
    if name == "AgeGenderDetector":
        from agegender.inference import AgeGenderDetector  # noqa: PLC0415

        return AgeGenderDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _AroundFirstImport:
    """A one-shot ``sys.meta_path`` finder that wraps the first import of one module.

    The module is found through the other finders as usual, and its loader's ``exec_module``
    is wrapped by :meth:`around`. The finder removes itself on its first lookup of that name,
    so it fires once and never recurses.
    """

    module = ""

    def find_spec(self, name, path=None, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_original = loader.exec_module
        loader.exec_module = lambda module: self.around(exec_original, module)
        return spec

    def around(self, exec_module, module) -> None:
        """Runs ``exec_module(module)``, with whatever the subclass needs around it."""
        raise NotImplementedError


class _RegisterLayersAfterKeras(_AroundFirstImport):
    """Registers our layers right after ``keras`` loads.

    Why: safe-mode ``keras.models.load_model`` finds custom layers only when registered, and
    registering means importing Keras, which ``import agegender`` must not do.
    """

    module = "keras"

    def around(self, exec_module, module) -> None:
        exec_module(module)
        import agegender.keras_metrics  # noqa: F401,PLC0415  (registers the metric)
        import agegender.layers  # noqa: F401,PLC0415  (registers the custom layers)


class _QuietTensorFlowImport(_AroundFirstImport):
    """Keeps TensorFlow's 4 import lines off stderr.

    Why: ``TF_CPP_MIN_LOG_LEVEL`` does not reach them (absl writes them before its log is
    initialised): twice "WARNING: All log messages before absl::InitializeLog() ..." and
    twice "oneDNN custom operations are on ..." (``TF_ENABLE_ONEDNN_OPTS=0`` would hide the
    latter but change speed and numerics). So the first ``import tensorflow`` (also the one
    inside ``import keras``) runs inside ``native_stderr.filtered_stderr``, which drops those
    known lines and passes on every other.
    """

    module = "tensorflow"

    def around(self, exec_module, module) -> None:
        from agegender.native_stderr import filtered_stderr  # noqa: PLC0415

        with filtered_stderr():
            exec_module(module)


if "tensorflow" not in sys.modules and not any(
    isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path
):
    sys.meta_path.insert(0, _QuietTensorFlowImport())

if "keras" in sys.modules:
    from agegender import keras_metrics as _metrics  # noqa: F401  (registers the metric)
    from agegender import layers as _layers  # noqa: F401  (registers the custom layers)
elif not any(isinstance(finder, _RegisterLayersAfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersAfterKeras())

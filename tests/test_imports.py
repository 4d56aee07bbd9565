"""Import cost follows use: the data side never loads TensorFlow or Keras, and the custom
layers still register whenever Keras is imported after ``import agegender``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("preprocess_dataset.py", "make_demo_dataset.py", "train.py", "test.py",
           "inference.py")


def run_python(code: str, *, cwd: Path) -> str:
    """Runs ``code`` in a fresh interpreter with src/ and tests/ importable; returns stdout."""
    prelude = (f"import sys; sys.path[:0] = [{str(ROOT / 'src')!r}, "
               f"{str(ROOT / 'tests')!r}]\n")
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2",
                               "MPLBACKEND": "Agg", "HOME": str(cwd)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_agegender_loads_no_tensorflow(tmp_path):
    out = run_python("""
        import agegender
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """, cwd=tmp_path)
    assert out.strip() == "[]"


def test_preprocessing_never_imports_tensorflow_or_keras(tmp_path):
    # Two workers: the fork happens, and it is safe only because TensorFlow never loaded.
    out = run_python(f"""
        from synth import make_raw_corpus
        from agegender.config import FeatureParams, PreprocessParams
        from agegender.preprocess import preprocess

        root = make_raw_corpus(__import__("pathlib").Path({str(tmp_path / "corpus")!r}))
        summary = preprocess(root, params=PreprocessParams(dataset_type="raw", num_workers=2,
                                                           shard_size=10),
                             features=FeatureParams(image_size=16),
                             results_dir=root.parent / "results")
        print(summary["examples"])
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """, cwd=tmp_path)
    examples, loaded = out.strip().splitlines()
    assert examples == "{'train': 24, 'dev': 12, 'test': 12}"
    assert loaded == "[]"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_imports_no_tensorflow(script, tmp_path):
    out = run_python(f"""
        import runpy
        sys.argv = [{script!r}, "--help"]
        try:
            runpy.run_path({str(ROOT / "src" / script)!r}, run_name="__main__")
        except SystemExit as done:
            assert done.code == 0, done.code
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """, cwd=tmp_path)
    assert "usage:" in out  # the help was printed
    assert out.strip().splitlines()[-1] == "[]"


def test_keras_imported_after_agegender_loads_our_models_in_safe_mode(tmp_path):
    from agegender.config import ModelParams
    from agegender.model import build_model

    path = tmp_path / "tiny.keras"
    build_model(ModelParams(image_size=16, num_classes=2, task="gender",
                            class_names=("male", "female"))).save(path)
    out = run_python(f"""
        import agegender
        import keras
        model = keras.models.load_model({str(path)!r})
        print(type(model.layers[-1]).__module__, model.output_shape)
    """, cwd=tmp_path)
    assert out.strip() == "agegender.layers (None, 2)"


def test_agegender_imported_after_keras_registers_the_layers_at_once(tmp_path):
    out = run_python("""
        import keras
        import agegender
        print("agegender.layers" in sys.modules)
    """, cwd=tmp_path)
    assert out.strip() == "True"


def test_detector_is_a_lazy_package_attribute(tmp_path):
    out = run_python("""
        import agegender
        from agegender.inference import AgeGenderDetector
        print(agegender.AgeGenderDetector is AgeGenderDetector)
    """, cwd=tmp_path)
    assert out.strip() == "True"

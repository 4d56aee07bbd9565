"""Tests of notebooks/walkthrough.ipynb: saved clean, and runs top to bottom on a tiny corpus."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
# What the notebook writes by default (corpus, model, reports); a run configured elsewhere
# must leave these alone. Only these: the rest of data/, models/ and results/ is the user's,
# who may change it while the tests run.
NOTEBOOK_DEFAULT_OUTPUTS = ("data/DemoVoice", "models/gender", "results/gender",
                            "results/DemoVoice", "results/dataset_summary.png")
CLIP_NAME = re.compile(r"cv-valid-test/sample-\d{6}\.mp3")


def _files_under(root: Path, paths: tuple[str, ...] = NOTEBOOK_DEFAULT_OUTPUTS) -> set[str]:
    """Every existing path among ``paths`` and below them, relative to ``root``."""
    found = set()
    for path in (root / name for name in paths):
        if path.exists() or path.is_symlink():
            found.add(str(path.relative_to(root)))
            if path.is_dir():
                found |= {str(p.relative_to(root)) for p in path.rglob("*")}
    return found


def test_snapshot_sees_the_notebooks_outputs_not_the_users_other_folders(tmp_path):
    (tmp_path / "data" / "DemoVoice").mkdir(parents=True)
    before = _files_under(tmp_path)
    (tmp_path / "data" / "MyVoices").mkdir()  # the user's own work, beside the tests
    (tmp_path / "results" / "age").mkdir(parents=True)
    assert _files_under(tmp_path) == before
    for written in ("results/gender/best_model_gender/test_log_gender.txt", "data/DemoVoice/TFRecord/x",
                    "results/DemoVoice/dataset_summary.png", "models/gender/best.keras"):
        (tmp_path / written).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / written).write_text("x")
        assert written in _files_under(tmp_path)


def _ensure_python3_kernel() -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        # Local: copies ipykernel's kernel.json into sys.prefix/share/jupyter/kernels.
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
                       check=True, capture_output=True)


def _outputs(cell) -> list:
    return cell.get("outputs", [])


def _text(cell) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for output in _outputs(cell):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def test_notebook_is_saved_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} was saved with outputs"
        assert cell.execution_count is None, f"cell {cell.id} was saved with an execution count"
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="needs espeak-ng for the demo corpus (apt-get install espeak-ng)")
def test_notebook_runs_on_a_tiny_demo_corpus(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from agegender import demo

    corpus = tmp_path / "DemoVoice"
    # The smallest corpus DemoParams allows (one speaker of each group per split), 2 clips each.
    demo.make_demo_dataset(corpus, demo.DemoParams(num_speakers=36, sentences_per_speaker=2,
                                                   seed=5), num_workers=2, progress=False)
    models, results = tmp_path / "models", tmp_path / "results"
    # The kernel is a child process: it inherits os.environ as it is when the client starts.
    monkeypatch.setenv("AGEGENDER_DEMO_DIR", str(corpus))
    monkeypatch.setenv("AGEGENDER_MODELS_DIR", str(models))
    monkeypatch.setenv("AGEGENDER_RESULTS_DIR", str(results))
    monkeypatch.setenv("AGEGENDER_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    _ensure_python3_kernel()
    before = _files_under(ROOT)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(ROOT)}}).execute()

    cells = {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}
    errors = [(cell_id, output.get("ename")) for cell_id, cell in cells.items()
              for output in _outputs(cell) if output.output_type == "error"]
    assert errors == []
    images = [cell_id for cell_id, cell in cells.items() for output in _outputs(cell)
              if "image/png" in output.get("data", {})]
    # Class bars, waveform, the three feature images, curves, confusion matrix.
    assert len(images) >= 5, images
    for cell_id in ("corpus", "clip", "clip-images", "training-curves", "confusion"):
        assert cell_id in images, f"cell {cell_id} shows no image"
    assert str(corpus) in _text(cells["setup"])
    assert "balanced accuracy (UAR)" in _text(cells["confusion"])

    shown = set(CLIP_NAME.findall(_text(cells["inference"])))
    test_clips = set(pd.read_csv(corpus / demo.corpus_csv_name("test"))["filename"])
    assert len(shown) >= 4, _text(cells["inference"])
    assert shown <= test_clips
    assert re.search(r"\d+ of \d+ right", _text(cells["inference"]))
    assert "task 'gender'" in _text(cells["own-code"])

    # What the notebook needed went to tmp_path, and nothing to the repository's folders.
    assert (models / "gender" / "best_model_gender.keras").is_file()
    for name in ("train_logs_gender.csv", "confusion_matrix_gender.png",
                 "test_log_gender.txt"):
        assert (results / "gender" / "best_model_gender" / name).is_file(), name
    assert (results / corpus.name / "dataset_summary.png").is_file()
    assert (corpus / "TFRecord").is_dir()
    assert _files_under(ROOT) == before

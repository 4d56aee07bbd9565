"""Every ```python block of README.md runs as written, from a folder outside the repository.

The blocks run in a subprocess with the temporary folder as working directory and only
``PYTHONPATH=src`` (what ``pip install -e .`` gives), against a tiny trained model and tiny
audio files created at the paths the README names. So the README cannot drift from the code.
Each block gets its own copy of what ``scripts/demo.sh`` leaves behind (model and clips) and
nothing more: a block that reads an export or any other file must make it itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from synth import voice, write_audio

README = ROOT / "README.md"
BENCH_README = ROOT / "bench" / "README.md"
# The original project's four commands; users arrive with them, so they stay documented as written.
ORIGINAL_COMMANDS = (
    "python src/preprocess_dataset.py --dataset_dir='data/CommonVoice/' --dataset_type='clean'",
    ("python src/train.py --dataset_dir='data/CommonVoice' --cls_task='age' --num_epochs=20 "
     "--show_live_plot=True"),
    ("python src/test.py --dataset_dir='data/CommonVoice' "
     "--model_path='models/age/best_model_age.keras' --cls_task='age'"),
    ("python src/inference.py --model_path='models/age/best_model_age.keras' "
     "--audio_file='data/CommonVoice/Audio/cv-valid-test/sample-000001.mp3' --cls_task='age'"),
)
# A Markdown link to a file of the repository, optionally with an anchor: [text](path#anchor).
LOCAL_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s]*)\)")
# A script or file of the repository named in prose or a command (bench/x.py, src/y.py, ...).
REPO_FILE = re.compile(r"(?<![\w/.-])((?:bench|src|scripts|tests|docs|notebooks)/[\w./-]+"
                       r"\.(?:py|sh|md|ipynb))")
DEMO_TEST_CLIPS = "data/DemoVoice/cv-valid-test/cv-valid-test"
GENDER_MODEL = "models/gender/best_model_gender.keras"
# A string literal naming a file or folder of the working tree (not a URL or a module).
PATH_LITERAL = re.compile(r"""["']((?:models|data|exported|results)/[^"'{}]+)["']""")
# Folders the blocks write into themselves; everything else they name must be a demo output.
OUTPUT_PREFIXES = ("exported/",)


def python_blocks(text: str) -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_has_python_blocks_that_name_real_files():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2
    assert any(GENDER_MODEL in block for block in blocks)
    assert any("clip_image(" in block for block in blocks)  # images made, not assumed
    for block in blocks:
        compile(block, "README.md", "exec")  # each block is whole Python on its own


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown,
                                                flags=re.MULTILINE | re.DOTALL),
                          flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_first_screen_is_the_two_commands_and_a_snippet():
    head = README.read_text().split("\n## ")[0]
    (snippet,) = python_blocks(head)
    assert "AgeGenderDetector" in snippet and GENDER_MODEL in snippet
    assert len(head.splitlines()) <= 30  # one screen


def test_the_original_commands_are_documented_as_written():
    text = README.read_text()
    for command in ORIGINAL_COMMANDS:
        assert command in text.splitlines(), command


@pytest.mark.parametrize("page", [README, BENCH_README], ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_named_files_exist(page):
    """Every local link (and its heading anchor) resolves, and every repository file the page
    names exists: a moved section or a removed benchmark cannot leave a dangling pointer."""
    text, where = page.read_text(), page.relative_to(ROOT)
    for target in LOCAL_LINK.findall(text):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{where}: link to {target}"
        if anchor:
            assert anchor in _anchors(linked.read_text()), f"{where}: anchor of {target}"
    for name in REPO_FILE.findall(text):
        assert (ROOT / name).exists(), f"{where} names {name}, which does not exist"


def test_install_script_installs_the_package():
    script = (ROOT / "scripts" / "install.sh").read_text()
    requirements = script.index('-r "$ROOT/requirements.txt"')
    editable = script.index('-e "$ROOT"')
    assert requirements < editable  # the package after its dependencies
    head = README.read_text().split("## ")[0]
    assert "pip install -e ." in head


@pytest.fixture(scope="module")
def readme_world(trained_gender, tmp_path_factory) -> Path:
    """A folder holding what ``scripts/demo.sh`` leaves that the README's blocks read: the
    demo's gender model and four demo test clips (MP3), at the README's paths, and what a
    clone holds: ``models/pretrained/`` (the shipped models and their CC0 clips). Nothing
    else (no SavedModel export: the README's block makes its own)."""
    world = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "models" / "pretrained", world / "models" / "pretrained")
    model = world / GENDER_MODEL
    model.parent.mkdir(parents=True)
    shutil.copy(trained_gender["keras"], model)
    shutil.copy(trained_gender["state"], model.with_suffix(".json"))
    for i, (gender, age) in enumerate([("female", "twenties"), ("male", "fifties"),
                                       ("female", "sixties"), ("male", "teens")]):
        write_audio(world / DEMO_TEST_CLIPS / f"sample-{i:06d}.mp3",
                    voice(gender, age, seed=500 + i, rate=48_000), 48_000)
    return world


def _expand(literal: str) -> list[str]:
    """A path literal, with the README's f-string range over the four clips expanded."""
    if "{i}" not in literal:
        return [literal]
    return [literal.replace("{i}", str(i)) for i in range(4)]


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_python_block_runs_as_written(readme_world, index, tmp_path):
    block = python_blocks(README.read_text())[index]
    literals = PATH_LITERAL.findall(block.replace("{i}", "0"))
    for literal in literals:
        if literal.startswith(OUTPUT_PREFIXES):
            continue
        assert (readme_world / literal).exists(), f"README block {index} names {literal}, " \
                                                  "which neither the demo nor a clone has"
    world = tmp_path / "clone"  # a fresh copy per block: no block sees another's outputs
    shutil.copytree(readme_world, world)
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script)], cwd=world, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README python block {index}:\n{block}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "each block prints what it computed"
    if GENDER_MODEL in block and "AgeGenderDetector" in block:
        predicted = [line for line in done.stdout.splitlines()
                     if line.startswith(DEMO_TEST_CLIPS)]
        assert len(predicted) == 4, done.stdout
        assert {line.split()[1] for line in predicted} <= {"male", "female"}

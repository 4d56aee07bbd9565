"""README.md and the docs/ pages it sends readers to say what the code does.

Every ```python block of README.md and of ``docs/models.md`` runs as written, from a folder
outside the repository, in a subprocess with the temporary folder as working directory and only
``PYTHONPATH=src`` (what ``pip install -e .`` gives), against a tiny trained model and tiny
audio files created at the paths the pages name, beside a copy of ``models/pretrained/`` (what
a clone holds). So the pages cannot drift from the code. Each block gets its own copy of what
``scripts/demo.sh`` leaves behind (model and clips) and nothing more: a block that reads an
export or any other file must make it itself. The README's first snippet needs no demo at all,
and what it prints is the output the README shows under it.
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
MODEL_CARD = ROOT / "models" / "pretrained" / "README.md"
# The pages README.md sends readers to for what it no longer holds itself.
DOC_PAGES = tuple(ROOT / "docs" / f"{name}.md"
                  for name in ("models", "presets", "training", "timeline", "demo"))
# Pages whose ```python blocks run as written.
CODE_PAGES = (README, ROOT / "docs" / "models.md")
README_MAX_LINES = 250
FIRST_SCREEN_MAX_LINES = 35
SHIPPED_CLIPS = "models/pretrained/clips/"
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
    """A page's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _code_blocks() -> list[tuple[Path, int]]:
    """(page, index) of every ```python block of the pages whose blocks run."""
    return [(page, i) for page in CODE_PAGES for i in range(len(python_blocks(page.read_text())))]


def first_screen(text: str) -> tuple[str, list[str]]:
    """The README's first snippet and the lines of the output block printed under it."""
    head = text.split("\n## ")[0]
    (snippet,) = python_blocks(head)
    after = head[head.index(snippet) + len(snippet):].split("```", 1)[1]  # past its fence
    shown = re.search(r"^```\n(.*?)^```", after, flags=re.MULTILINE | re.DOTALL)
    assert shown, "README: the first snippet's output is shown under it in a ``` block"
    return snippet, shown.group(1).splitlines()


def test_pages_have_python_blocks_that_name_real_files():
    blocks = [block for page in CODE_PAGES for block in python_blocks(page.read_text())]
    assert len(blocks) >= 3
    assert any(GENDER_MODEL in block for block in blocks)
    assert any("models/pretrained/gender.keras" in block for block in blocks)
    assert any("clip_image(" in block for block in blocks)  # images made, not assumed
    assert any('{"spectrogram":' in block for block in blocks)  # models take named inputs
    for page in CODE_PAGES:
        for block in python_blocks(page.read_text()):
            compile(block, _name(page), "exec")  # each block is whole Python on its own


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown,
                                                flags=re.MULTILINE | re.DOTALL),
                          flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_first_screen_is_the_two_commands_and_a_snippet_that_needs_no_demo():
    text = README.read_text()
    head = text.split("\n## ")[0]
    snippet, shown = first_screen(text)
    assert "AgeGenderDetector()" in snippet  # no path: the shipped model
    assert SHIPPED_CLIPS in snippet and GENDER_MODEL not in snippet and "data/" not in snippet
    clips = sorted(p.name for p in (ROOT / SHIPPED_CLIPS).glob("*.mp3"))
    assert [line.split()[0].rsplit("/", 1)[-1] for line in shown] == clips
    assert head.index("bash scripts/demo.sh") < head.index(snippet)
    assert len(head.splitlines()) <= FIRST_SCREEN_MAX_LINES  # one screen


def test_readme_is_short_and_gives_no_test_count():
    """The README points to docs/ pages instead of growing, and states no number of tests
    (a count typed by hand goes stale with the next test added)."""
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for page in (README, *DOC_PAGES):
        assert not re.search(r"\b\d[\d,]* tests\b", page.read_text()), _name(page)


def test_one_command_evaluates_on_the_share_and_the_timeline_uses_the_shipped_model():
    """Issue 33: a new user finds one command that scores the shipped model on
    ``../shared/cv-sample`` (only read: outputs under data/), and the timeline example runs
    the shipped model, not a demo model trained on synthetic voices."""
    lines = README.read_text().splitlines()
    share = [line for line in lines if "--dataset_dir=../shared/cv-sample" in line]
    assert len(share) == 1 and "src/test.py" in share[0] and "--output_dir=data/" in share[0]
    assert "--model_path" not in share[0]  # test.py's default: the shipped model
    timeline = [c for line in lines for c in re.findall(r"`(python src/inference\.py[^`]*)`", line)
                if "--timeline" in c]
    assert timeline and not any("--model_path" in c for c in timeline)


def test_every_summary_says_what_ships_and_what_train_builds():
    """Title, package description, package docstring and model card agree: the shipped model
    reads the speaker embedding and the voice statistics, no age model ships, and train.py
    builds the MAM-CNN."""
    import tomllib  # noqa: PLC0415

    import agegender  # noqa: PLC0415

    summaries = {
        "README title": README.read_text().splitlines()[0],
        "pyproject description": tomllib.loads((ROOT / "pyproject.toml").read_text())[
            "project"]["description"],
        "package docstring": agegender.__doc__,
        "model card": MODEL_CARD.read_text().split("\n## ")[0],
    }
    summaries = {where: " ".join(text.split()) for where, text in summaries.items()}
    for where, text in summaries.items():
        assert "voice-statistics" in text or "voice statistics" in text, where
        assert "embedding" in text, where
        assert "MAM-CNN" in text, where
    for where in ("package docstring", "model card"):
        assert "No age model ships" in summaries[where], where
        assert "--architecture=embedding" in summaries[where], where


def test_the_original_commands_are_documented_as_written():
    text = README.read_text()
    for command in ORIGINAL_COMMANDS:
        assert command in text.splitlines(), command


@pytest.mark.parametrize("page", [README, BENCH_README, MODEL_CARD, *DOC_PAGES], ids=_name)
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
    """A folder holding what ``scripts/demo.sh`` leaves that the pages' blocks read: the
    demo's gender model and four demo test clips (MP3), at the pages' paths, and what a
    clone holds: ``models/pretrained/`` (the shipped models and their CC0 clips). Nothing
    else (no SavedModel export: the block that serves one makes its own)."""
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
    """A path literal, with the pages' f-string range over the four clips expanded."""
    if "{i}" not in literal:
        return [literal]
    return [literal.replace("{i}", str(i)) for i in range(4)]


def _printed_matches(shown: list[str], printed: list[str]) -> None:
    """``printed`` is ``shown``: the same files and labels in order, each probability within
    0.002 (the last printed digit may round the other way on another CPU)."""
    assert len(printed) == len(shown), (shown, printed)
    for want, got in zip(shown, printed, strict=True):
        (want_file, want_label, want_p), (got_file, got_label, got_p) = want.split(), got.split()
        assert (got_file, got_label) == (want_file, want_label), (want, got)
        assert abs(float(got_p) - float(want_p)) <= 0.002, (want, got)


@pytest.mark.parametrize("page,index", _code_blocks(),
                         ids=[f"{_name(p)}-{i}" for p, i in _code_blocks()])
def test_python_block_runs_as_written(readme_world, page, index, tmp_path):
    block = python_blocks(page.read_text())[index]
    where = f"{_name(page)} block {index}"
    literals = PATH_LITERAL.findall(block.replace("{i}", "0"))
    for literal in literals:
        if literal.startswith(OUTPUT_PREFIXES):
            continue
        assert (readme_world / literal).exists(), f"{where} names {literal}, " \
                                                  "which neither the demo nor a clone has"
    world = tmp_path / "clone"  # a fresh copy per block: no block sees another's outputs
    shutil.copytree(readme_world, world)
    script = tmp_path / f"block_{index}.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script)], cwd=world, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{where}:\n{block}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "each block prints what it computed"
    if page == README and index == 0:  # the first screen: what it prints is what it shows
        snippet, shown = first_screen(README.read_text())
        assert block == snippet
        _printed_matches(shown, done.stdout.strip().splitlines())
    if GENDER_MODEL in block and "AgeGenderDetector" in block:
        predicted = [line for line in done.stdout.splitlines()
                     if line.startswith(DEMO_TEST_CLIPS)]
        assert len(predicted) == 4, done.stdout
        assert {line.split()[1] for line in predicted} <= {"male", "female"}

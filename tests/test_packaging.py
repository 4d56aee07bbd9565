"""requirements.txt, environment.yml and the install scripts agree."""

from __future__ import annotations

import re

from conftest import ROOT


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_requirements_are_pinned():
    for requirement in _requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.]*", requirement), requirement


def test_environment_yml_pip_list_equals_requirements():
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:")[1]
    pinned = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    assert pinned == _requirements()
    assert "python=3.11" in text


def test_tensorflow_io_is_not_a_dependency():
    names = [requirement.split("==")[0] for requirement in _requirements()]
    assert "tensorflow-io" not in names
    assert "tensorflow-cpu" in names and "keras" in names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_command = "bash scripts/test.sh"
    assert readme.splitlines()[3].startswith("bash scripts/demo.sh")
    assert readme.splitlines()[4].startswith(test_command)
    ci = (ROOT / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
            ] == [test_command]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_package_needs_ranges_and_the_lock_pins_inside_them():
    from packaging.requirements import Requirement

    project = _pyproject()
    pins = {Requirement(line).name: next(iter(Requirement(line).specifier)).version
            for line in _requirements()}
    runtime = [Requirement(text) for text in project["dependencies"]]
    tests = [Requirement(text) for text in project["optional-dependencies"]["test"]]
    for requirement in runtime + tests:
        assert requirement.name in pins, requirement
        assert requirement.specifier.contains(pins[requirement.name]), (requirement,
                                                                          pins[requirement.name])
        assert "==" not in str(requirement.specifier), requirement  # a range, not a pin
    # Test tools are not runtime dependencies, and the lock holds nothing unexplained.
    assert not {r.name for r in runtime} & {"pytest", "nbclient", "ipykernel", "nbformat"}
    assert set(pins) == {r.name for r in runtime + tests}


def test_tensorboard_viewer_is_an_extra_matching_tensorflow_and_the_readme_says_how():
    import tomllib  # noqa: PLC0415

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    tensorflow = next(r.split("==")[1] for r in _requirements()
                      if r.startswith("tensorflow-cpu=="))
    (pin,) = extras["tensorboard"]
    name, version = pin.split("==")
    assert name == "tensorboard"
    assert version.split(".")[:2] == tensorflow.split(".")[:2]  # TensorBoard follows TF
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[tensorboard]'" in readme
    assert "tensorboard --logdir results/<task>/best_model_<task>/tensorboard" in readme

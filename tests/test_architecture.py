"""The package's import graph flows one way, and private framework modules stay in compat.py.

An AST walk over ``src/agegender``: every ``import`` and ``from ... import`` at any level
(module top, inside functions, under ``if TYPE_CHECKING``), relative ones resolved. No
import is executed, so the walk sees the imports a run would take only on some paths.
"""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agegender"

# Framework modules that are not public API: import them only in compat.py.
PRIVATE_PREFIXES = ("tensorflow.python", "tensorflow.core", "tensorflow.compiler",
                    "tensorflow.lite.python", "keras.src", "keras._tf_keras", "tf_keras",
                    "tensorflow_core")
FRAMEWORKS = ("tensorflow", "keras", "tf_keras")
COMPAT = "agegender.compat"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``src/agegender/demo/voices.py`` → ``agegender.demo.voices``."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str], package: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every module an import statement in ``path`` names (absolute names), with its line.

    ``from X import name`` names ``X.name`` when that is a module in ``modules`` (a
    submodule), else ``X`` (a name defined in ``X``): ``from agegender import atomic`` is an
    edge to ``agegender.atomic``, ``from agegender import __version__`` one to ``agegender``.
    """
    name = module_name(path, package)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                found.append((sub if sub in modules else origin, node.lineno))
    return found


def package_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], dict]:
    """The package's own import graph: module → modules it imports (lines in ``where``).

    Importing ``agegender.x`` runs ``agegender/__init__.py`` first, but that implied edge
    is left out (else any import in ``__init__`` would be a cycle): an edge to a package
    counts only when the package itself is named (``from agegender import __version__``).
    """
    files = {module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    where: dict[tuple[str, str], int] = {}
    for name, path in files.items():
        for target, line in imports_of(path, set(files), package):
            if target in files and target != name:
                graph[name].add(target)
                where.setdefault((name, target), line)
    return graph, where


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or ``None`` when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def is_private(target: str) -> bool:
    """A framework module that is not public API: a known internal package, or any
    dotted part starting with ``_`` under tensorflow/keras."""
    if any(target == prefix or target.startswith(prefix + ".") for prefix in PRIVATE_PREFIXES):
        return True
    parts = target.split(".")
    return parts[0] in FRAMEWORKS and any(part.startswith("_") for part in parts[1:])


def private_imports(package: Path = PACKAGE) -> list[str]:
    """``file:line imports name`` for each private framework import outside compat.py."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if module_name(path, package) == COMPAT:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found += [f"{path.relative_to(package.parent)}:{node.lineno} imports {name}"
                      for name in names if is_private(name)]
    return found


def cyclic_groups(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other, directly or around a loop: every strongly
    connected group of two or more (Tarjan), each sorted, the groups sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_the_package_import_graph_has_no_cycle():
    graph, where = package_graph()
    lines = []
    for group in cyclic_groups(graph):
        inside = {name: graph[name] & set(group) for name in group}
        cycle = find_cycle(inside)
        lines.append(f"{len(group)} modules import each other: {', '.join(group)}")
        lines += [f"    {a} → {b} (line {where[a, b]})" for a, b in zip(cycle, cycle[1:])]
    assert not lines, "import cycles:\n" + "\n".join(lines)


def missing_modules(package: Path = PACKAGE) -> list[str]:
    """``file:line imports name`` for each import of a package module that does not exist
    (a module removed while a function-level import of it stayed behind)."""
    files = {module_name(path, package) for path in package.rglob("*.py")}
    root = package.name
    found = []
    for path in sorted(package.rglob("*.py")):
        for target, line in imports_of(path, files, package):
            if (target == root or target.startswith(root + ".")) and target not in files:
                found.append(f"{path.relative_to(package.parent)}:{line} imports {target}")
    return found


def test_every_package_import_names_a_module_that_exists():
    found = missing_modules()
    assert not found, "imports of missing modules:\n  " + "\n  ".join(found)


def test_private_framework_modules_only_in_compat():
    found = private_imports()
    assert not found, "private framework imports outside compat.py:\n  " + "\n  ".join(found)


# The checks above must be able to fail: the same functions on a tiny made-up package.

def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "agegender"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_a_function_level_relative_import_closing_a_cycle_is_found(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "low.py": "def f():\n    from . import high\n",
        "high.py": "from agegender.low import f\n",
        "other.py": "import agegender.low\n",
    })
    graph, _ = package_graph(package)
    assert cyclic_groups(graph) == [["agegender.high", "agegender.low"]]
    assert find_cycle(graph) in (["agegender.high", "agegender.low", "agegender.high"],
                                 ["agegender.low", "agegender.high", "agegender.low"])
    (package / "low.py").write_text("def f():\n    pass\n")
    assert find_cycle(package_graph(package)[0]) is None
    assert cyclic_groups(package_graph(package)[0]) == []


def test_an_import_of_a_removed_module_is_found(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from agegender.gone import g\n",
        "b.py": "from agegender import a, __name__ as n\nfrom . import a as again\n",
    })
    assert missing_modules(package) == ["agegender/a.py:2 imports agegender.gone"]


def test_private_framework_imports_are_found_outside_compat(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "compat.py": "from keras.src import backend\n",
        "a.py": "def f():\n    from tensorflow.core.util import event_pb2\n",
        "b.py": "import keras._tf_keras\nfrom keras import layers\n",
        "c.py": "from tensorflow.python.eager import context\n",
    })
    found = private_imports(package)
    assert [line.split(" imports ")[1] for line in found] == [
        "tensorflow.core.util", "tensorflow.core.util.event_pb2", "keras._tf_keras",
        "tensorflow.python.eager", "tensorflow.python.eager.context"]


# Functions longer than this need a stated reason (STYLE.md: "over ~60 lines").
MAX_FUNCTION_LINES = 60
LONG_REASON = "# Long because:"
# The reason must sit near the top: the def line or up to this many lines below it.
REASON_WITHIN = 5


def long_functions(files: list[Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function or method over ``limit`` lines without a ``# Long because:`` comment.

    Length counts from the ``def`` line to the last line of the body, docstring included
    (decorators not): the docstring is part of what a reader scrolls through. The reason
    counts when it appears on the ``def`` line or within ``REASON_WITHIN`` lines after the
    end of the signature (so after a docstring's first lines is too late: put it first).

    Returns:
        ``"path:line name (N lines)"`` per offender, in file order.
    """
    found = []
    for path in files:
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if length <= limit:
                continue
            body_start = node.body[0].lineno
            head = lines[node.lineno - 1:body_start - 1 + REASON_WITHIN]
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:  # the docstring is skipped, the reason may follow it
                end = node.body[0].end_lineno
                head = lines[node.lineno - 1:body_start - 1] + lines[end:end + REASON_WITHIN]
            if not any(LONG_REASON in line for line in head):
                found.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
    return found


def source_files() -> list[Path]:
    """The package and the four CLIs: ``src/agegender/**/*.py`` and ``src/*.py``."""
    return sorted(PACKAGE.rglob("*.py")) + sorted(PACKAGE.parent.glob("*.py"))


def test_no_function_over_60_lines_without_a_stated_reason():
    offenders = long_functions(source_files())
    assert not offenders, (
        f"{len(offenders)} function(s) over {MAX_FUNCTION_LINES} lines: split them into named "
        f"helpers, or add '{LONG_REASON} <reason>' just after the signature/docstring:\n  "
        + "\n  ".join(offenders))


def test_a_long_function_is_found_unless_it_states_why(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(70))
    bare = tmp_path / "bare.py"
    bare.write_text(f"def f():\n    \"\"\"Doc.\"\"\"\n{body}\n\ndef short():\n    return 1\n")
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f"def g():\n    \"\"\"Doc.\n\n    More.\n    \"\"\"\n"
                        f"    # Long because: one flag per line\n{body}")
    late = tmp_path / "late.py"
    late.write_text(f"def h():\n{body}    # Long because: too far down\n")
    found = long_functions([bare, reasoned, late])
    assert [item.split(" ", 1)[1] for item in found] == ["f (72 lines)", "h (71 lines)"]

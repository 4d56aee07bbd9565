"""numba's on-disk cache of compiled code (librosa's ``yin``), kept where a bad file is caught.

librosa compiles a few functions with numba and caches their machine code on disk
(``cache=True``), by default beside librosa's own files. A cache file written badly (two
processes compiling at once) made every later run die with SIGSEGV while loading it, with no
message (issue 32, item 6). So, before the package first imports librosa
(``prepare_numba_cache``):

* the cache goes to a per-user folder, ``NUMBA_CACHE_DIR`` (default
  ``~/.cache/agegender/numba``, under ``$XDG_CACHE_HOME`` when set; a ``NUMBA_CACHE_DIR`` the
  user set is kept);
* its files are compared with the list of those a child process last loaded and ran without
  crashing (``verified.json``: file name → SHA-256). When they differ, a child process runs
  the package's voice statistics (``yin`` and the envelope) once, under a lock. A child
  killed by a signal, or ended by a numba/LLVM error, means a bad cache: the files changed
  since the last verified run (with their function's other files) are removed, then, if it
  still fails, all (one WARNING each), and the code is compiled afresh (up to a minute on 2
  cores, once).

Deleting the folder is always safe: it is rebuilt on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

CHILD_ENV = "AGEGENDER_NUMBA_PROBE"  # set in the probing child: it must not probe again
VERIFIED = "verified.json"
_prepared = False  # per process; forked workers inherit it


def cache_dir() -> Path:
    """The per-user numba cache folder (``NUMBA_CACHE_DIR`` if the user set one)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "agegender" / "numba"


def cache_files(folder: Path) -> dict[str, str]:
    """{relative name: SHA-256} of numba's files (``*.nbi``, ``*.nbc``) under ``folder``."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".nbi", ".nbc") and path.is_file():
            files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def prepare_numba_cache() -> None:
    """Points numba at the per-user cache and makes sure it does not crash (see the module
    docstring); once per process, before librosa (and so numba) is imported. A failure to
    check (no writable home, no child process) is a WARNING, never an error."""
    global _prepared  # noqa: PLW0603
    if _prepared:
        return
    _prepared = True
    folder = cache_dir()
    if not os.environ.get(CHILD_ENV):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # no writable home: numba keeps its own default
            log.warning("numba cache %s cannot be made (%s); not checked", folder,
                        err.strerror or err)
            return
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    if "numba" in sys.modules:  # imported by the caller already: its config is read
        from numba.core import config  # noqa: PLC0415

        config.reload_config()
    if os.environ.get(CHILD_ENV):
        return
    try:
        with _locked(folder):
            _verify(folder)
    except OSError as err:
        log.warning("numba cache %s not checked (%s)", folder, err.strerror or err)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive ``flock`` on ``folder``: one process checks (and compiles) at a time."""
    import fcntl  # noqa: PLC0415

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _verify(folder: Path) -> None:
    """Probes the cache in a child unless its files are those last verified; a crashing
    cache loses first the files that changed since (with their function's other files),
    then, if it still crashes, everything."""
    from agegender import atomic  # noqa: PLC0415

    record = folder / VERIFIED
    try:
        verified = json.loads(record.read_text())
    except (OSError, ValueError):
        verified = None
    current = cache_files(folder)
    if verified is not None and verified == current:
        return
    status, why = probe(folder)
    if status != 0 and why:
        changed = {name for name, digest in current.items()
                   if verified and verified.get(name) not in (None, digest)}
        for attempt, doomed in (("changed", _functions_of(changed, current)),
                                ("all", set(current))):
            if not doomed:
                continue
            log.warning("numba cache %s: a test run failed (%s); removing %s of its files "
                        "(%d): their code is compiled afresh (up to a minute, once)",
                        folder, why, attempt, len(doomed))
            for name in doomed:
                (folder / name).unlink(missing_ok=True)
            status, why = probe(folder)
            if status == 0 or not why:
                break
    if status == 0:
        atomic.write_text(record, json.dumps(cache_files(folder), indent=1))
    else:
        log.warning("numba cache %s: the test run ended with status %s; not recorded as "
                    "verified", folder, status)


def _functions_of(names: set[str], every: dict[str, str]) -> set[str]:
    """``names`` and the other files of their functions (``<function>.py311.nbi``, its
    ``<function>.py311.<n>.nbc`` and the ``guf-`` variants of a gufunc)."""
    def function(name: str) -> str:  # "core_.../guf-pitch._pi_wrapper-430.py311.1.nbc"
        folder, _, base = name.rpartition("/")
        return folder + "/" + base.removeprefix("guf-").split(".py3")[0]

    functions = {function(name) for name in names}
    return {name for name in every if function(name) in functions}


def probe(folder: Path) -> tuple[int, str]:
    """Runs the package's voice statistics in a child process on ``folder``'s cache.

    Returns:
        (exit status, negative: the signal that killed it; why the cache is to blame: the
        signal's name, or the last line of a numba/LLVM error; "" when it is not).
    """
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder), CHILD_ENV: "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                       os.environ.get("PYTHONPATH")]))}
    code = "from agegender.voice_stats import exercise_compiled; exercise_compiled()"
    result = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, check=False)
    if result.returncode < 0:
        number = -result.returncode
        return result.returncode, (signal.Signals(number).name
                                   if number in signal.valid_signals() else f"signal {number}")
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    blamed = result.returncode != 0 and any(word in result.stderr.lower()
                                            for word in (b"numba", b"llvm"))
    return result.returncode, (lines[-1][:120] if blamed and lines else "")

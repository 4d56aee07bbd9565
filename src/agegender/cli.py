"""Shared pieces of the command-line scripts in ``src/``.

Every script is ``parse_args(argv=None)`` + ``main(argv=None)``; ``main`` wraps its work in
``run_cli`` so known failures (``AgeGenderError``) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
from collections.abc import Callable

from agegender.errors import AgeGenderError

# The scripts import this module before anything else of the package, and TensorFlow reads
# this variable once, when it loads: setting it here quiets its C++ log in every script.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def parse_bool(text: str) -> bool:
    """Parses ``True``/``False`` (and yes/no, 1/0, on/off) case-insensitively.

    Raises:
        argparse.ArgumentTypeError: for any other text, naming it.
    """
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option that has a default.

    Left out where it says nothing: required options, options whose default is None (their
    help says what happens instead), and help texts that already name their default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if (action.required or action.default is None or action.default is argparse.SUPPRESS
                or "(default" in help_text):
            return help_text
        return super()._get_help_string(action)


def make_parser(description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose ``--help`` shows every option's default."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def add_bool_flag(parser: argparse.ArgumentParser, name: str, *, default: bool, help: str) -> None:
    """Adds ``--name`` accepting ``--name``, ``--name=True`` and ``--name=False``.

    ``argparse``'s ``type=bool`` would turn the string "False" into True, hence this.
    The default is shown by ``HelpFormatter`` (``make_parser``).
    """
    parser.add_argument(
        f"--{name}",
        type=parse_bool,
        nargs="?",
        const=True,
        default=default,
        metavar="{True,False}",
        help=help,
    )


def add_skip_corrupt_flag(parser: argparse.ArgumentParser) -> None:
    """``--skip_corrupt``, shared by the scripts that read shards (train, test)."""
    add_bool_flag(parser, "skip_corrupt", default=False,
                  help="leave out corrupt shard records (counted and named at the end) "
                       "instead of stopping at the first")


def keras_verbosity(stream=None) -> int:
    """Keras ``fit`` verbosity for a script: 1 (a progress bar redrawn in place) when
    ``stream`` (default stdout) is a terminal, else 2 (one plain line per epoch), since in a
    redirected log every redraw of the bar stays, ANSI codes and carriage returns included."""
    stream = sys.stdout if stream is None else stream
    try:
        return 1 if stream.isatty() else 2
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return 2


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric flag accepts: a finite number from ``low`` to ``high``.

    Attributes:
        low, high: limits (None: unbounded).
        open_low, open_high: the limit itself is excluded.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: float) -> bool:
        """True when ``value`` is finite and within the limits."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high
                                     else value <= self.high)

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high}")
        return " and ".join(parts)


SEED = Bounds(0, 2**32 - 1)  # what numpy's and Keras' seeding accept
POSITIVE_INT = Bounds(1)
COUNT = Bounds(0)
IMAGE_SIZE = Bounds(16, 512)


def check_numbers(args: argparse.Namespace, bounds: dict[str, Bounds]) -> None:
    """Refuses a numeric flag that is not a finite number within its ``bounds``.

    Every float flag must be finite (argparse's ``float`` reads "nan" and "inf"), listed
    or not; a flag left at None (use the default) is not judged.

    Raises:
        ParameterError: one line naming the first bad flag, its value and what is accepted.
    """
    from agegender.errors import ParameterError  # noqa: PLC0415

    for name, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        limits = bounds.get(name, Bounds())
        if not limits.holds(float(value)):
            what = " ".join(part for part in ("" if isinstance(value, int) else
                                              "a finite number", str(limits)) if part)
            raise ParameterError(f"--{name}={value} must be {what}")


def setup_logging(verbose: bool = False) -> None:
    """Sends the package's log records to stderr, one line each."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_cli(work: Callable[[], int | None], *, verbose: bool = False) -> int:
    """Sets up logging, runs a script's work; known errors become one stderr line and exit
    status 2.

    Returns:
        The process exit status: ``work()``'s own, 0 when it returns None.
    """
    setup_logging(verbose)
    try:
        status = work()
    except AgeGenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a file-system failure the package did not foresee: one line too
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)


def os_error_line(err: OSError) -> str:
    """An ``OSError`` as one line naming the path and what went wrong (a full disk says to
    free space and re-run)."""
    import errno  # noqa: PLC0415

    where = err.filename if err.filename is not None else "a file"
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return (f"{where}: disk full ({err.strerror}); free some space and run the same "
                "command again (it resumes)")
    what = err.strerror or str(err) or type(err).__name__
    also = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
    return f"{where}{also}: {what}"

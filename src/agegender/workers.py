"""Preprocessing's process pool: ``concurrent.futures.ProcessPoolExecutor``, forked.

The executor already notices a worker that dies mid-job (the kernel's out-of-memory killer,
say: ``multiprocessing.Pool`` would wait forever for its result) and raises
``BrokenProcessPool``; here that becomes one line (``WorkerDied``) saying what to do. Each
worker also leaves Ctrl-C to the parent, and exits when its parent is killed (an executor's
worker would otherwise wait for jobs forever).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from agegender.errors import AgeGenderError

POLL_S = 0.5  # seconds between a worker's checks that its parent is alive


class WorkerDied(AgeGenderError):
    """A worker process ended while jobs were outstanding (killed, or crashed)."""


def death_line(name: str) -> str:
    """The one line for a pool whose worker died (``BrokenProcessPool`` names no PID or
    signal; an out-of-memory kill is by far the likeliest)."""
    return (f"a {name} process died before finishing its job (killed or crashed; the "
            "kernel's out-of-memory killer is the usual cause: fewer --num_workers use less "
            "memory); finished outputs are kept: run the same command again to resume")


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(1)  # the parent is gone: nobody would read the results


def _start_worker(parent: int) -> None:
    """Runs first in each worker: Ctrl-C reaches the whole process group and the parent
    alone handles it; a daemon thread ends the worker once its parent ``parent`` (a PID)
    is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def imap_unordered(function: Callable[[Any], Any], jobs: Iterable[Any], processes: int, *,
                   name: str = "worker") -> Iterator[Any]:
    """``function(job)`` for every job, in completion order, from ``processes`` forked workers.

    An exception raised by ``function`` is raised here. Leaving the iteration early (or an
    error) cancels the jobs not started; those running finish, then the workers exit.

    Args:
        function: a module-level function (workers are forked: closures work too).
        jobs: picklable arguments, one call each.
        processes: worker processes, >= 1.
        name: the workers' name in the message.

    Raises:
        WorkerDied: a worker ended (killed, or crashed) with jobs outstanding.
    """
    context = multiprocessing.get_context("fork")  # cheap; preprocessing never imports TF
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                             initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(function, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BrokenProcessPool:
            raise WorkerDied(death_line(name)) from None
        finally:
            for future in pending:
                future.cancel()

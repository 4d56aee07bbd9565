"""A process pool that notices a dead worker.

``multiprocessing.Pool`` replaces a worker killed mid-job (by the kernel's out-of-memory
killer, say) and waits forever for the job's result. Here each worker is a plain
``multiprocessing.Process`` whose ``exitcode`` the parent checks whenever results pause,
so a dead worker ends the run with one line naming its PID and signal instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agegender.errors import AgeGenderError

log = logging.getLogger(__name__)

POLL_S = 0.5  # seconds without a result after which the workers' exit codes are checked


class WorkerDied(AgeGenderError):
    """A worker process ended while jobs were outstanding (killed, or crashed)."""


def _serve(function: Callable[[Any], Any], tasks, results, parent: int) -> None:
    """A worker: runs ``function`` on each ``(index, job)`` until ``None``, or until its
    parent ``parent`` (a PID) is gone (killed: nobody would read the results)."""
    # Ctrl-C reaches the whole process group; the parent alone handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            item = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if item is None:
            return
        index, job = item
        try:
            results.put((index, True, function(job)))
        except Exception as err:  # noqa: BLE001  (raised again in the parent, as it is)
            results.put((index, False, err))


def death_line(name: str, pid: int | None, exitcode: int) -> str:
    """What a worker's exit code says: the signal that killed it, or its status."""
    if exitcode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            how += " (the kernel's out-of-memory killer sends it: fewer --num_workers use less)"
    else:
        how = f"exited with status {exitcode}"
    return (f"{name} process (PID {pid}) {how} before finishing its job; finished outputs "
            "are kept: run the same command again to resume")


def imap_unordered(function: Callable[[Any], Any], jobs: Iterable[Any], processes: int, *,
                   name: str = "worker") -> Iterator[Any]:
    """``function(job)`` for every job, in completion order, from ``processes`` forked workers.

    An exception raised by ``function`` is raised here. Leaving the iteration early (or an
    error) terminates the workers.

    Args:
        function: a module-level function (workers are forked: closures work too).
        jobs: picklable arguments, one call each.
        processes: worker processes, >= 1.
        name: the workers' name in the message.

    Raises:
        WorkerDied: a worker ended (killed, or crashed) with jobs outstanding; names its PID
            and signal or exit status.
    """
    context = multiprocessing.get_context("fork")  # cheap; preprocessing never imports TF
    tasks, results = context.Queue(), context.Queue()
    workers = [context.Process(target=_serve, args=(function, tasks, results, os.getpid()),
                               daemon=True, name=f"{name}-{i}") for i in range(processes)]
    for worker in workers:
        worker.start()
    pending = 0
    for pending, job in enumerate(jobs, start=1):
        tasks.put((pending - 1, job))
    for _ in workers:
        tasks.put(None)
    try:
        while pending:
            try:
                _, ok, value = results.get(timeout=POLL_S)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode is not None and w.exitcode != 0]
                if dead or all(w.exitcode is not None for w in workers):
                    worker = dead[0] if dead else workers[0]
                    raise WorkerDied(death_line(name, worker.pid, worker.exitcode)) from None
                continue
            pending -= 1
            if not ok:
                raise value
            yield value
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join()
        tasks.cancel_join_thread()  # jobs never taken must not keep this process alive
        tasks.close()
        results.close()

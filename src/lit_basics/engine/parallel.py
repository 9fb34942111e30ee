"""Run independent CPU jobs (batched groups) on every core: forked worker processes, one thread each.

Small networks do not gain from intra-op threads (2 threads on a 2-core CPU were slower than 1 for
a batched group), but independent groups do gain from processes. Workers are forked, so they start
in milliseconds with the data and the imported modules already in memory; each uses one torch
thread, as DataLoader workers do after a fork. On a GPU, or where fork is missing, jobs run in turn
in this process.
"""

import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

_JOB: Callable[[int], Any] | None = None  # set before the fork; the workers inherit it, nothing is pickled


def default_workers() -> int:
    """One worker per usable CPU core on a CPU-only machine; 1 when a GPU trains (one program on it)."""
    if torch.cuda.is_available() or not sys.platform.startswith("linux"):
        return 1
    return len(os.sched_getaffinity(0))


def _start_worker() -> None:
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a handler inherited from the parent must not keep it alive
    # SIGTERM was blocked across the fork (run_jobs): one sent before the line above (the pool ending at once)
    # is delivered now, with the default action, instead of running the parent's handler and leaving the
    # worker alive and the pool's terminate() waiting for it forever
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    try:  # die with the parent, even when it is killed with SIGKILL
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(index: int) -> tuple[int, Any]:
    """A job in a worker; an error that would not survive the trip back (its class cannot be rebuilt from its
    pickle, which leaves multiprocessing's result thread dead and the pool waiting forever) comes back as a
    RuntimeError naming it."""
    assert _JOB is not None
    try:
        return index, _JOB(index)
    except Exception as err:
        try:
            pickle.loads(pickle.dumps(err))
        except Exception:
            raise RuntimeError(f"{type(err).__name__}: {err}") from None
        raise


def run_jobs(job: Callable[[int], Any], costs: Sequence[float], workers: int) -> Iterator[tuple[int, Any]]:
    """Yield (i, job(i)) for every job, in completion order; costliest first, so the cores finish together."""
    global _JOB
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    workers = min(workers, len(order))
    if workers <= 1:
        yield from ((i, job(i)) for i in order)
        return
    import multiprocessing

    _JOB = job
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by the forks, see above
        try:
            pool = multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        with pool:
            yield from pool.imap_unordered(_run, order)
    finally:
        _JOB = None

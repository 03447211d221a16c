"""Where tile tasks run: this process, a local process pool, or a Dask distributed cluster.

Tiles are independent, and their results do not depend on where they run or on how many threads
run them (:func:`ligcodec.fit.tiles.tile_threads`); a local pool's worker whose peers are idle
(the last tiles of a pass) takes their cores (:func:`rebalance_threads`). :func:`run_unordered`
yields ``(key, result)`` as tasks finish and keeps only a few tasks in flight per worker, so task
inputs (tile pixels) are created lazily and memory does not grow with the image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from .errors import LigInputError

#: Tasks in flight per worker: enough to keep workers busy while results are collected.
IN_FLIGHT_PER_WORKER = 2

#: In a local pool's worker: (count of the pool's workers running a task, the pool's size).
_pool_share = None
#: True while :func:`run_unordered` runs a task in this process: nothing else runs beside it.
_here = False


def _init_worker(busy, workers):
    global _pool_share
    _pool_share = (busy, workers)


def _counted(fn, *args):
    """Run a task in a pool worker, counted as busy while it runs (:func:`rebalance_threads`)."""
    busy = _pool_share[0]
    with busy.get_lock():
        busy.value += 1
    try:
        return fn(*args)
    finally:
        with busy.get_lock():
            busy.value -= 1


def workers_for(workers: int, tasks: int) -> int:
    """Local processes for ``tasks`` tasks: ``workers`` (0: one per core), never more than the
    tasks, so that a lone task runs in this process on every core and no pool is spawned for it."""
    return max(1, min(workers or os.cpu_count() or 1, tasks))


def task_threads() -> int:
    """The numba threads a tile task starts with: every one where :func:`run_unordered` runs it in
    this process (one worker, or one tile: the task is all the work there is), else one (a pool's
    worker takes its idle peers' cores at each step, :func:`rebalance_threads`; a Dask worker runs
    tasks side by side on its threads)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS if _here else 1


def _run_here(fn, args):
    global _here
    _here = True
    try:
        return fn(*args)
    finally:
        _here = False


def rebalance_threads() -> None:
    """In a local pool's worker, run numba's kernels on the pool's cores over its busy workers, so
    that a tile left running alone (the last of a pass, or a large tile beside a small one) does
    not keep one core busy while the others idle. Called at every fit step. Does nothing
    elsewhere (this process, Dask: one thread per task there, as the caller set)."""
    if _pool_share is None:
        return
    import numba

    busy, workers = _pool_share
    want = min(numba.config.NUMBA_NUM_THREADS, max(1, workers // max(1, busy.value)))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)


def run_unordered(fn: Callable, tasks: Iterable, workers: int = 0, scheduler=None, pool=None) -> Iterator:
    """Yield ``(key, fn(*args))`` for each ``(key, args)`` of ``tasks``, in completion order.

    ``scheduler``: None for local work (``workers`` processes; 0 = one per core, 1 = this
    process), or a Dask distributed scheduler address (``tcp://host:8786``) or ``Client``.
    ``pool``: a :func:`local_pool` to reuse (local work with more than one worker).
    """
    if scheduler is not None:
        yield from _run_dask(fn, tasks, scheduler)
        return
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        for key, args in tasks:
            yield key, _run_here(fn, args)
        return
    yield from _run_pool(fn, iter(tasks), workers, pool)


def _new_pool(workers):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: numba's (and torch's) thread pools are running, and forking those deadlocks.
    ctx = mp.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(ctx.Value("i", 0), workers))


@contextmanager
def local_pool(workers: int = 0, scheduler=None):
    """One process pool for several :func:`run_unordered` calls (an encode's two passes), or None
    where there is none to share (one worker, or Dask). A spawned worker imports numpy and numba
    and loads the kernels (~2-3 s of CPU): measured on a 4 MP encode, a fresh pool per pass made 2
    workers only 1.63x faster than 1."""
    workers = workers or os.cpu_count() or 1
    if scheduler is not None or workers <= 1:
        yield None
        return
    pool = _new_pool(workers)
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_pool(fn, tasks, workers, shared=None):
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    pending = {}  # future -> (key, args)
    retry = []
    pool = shared or _new_pool(workers)
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < workers * IN_FLIGHT_PER_WORKER:
                item = next(tasks, None)
                if item is None:
                    exhausted = True
                    break
                try:
                    pending[pool.submit(_counted, fn, *item[1])] = item
                except BrokenProcessPool:
                    retry.append(item)
                    raise
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key, args = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    retry.append((key, args))
                    continue
                yield key, result
            if retry:
                raise BrokenProcessPool
    except BrokenProcessPool:
        # Typically a script without `if __name__ == "__main__":`, which spawned workers re-run.
        # Results do not depend on where tasks run, so finish here instead of failing.
        warnings.warn("the worker processes died (is the calling script missing "
                      "`if __name__ == '__main__':`?); continuing in this process", RuntimeWarning, stacklevel=3)
        retry += list(pending.values())
    finally:
        # Cancel what has not started (an error, Ctrl-C or a closed generator must not wait for
        # the whole queue); running tasks finish in the background.
        if shared is None:
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            for fut in pending:
                fut.cancel()
    for key, args in retry:
        yield key, _run_here(fn, args)
    for key, args in tasks:
        yield key, _run_here(fn, args)


def _run_dask(fn, tasks, scheduler):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise LigInputError("a Dask scheduler was given but dask.distributed is not installed: "
                            "pip install 'ligcodec[distributed]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=30) if own else scheduler
    except OSError as e:
        raise LigInputError(f"cannot reach the Dask scheduler {scheduler!r}: {e}") from None
    try:
        slots = max(1, sum(client.nthreads().values())) * IN_FLIGHT_PER_WORKER
        tasks = iter(tasks)
        keys = {}
        ac = as_completed()
        for key, args in tasks:
            fut = client.submit(fn, *args, pure=False)
            keys[fut.key] = key
            ac.add(fut)
            if len(keys) >= slots:
                break
        for fut in ac:
            key = keys.pop(fut.key)
            result = fut.result()
            fut.release()
            nxt = next(tasks, None)
            if nxt is not None:
                f2 = client.submit(fn, *nxt[1], pure=False)
                keys[f2.key] = nxt[0]
                ac.add(f2)
            yield key, result
    finally:
        if own:
            client.close()

"""CPU-heavy checks of large bodies, run off the event loop so one request cannot stall others.

Checking a body costs time in proportion to its size and its number of keys: a 24 MiB JSON
object of two million keys takes ~5 s, a 26 MiB url-encoded form of as many pairs ~8 s. On the
event loop, every client waits that long. Threads do not help: pydantic and orjson hold the GIL
for a whole call (measured: the loop stalled 1.2 s at a time with the check in a thread). So
bodies above ``INLINE_LIMIT`` are checked in a small pool of worker processes
(``HAPTA_CHECK_WORKERS``, started on first use, ~0.2 s); at most that many checks run at once
and the rest wait their turn, while small requests go on being answered. The trip to a warm
worker costs ~0.5 ms; below the limit the check runs inline, at worst ~2 ms (16 KiB of
url-encoded one-letter pairs; 64 KiB would be ~9 ms).

``fn`` must be a module-level function and its arguments picklable (bytes, strings, specs);
an ``ApiError`` it raises is raised again here, unchanged. Workers are started with ``spawn``:
a program embedding the gateway must guard its entry point (``if __name__ == "__main__"``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .errors import ApiError

T = TypeVar("T")

#: Bodies up to this many bytes are checked inline.
INLINE_LIMIT = 16 * 1024
BUSY = "The gateway could not check the request body, try again."

_pool: ProcessPoolExecutor | None = None
_workers = 2


def configure(workers: int) -> None:
    """Size the pool (before first use; the default is 2)."""
    global _workers
    _workers = workers


async def run_checked(fn: Callable[..., T], *args: Any, size: int) -> T:
    """``fn(*args)``: inline when ``size`` is at most ``INLINE_LIMIT``, else in a worker."""
    if size <= INLINE_LIMIT:
        return fn(*args)
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            _workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
    pool = _pool
    try:
        outcome = await asyncio.get_running_loop().run_in_executor(pool, _call, fn, args)
    except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh next time
        if _pool is pool:
            _pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        raise ApiError(503, BUSY) from None
    if isinstance(outcome, _Failed):
        raise ApiError(outcome.status, outcome.message, outcome.data)
    return outcome  # type: ignore[no-any-return]


async def shutdown() -> None:
    """Stop the workers, once a check under way has ended (the gateway's shutdown: uvicorn
    ends its process by the signal that stopped it, so exit handlers would not run)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


class _Failed:
    """An ``ApiError`` on its way back from a worker (exceptions with keyword state do not
    survive pickling as they are)."""

    def __init__(self, exc: ApiError) -> None:
        self.status = exc.status
        self.message = exc.message
        self.data = exc.data


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the gateway process is gone (killed, so it could not stop its
    workers), instead of waiting forever for work."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        return fn(*args)
    except ApiError as exc:
        return _Failed(exc)

"""Event loops for async actions: the scheduler's loop thread, and a private loop for drain().

One loop thread per running scheduler awaits every async job at once: a job
that awaits holds no thread. The thread starts with the first async job, so a
process with only sync actions never has it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Coroutine


class LoopThread:
    """An event loop running in a daemon thread of its own until closed and idle."""

    def __init__(self, name: str = "queuetopia-asyncio") -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()  # touched on the loop's thread only
        self._closing = False  # on the loop's thread only
        self._lock = threading.Lock()
        self._pending: list[Callable[[], Coroutine[Any, Any, None]]] = []  # guarded by _lock
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def spawn(self, *makes: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start the coroutines ``make()`` on the loop (callable from any thread).

        One call wakes the loop once, whatever the number of coroutines (a step's
        claims); so do calls made while a wake-up is on its way.
        """
        with self._lock:
            waking = bool(self._pending)
            self._pending.extend(makes)
        if not waking:
            self._loop.call_soon_threadsafe(self._start)

    def cancel(self, task: Any, message: str) -> None:
        """Cancel an asyncio task of this loop (callable from any thread)."""
        self._loop.call_soon_threadsafe(task.cancel, message)

    def close_when_idle(self) -> None:
        """End the loop once every coroutine started on it has ended.

        A coroutine that ignores its cancellation keeps the loop (a daemon
        thread) alive until it ends, as a runaway sync job keeps its thread.
        """
        self._loop.call_soon_threadsafe(self._close)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def _start(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for make in pending:
            task = self._loop.create_task(make())
            self._tasks.add(task)  # a strong reference: the loop keeps only weak ones
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._closing and not self._tasks:
            self._loop.stop()

    def _close(self) -> None:
        self._closing = True
        if not self._tasks:
            self._loop.stop()


class PrivateLoop:
    """Runs awaitables to completion in the calling thread (drain(), perform_job()).

    The loop is made at the first awaitable and reused until close(). Called in a
    thread whose own loop is running (a sync call from a coroutine), the
    awaitable runs on a loop in a helper thread instead, since a thread can run
    only one loop at a time.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, awaitable: Awaitable[object]) -> object:
        """Await ``awaitable`` until it ends; its result, or raise its exception."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(awaited(awaitable))
        with concurrent.futures.ThreadPoolExecutor(1, "queuetopia-await") as pool:
            return pool.submit(asyncio.run, awaited(awaitable)).result()

    def close(self) -> None:
        """Close the loop, if one was made."""
        if self._loop is not None:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()
                self._loop = None


current_task = asyncio.current_task


async def awaited(awaitable: Awaitable[object]) -> object:
    """A coroutine for any awaitable (run_until_complete and asyncio.run want one)."""
    return await awaitable


def discard(awaitable: Awaitable[object]) -> None:
    """Drop an awaitable that will never be awaited, without a 'never awaited' warning."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()

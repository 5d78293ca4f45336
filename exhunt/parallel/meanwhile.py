"""Work for the scan process while its workers parse, started once they have their units.

The scan process only waits during the parse, so work that does not need its results (the
manifest rows that need no hash, loading the Sigma rule set for the detections) runs then, on
threads. Not before the units are handed out: a thread that unpickles a rule set holds the GIL for
most of 0.1 s, and the pool's submitting of units waited for it while the workers sat idle
(measured: first unit 0.15 s after the parse began on the quick EVTX corpus)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Meanwhile:
    def __init__(self) -> None:
        self._tasks: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self._threads: list[threading.Thread] = []

    def add(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """``function(*args)`` on its own thread from ``start``; its result or exception in the future."""
        future: Future[T] = Future()
        self._tasks.append((future, function, args))
        return future

    def start(self) -> None:
        """The workers have their units (called by the pool; again is a no-op)."""
        tasks, self._tasks = self._tasks, []
        for future, function, args in tasks:
            thread = threading.Thread(target=_run, args=(future, function, args), name="exhunt-meanwhile",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        """Start what did not start (no pool ran) and wait for every task."""
        self.start()
        for thread in self._threads:
            thread.join()


def _run(future: Future[Any], function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)

"""Servers shared by the sets of one run: each started at its first use and stopped when the run ends.

Starting a served engine, a bare server or the load client costs one to two seconds (several under load),
most of a quick set's time. Inside ``sharing()`` (``python -m benchmarks --quick``) every request for the
same server gets the one already running, so the quick run starts each once, and stops them all at once;
the full run does not share, so that each set measures servers that only it has loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_running: list[dict[Hashable, tuple[AbstractContextManager[Any], Any]]] = []


@contextmanager
def sharing() -> Iterator[None]:
    """While the block runs, ``shared`` hands out one server per key; at its end all of them stop, in
    parallel (each waits for its processes to exit)."""
    running: dict[Hashable, tuple[AbstractContextManager[Any], Any]] = {}
    _running.append(running)
    try:
        yield
    finally:
        _running.pop()
        if running:
            with ThreadPoolExecutor(len(running)) as pool:
                stops = [pool.submit(manager.__exit__, None, None, None) for manager, _ in running.values()]
                for stop in stops:
                    stop.result()


@contextmanager
def shared(key: Hashable, start: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    """``start()``'s value for the block: outside ``sharing()`` a new one, stopped after the block; inside,
    the one started for ``key`` at its first use."""
    if not _running:
        with start() as value:
            yield value
        return
    if key not in _running[-1]:
        manager = start()
        _running[-1][key] = (manager, manager.__enter__())
    yield _running[-1][key][1]

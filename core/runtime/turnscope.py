"""The turn's time budget, checked cooperatively by the work a turn does on the event loop.

``asyncio.timeout`` cancels a turn only where it awaits: work that holds the loop (evaluating expressions,
rendering templates, matching patterns, following transitions) runs to its end however long it takes, and
every other conversation of the process waits with it. So the turn's deadline (``STATE_EXECUTION_TIMEOUT_MS``,
or a caller's earlier one) is also kept here, in a context variable of the turn's task, and ``check()`` is
called at the points where such work loops; past the deadline it raises ``TurnOverrun``, which the turn
reports as ``DeadlineExceeded`` without writing anything (the stored context stays the previous one).

A check costs a context-variable read and a clock read (about 0.1 µs); outside a turn it never raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("mcp_engine_turn_deadline", default=None)


class TurnOverrun(Exception):
    """The turn ran past its deadline while it held the event loop; ``ExecutionService`` turns it into
    ``DeadlineExceeded``. Code that catches every exception lets this one through (``except TurnOverrun:
    raise``); one that does not is caught at the next check, which raises again."""


@contextmanager
def turn_budget(deadline: float) -> Iterator[None]:
    """Work inside the block is bounded by ``deadline`` (``time.monotonic()``)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


class at_most:  # a class, not @contextmanager: entered on every render, it costs a third as much
    """Narrow the budget inside the block to ``seconds`` from now (a template render's own bound); a
    ``TurnOverrun`` in it is the block's, unless ``check()`` still raises once the block is left."""

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        ends = time.monotonic() + self._seconds
        outer = _deadline.get()
        self._token = _deadline.set(ends if outer is None or ends < outer else outer)

    def __exit__(self, *exc_info: object) -> None:
        _deadline.reset(self._token)


def check() -> None:
    """``TurnOverrun`` when the current turn is past its deadline."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TurnOverrun("the turn ran past its deadline and was stopped; nothing of it was saved")

"""Pausing the cyclic garbage collector while a flow is validated or compiled.

Both build many objects that live as long as the flow, and the collector's generational scans of them
made compile time grow faster than the flow (5,000 states: 2x the per-state cost of 1,000). Nothing
they build is cyclic garbage, so the pause frees nothing late; it nests, and restores the prior state.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

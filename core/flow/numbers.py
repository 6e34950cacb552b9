"""NaN and Infinity: not JSON numbers, so never accepted in a document or a request body.

Python's JSON and YAML readers (and pydantic's) accept ``NaN``/``Infinity``/``.nan``/``.inf``, but no
store or client can keep them: orjson would write them as ``null``, silently changing the document. Both
the validator and the REST edge refuse them, naming each one's JSON pointer.
"""

from __future__ import annotations

import math

from mcp_engine.flow.problems import Problem, pointer

MARKERS = (b"NaN", b"Infinity", b"nan", b"inf")  # what a raw body must contain to hold one


def nonfinite_pointers(data: object) -> list[str]:
    """The JSON pointer of every NaN or infinite number in ``data`` (iterative: no depth limit)."""
    found: list[str] = []
    stack: list[tuple[tuple[str | int, ...], object]] = [((), data)]
    while stack:
        at, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            found.append(pointer(*at))
        elif isinstance(node, dict):
            stack.extend(((*at, str(key)), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*at, index), value) for index, value in enumerate(node))
    return sorted(found)


def nonfinite_problems(data: object) -> list[Problem]:
    return [
        Problem(
            "error", at, "NaN and Infinity are not JSON numbers: write a number or a string", "non-finite"
        )
        for at in nonfinite_pointers(data)
    ]

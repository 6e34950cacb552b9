"""Response mappings against the responses an integration documents (``response_examples``).

A wildcard JSONPath (``$.items[*].id``) that matches nothing maps an empty list without any error, so a
path that can never match the documented response is a silent bug: a warning here. A single-value path
(``$.data.balance``) that cannot match fails every call with the ``mapping`` error: a warning too.

"Can never match" reads the example as the response's *shape*, not its values: a field missing from an
object, a field asked of a list or a scalar, an index asked of an object cannot match; an empty list or
a ``null`` in the example says nothing of what real responses hold there, and filters depend on values,
so a path reaching one of those is given the benefit of the doubt. Each path is walked once over the
example: linear in the example's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jsonpath_ng import jsonpath
from jsonpath_ng.ext.parser import parse as parse_jsonpath

from mcp_engine.contract import Reference
from mcp_engine.flow.models import Flow
from mcp_engine.flow.problems import Problem, pointer

Path = tuple[str | int, ...]
Shapes = list[Any] | None  # the values a path can reach in the example; None: cannot tell


def documented_response(flow: Flow, scope: tuple[str, ...]) -> tuple[str, Any] | None:
    """The example the integration gives for this call, with its key: ``"METHOD endpoint"``, then
    ``endpoint``, then ``"*"``."""
    if len(scope) != 3:
        return None
    integration_id, method, endpoint = scope
    integration = flow.integrations.get(integration_id)
    if integration is None:
        return None
    examples = integration.response_examples
    for key in (f"{method} {endpoint}", endpoint, "*"):
        if key in examples:
            return key, examples[key]
    return None


def response_path_problems(flow: Flow, uses: Iterable[tuple[Reference, Path]]) -> Iterator[Problem]:
    """A warning for each ``response_path`` reference that cannot match its call's documented response."""
    for ref, path in uses:
        if ref.kind != "response_path":
            continue
        documented = documented_response(flow, ref.scope)
        if documented is None:
            continue
        try:
            expr = parse_jsonpath(ref.value)
        except Exception:  # a path that does not parse is reported by the state's own configuration
            continue
        if reach(expr, [documented[1]]) != []:
            continue
        integration_id = ref.scope[0]
        yield Problem(
            "warning",
            pointer(*path),
            f"JSONPath '{ref.value}' can never match the response {integration_id} documents for "
            f"'{documented[0]}' (integrations/{integration_id}/response_examples): a wildcard path would "
            "always map an empty list, a single-value path fail every call with the 'mapping' error",
            "mapping-never-matches",
        )


def reach(expr: jsonpath.JSONPath, values: list[Any]) -> Shapes:
    """What ``expr`` reaches from ``values`` (see the module docstring); None when it cannot tell."""
    if isinstance(expr, jsonpath.Root | jsonpath.This):
        return values
    if isinstance(expr, jsonpath.Child):
        left = reach(expr.left, values)
        return None if left is None else reach(expr.right, left)
    if isinstance(expr, jsonpath.Descendants):
        left = reach(expr.left, values)
        if left is None:
            return None
        nested = _descendants(left)
        return None if nested is None else reach(expr.right, nested)
    if any(value is None for value in values):
        return None
    if isinstance(expr, jsonpath.Fields):
        return _fields(expr.fields, values)
    if isinstance(expr, jsonpath.Wildcard):
        return _items(values, objects=True)
    if isinstance(expr, jsonpath.Index | jsonpath.Slice):
        return _items(values, objects=False)
    return None  # filters, `len`, unions and the other extensions: cannot tell


def _fields(names: Iterable[str], values: list[Any]) -> Shapes:
    found: list[Any] = []
    for value in values:
        if not isinstance(value, Mapping):
            continue
        for name in names:
            if name == "*":
                if not value:
                    return None
                found.extend(value.values())
            elif name in value:
                found.append(value[name])
    return found


def _items(values: list[Any], objects: bool) -> Shapes:
    """The elements of the lists (and with ``objects``, the values of the objects) among ``values``: any
    element stands for every index, since real responses may hold more of them than the example."""
    found: list[Any] = []
    for value in values:
        if isinstance(value, list) or (objects and isinstance(value, Mapping)):
            if not value:
                return None
            found.extend(value.values() if isinstance(value, Mapping) else value)
    return found


def _descendants(values: list[Any]) -> Shapes:
    """Every value under ``values``, themselves included; None when an empty list or null is among them."""
    found: list[Any] = []
    todo = list(values)
    while todo:
        value = todo.pop()
        if value is None or (isinstance(value, list) and not value):
            return None
        found.append(value)
        if isinstance(value, Mapping):
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    return found

"""Response mapping: JSONPath expressions over an integration's response, written into the context.

A flow's ``response_mapping`` (``{"variables.balance": "$.data.balance"}``) is parsed once, when the flow is
compiled (``compile_response_mapping``); a turn only evaluates the parsed paths (``CompiledMapping.apply``)
and writes the values with ``set_path``. Parsing JSONPath costs far more than evaluating it, which is why
nothing here parses during a turn.

What a path yields depends on its shape, never on the data, so a flow sees one type for one target:

- a *singular* path (only names and single indexes: ``$.data.balance``, ``$.items[0].id``) yields the one
  value it matches; matching nothing is a ``MappingError`` (the response broke the contract the flow
  relies on);
- any other path (wildcards, slices, filters, ``..``, unions) yields the list of every match, in document
  order; an empty list is a valid answer (an account with no transactions), not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import jsonpath
from jsonpath_ng.ext.iterable import Len
from jsonpath_ng.ext.parser import parse as parse_jsonpath


class MappingError(ValueError):
    """A response mapping that cannot be compiled or applied; names the target and the JSONPath."""

    def __init__(self, target: str, path: str | None, reason: str) -> None:
        where = f"'{target}'" if path is None else f"'{target}' ('{path}')"
        super().__init__(f"response mapping {where}: {reason}")
        self.target = target
        self.path = path
        self.reason = reason


def _is_singular(expr: jsonpath.JSONPath) -> bool:
    """Whether ``expr`` can match at most one value whatever the data (see the module docstring)."""
    if isinstance(expr, jsonpath.Child):
        return _is_singular(expr.left) and _is_singular(expr.right)
    if isinstance(expr, jsonpath.Fields):
        return len(expr.fields) == 1 and expr.fields[0] != "*"
    if isinstance(expr, jsonpath.Index):
        return len(expr.indices) == 1
    return isinstance(expr, jsonpath.Root | jsonpath.This | Len)


@dataclass(frozen=True, slots=True)
class _Path:
    target: str
    source: str
    expr: jsonpath.JSONPath
    singular: bool


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """A response mapping with every JSONPath parsed; made once per flow version."""

    paths: tuple[_Path, ...]

    def apply(self, data: Any) -> dict[str, Any]:
        """Every target's value in ``data``: all or a ``MappingError``, so a failed mapping writes nothing."""
        values: dict[str, Any] = {}
        for path in self.paths:
            try:
                found = [match.value for match in path.expr.find(data)]
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # Filters compare values of whatever type the service sent (``@.id > 1`` on a string).
                raise MappingError(path.target, path.source, f"cannot be evaluated: {exc}") from exc
            if not path.singular:
                values[path.target] = found
            elif found:
                values[path.target] = found[0]
            else:
                raise MappingError(path.target, path.source, "matches nothing in the response")
        return values


def compile_response_mapping(mapping: Mapping[str, str]) -> CompiledMapping:
    """Parse every JSONPath of ``mapping`` (context target -> JSONPath); a bad path is a ``MappingError``."""
    paths = []
    for target, source in mapping.items():
        try:
            expr = parse_jsonpath(source)
        except Exception as exc:  # jsonpath-ng's lexer and parser raise bare Exception subclasses
            raise MappingError(target, source, f"is not a valid JSONPath: {exc}") from exc
        paths.append(_Path(target, source, expr, _is_singular(expr)))
    return CompiledMapping(tuple(paths))


def apply_response_mapping(data: Any, mapping: Mapping[str, str]) -> dict[str, Any]:
    """Compile and apply ``mapping`` in one go: for tools and tests, never in a turn (it parses each time)."""
    return compile_response_mapping(mapping).apply(data)


def set_path(context: dict[str, Any], target: str, value: Any) -> None:
    """Write ``value`` at a dotted ``target`` (``variables.balance``, ``slots.x``, ``user_profile.a.b``).

    Missing dicts on the way are created. A non-dict on the way is a ``MappingError`` rather than being
    overwritten: replacing ``variables.account`` (a string) by a dict because of ``variables.account.id``
    would silently destroy data the flow set.
    """
    *parents, leaf = target.split(".")
    if not parents or not leaf or not all(parents):
        raise MappingError(target, None, "is not a dotted context path")
    node = context
    for depth, key in enumerate(parents):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise MappingError(target, None, f"'{where}' holds a {type(child).__name__}, not an object")
        node = child
    node[leaf] = value

"""durable_rules' condition vocabulary: the IR of a ruleset, its constructors and its one normalisation.

Every condition, ours or a plugin's, goes through ``normalize`` once at compile time. It rejects what the
backends cannot evaluate identically, and puts a ``$ex`` guard before every comparison, because
durable_rules reads uninitialised memory when a compared field is missing. The forms are:
``{"$and": [...]}``, ``{"$or": [...]}``, ``{"$ex": {key: 1}}``, ``{"$nex": {key: 1}}``, ``{key: literal}``
(equality) and ``{"$neq"|"$lt"|"$lte"|"$gt"|"$gte": {key: literal}}``.
"""

from __future__ import annotations

import math
from typing import Any

from mcp_engine.errors import InvalidInput

Condition = dict[str, Any]
Literal_ = str | int | float | bool

PHASE = "phase"
# Every event the engine posts has a phase, so these two are "always" and "never".
TRUE: Condition = {"$ex": {PHASE: 1}}
FALSE: Condition = {"$nex": {PHASE: 1}}
ORDER_OPS = frozenset({"$lt", "$lte", "$gt", "$gte"})
COMPARE_OPS = ORDER_OPS | {"$neq"}
# durable_rules keeps integers as int64 and compares an int with a float as doubles; literals stay strictly
# inside int64 so that a posted value clamped to +-INT_LIMIT compares like the unclamped one.
INT_LIMIT = 2**63 - 1


class RulesetError(InvalidInput):
    """A transition cannot be compiled into a rule (unknown condition, malformed vocabulary)."""

    code = "ruleset_invalid"
    http_status = 422


def exists(key: str) -> Condition:
    return {"$ex": {key: 1}}


def missing(key: str) -> Condition:
    return {"$nex": {key: 1}}


def equals(key: str, literal: Literal_) -> Condition:
    return {"$and": [exists(key), {key: literal}]}


def compare(op: str, key: str, literal: Literal_) -> Condition:
    """``op`` is ``$neq`` or an ordering: the field is posted and compares so."""
    return {"$and": [exists(key), {op: {key: literal}}]}


def differs(key: str, literal: Literal_) -> Condition:
    """Not equal, as the expression language says it: a field not posted (null, other type) differs too."""
    return {"$or": [missing(key), compare("$neq", key, literal)]}


def _merge(
    op: str, identity: Condition, absorbing: Condition, conditions: tuple[Condition, ...]
) -> Condition:
    items: list[Condition] = []
    for condition in conditions:
        for item in condition.get(op, [condition]):
            if item == absorbing:
                return absorbing
            if item != identity and item not in items:
                items.append(item)
    if not items:
        return identity
    return items[0] if len(items) == 1 else {op: items}


def all_of(*conditions: Condition) -> Condition:
    """The conjunction, flattened, without duplicates (a repeated guard keeps its first place)."""
    return _merge("$and", TRUE, FALSE, conditions)


def any_of(*conditions: Condition) -> Condition:
    return _merge("$or", FALSE, TRUE, conditions)


def conjuncts(condition: Condition) -> list[Condition]:
    """The top-level terms of a conjunction (one term for anything else, none for TRUE)."""
    if condition == TRUE:
        return []
    return list(condition["$and"]) if "$and" in condition else [condition]


def durable_number(value: int | float) -> int | float | None:
    """``value`` as durable_rules compares it exactly, or None when it cannot.

    Integral floats become ints (int64 comparisons are exact, int-vs-double ones round); non-integral
    floats are below 2**52 in magnitude, so comparing them with any int64 as doubles keeps the order.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)
        else:
            return value
    return value if -INT_LIMIT < value < INT_LIMIT else None


def _literal(op: str, key: object, literal: object) -> Condition:
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise RulesetError(f"a rule field must be a non-empty string not starting with '$', got {key!r}")
    if isinstance(literal, bool):
        if op in ORDER_OPS:
            raise RulesetError(f"'{op}' on '{key}' compares a boolean: only numbers and strings are ordered")
        checked: Literal_ = literal
    elif isinstance(literal, int | float):
        number = durable_number(literal)
        if number is None:
            raise RulesetError(
                f"the number {literal!r} compared with '{key}' is out of the exact int64 range"
            )
        checked = number
    elif isinstance(literal, str):
        checked = literal
    else:
        raise RulesetError(f"'{key}' is compared with {literal!r}: literals are strings, numbers or booleans")
    return equals(key, checked) if op == "$eq" else compare(op, key, checked)


def normalize(condition: object) -> Condition:
    """Check ``condition`` and return it guarded, flattened and with TRUE/FALSE folded away."""
    if not isinstance(condition, dict) or len(condition) != 1:
        raise RulesetError(f"a rule condition is a one-key object, got {condition!r}")
    ((op, argument),) = condition.items()
    if op in ("$and", "$or"):
        if not isinstance(argument, list) or not argument:
            raise RulesetError(f"'{op}' takes a non-empty list of conditions, got {argument!r}")
        parts = tuple(normalize(item) for item in argument)
        return all_of(*parts) if op == "$and" else any_of(*parts)
    if op in ("$ex", "$nex") or op in COMPARE_OPS:
        if not isinstance(argument, dict) or len(argument) != 1:
            raise RulesetError(f"'{op}' takes a one-key object, got {argument!r}")
        ((key, literal),) = argument.items()
        if op in COMPARE_OPS:
            return _literal(op, key, literal)
        if literal != 1 or not isinstance(key, str):
            raise RulesetError(f"'{op}' is written {{{op!r}: {{field: 1}}}}, got {condition!r}")
        return exists(key) if op == "$ex" else missing(key)
    if op.startswith("$"):
        raise RulesetError(f"'{op}' is not in the rule vocabulary ($and $or $ex $nex $neq $lt $lte $gt $gte)")
    return _literal("$eq", op, argument)

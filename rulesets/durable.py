"""The durable_rules backend, through its C API: the only module that imports durable_rules.

Never durable's ``Host``/``durable.lang``: its background threads lose results. Each ruleset chunk has
one session (``sid`` "0"): an event is asserted, the lowest-``pri`` matching rule is started to learn its
name, and the session is deleted, so nothing carries over between evaluations.

What durable_rules 2.0.28 does that this module works around (each reproduced in a plain script first):

- ``create_ruleset`` keeps pointers into the JSON text it is given; freeing that text corrupts the heap
  on a later call, so an evaluator holds its texts until its rulesets are deleted;
- ``delete_state`` after an event that matched no rule corrupts the heap (a crash whose timing depends on
  memory layout); such an event leaves nothing behind (RSS flat over 400,000 of them), so the session is
  deleted only after a match;
- an event matching more than about 64 rules (or ``$or`` branches) at once fails with error 303, and 256
  rules with one shared condition crash when they all match: so chunks hold at most ``CHUNK`` rules, and
  a chunk that overflows is split in two (once, then kept split), tried in ``pri`` order;
- numbers with an exponent (``1e-05``) are rejected (error 204), so floats are written positionally;
- conditions with many ``$or`` alternatives of ``$and`` terms are refused (error 113 on create);
- ``create_ruleset`` hangs, never returning, when the rules of one ruleset expand to more than 512
  branches (measured: 512 plain rules load, 513 hang; 128 rules of four alternatives load, 129 hang), so
  a chunk also stops at that many (``branches`` is an upper bound of the expansion);
- the library is not thread-safe: one lock serialises every call into it.

``refusals`` finds, without keeping anything loaded, what loading a ruleset here would refuse: the flow
validator asks it, so a flow durable_rules cannot hold is refused by ``validate``, not at publish.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import weakref
from decimal import Decimal
from typing import Any

import durable_rules_engine as engine

from mcp_engine.rulesets.ruleset import Facts, Rule, StateRuleset, durable_rules
from mcp_engine.rulesets.vocab import RulesetError

CHUNK = 64
BRANCHES = 512  # what one durable ruleset's rules may expand to: one more hangs create_ruleset
SESSION = "0"
TOO_MANY_MATCHES = "error code: 303"
_LOCK = threading.RLock()  # reentrant: a finalizer may run while it is held
_NAMES = itertools.count()


def _float(value: float) -> str:
    return format(Decimal(repr(value)), "f")


def encode(value: Any) -> str:
    """JSON as durable_rules reads it: like ``json.dumps``, but floats never in exponent form."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if type(value) is float:
        return _float(value)
    return json.dumps(value)


_EXPONENT = re.compile(r"\d[eE][-+]?\d")


def ruleset_text(rules: dict[str, Any]) -> str:
    """Rules as ``encode`` writes them, through the C JSON encoder unless a float needs ``encode``'s
    positional form (an exponent also inside a string only costs the slow path, never a wrong text)."""
    text = json.dumps(rules, separators=(",", ":"))
    return encode(rules) if _EXPONENT.search(text) else text


def _event(facts: Facts) -> str:
    event = {**facts, "sid": SESSION}
    for value in facts.values():
        # repr() (hence json.dumps) writes a float with an exponent outside [1e-4, 1e16).
        if type(value) is float and value != 0.0 and not 1e-4 <= abs(value) < 1e16:
            return encode(event)
    return json.dumps(event)


def branches(condition: Any) -> int:
    """An upper bound of the branches durable_rules expands ``condition`` into: an ``$or`` counts its
    alternatives' branches, an ``$and`` its widest term's, anything else one (measured against its
    hangs on random normalized conditions: never below what it really uses)."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((op, argument),) = condition.items()
        if op == "$or" and isinstance(argument, list):
            return sum(branches(item) for item in argument)
        if op == "$and" and isinstance(argument, list):
            return max((branches(item) for item in argument), default=1)
    return 1


def _chunked(rules: tuple[Rule, ...]) -> list[tuple[Rule, ...]]:
    """Consecutive rules in chunks of at most ``CHUNK`` rules and ``BRANCHES`` branches."""
    chunks: list[tuple[Rule, ...]] = []
    current: list[Rule] = []
    used = 0
    for rule in rules:
        size = branches(rule.condition)
        if current and (len(current) == CHUNK or used + size > BRANCHES):
            chunks.append(tuple(current))
            current, used = [], 0
        current.append(rule)
        used += size
    if current:
        chunks.append(tuple(current))
    return chunks


def refusals(ruleset: StateRuleset) -> list[tuple[int, str]]:
    """Each transition (its index) whose rule this backend would refuse, and why: one that expands past
    ``CHUNK`` branches (durable_rules cannot evaluate it when more than that hold at once, and past
    ``BRANCHES`` it hangs on load), or one ``create_ruleset`` rejects (error 113: measured from 14
    alternatives of several terms). The rules with alternatives are loaded in chunks as the evaluator
    loads them, then deleted; only a chunk that fails is tried rule by rule, to name them."""
    simpler = "write a list test such as 'x in [...]' instead, or use the python backend"
    found: list[tuple[int, str]] = []
    loadable: list[Rule] = []
    for rule in ruleset.rules:
        size = branches(rule.condition)
        if size > CHUNK:
            reason = f"a condition of {size} alternatives (at most {CHUNK}: it fails when more hold at once)"
            found.append((rule.index, f"durable_rules cannot hold {reason}; {simpler}"))
        elif size > 1:  # measured: a condition without alternatives loads (flat $and of 300 terms)
            loadable.append(rule)
    for chunk in _chunked(tuple(loadable)):
        if _refused(chunk) is None:
            continue
        for rule in chunk if len(chunk) > 1 else ():
            if (error := _refused((rule,))) is not None:
                reason = f"too many alternatives of several terms ({error})"
                found.append((rule.index, f"durable_rules refuses this condition: {reason}; {simpler}"))
        if not any(index in {r.index for r in chunk} for index, _ in found):
            found.append((chunk[0].index, f"durable_rules cannot load these transitions together; {simpler}"))
    return sorted(found)


def _refused(rules: tuple[Rule, ...]) -> str | None:
    """Why ``create_ruleset`` rejects these rules, or None (then they were loaded and deleted again)."""
    text, name = ruleset_text(durable_rules(rules)), f"mcp_check_{next(_NAMES)}"
    with _LOCK:
        try:
            handle = engine.create_ruleset(name, text)
        except engine.error as exc:
            return str(exc)
        engine.delete_ruleset(handle)  # ``text`` outlives the ruleset, as create_ruleset needs
    return None


def _delete(handles: list[int], texts: list[str]) -> None:
    """Delete the rulesets; ``texts`` is passed only to keep durable's JSON alive until then."""
    with _LOCK:
        for handle in handles:
            engine.delete_ruleset(handle)
    handles.clear()
    texts.clear()


class _Chunk:
    """Consecutive rules (in ``pri`` order) in one durable ruleset, or in two halves once it overflowed."""

    def __init__(self, state: str, rules: tuple[Rule, ...], handles: list[int], texts: list[str]) -> None:
        self.state, self.rules, self.handles, self.texts = state, rules, handles, texts
        self.halves: tuple[_Chunk, _Chunk] | None = None
        text, name = ruleset_text(durable_rules(rules)), f"mcp_{next(_NAMES)}"
        texts += (text, name)
        try:
            self.handle = engine.create_ruleset(name, text)
        except engine.error as exc:
            names = ", ".join(rule.name for rule in rules)
            raise RulesetError(
                f"state '{state}': durable_rules cannot hold rules {names} ({exc}); use the python backend"
            ) from exc
        handles.append(self.handle)

    def select(self, event: str) -> str | None:
        """The name of the lowest-``pri`` rule matching ``event``; the caller holds the lock."""
        if self.halves is not None:
            return self.halves[0].select(event) or self.halves[1].select(event)
        try:
            code, state = engine.assert_event(self.handle, event)
        except engine.error as exc:
            if TOO_MANY_MATCHES not in str(exc):
                raise
            if len(self.rules) == 1:
                rule = self.rules[0].name
                raise RulesetError(
                    f"state '{self.state}': durable_rules cannot evaluate rule {rule}, too many of its "
                    f"alternatives hold at once ({exc}); use the python backend"
                ) from exc
            middle = len(self.rules) // 2
            self.halves = (
                _Chunk(self.state, self.rules[:middle], self.handles, self.texts),
                _Chunk(self.state, self.rules[middle:], self.handles, self.texts),
            )
            return self.select(event)
        if code != 0:  # 1: no rule matched, and nothing was kept to delete
            return None
        try:
            started = engine.start_action_for_state(self.handle, state)
        finally:
            engine.delete_state(self.handle, SESSION)
        if not started:
            return None
        matched: str = started[1]  # '{"t3":{"m":{...}}}': rule names need no escaping
        return matched[2 : matched.index('"', 2)]


class DurableEvaluator:
    def __init__(self, ruleset: StateRuleset) -> None:
        self._index = {rule.name: rule.index for rule in ruleset.rules}
        handles: list[int] = []
        texts: list[str] = []
        self._finalizer = weakref.finalize(self, _delete, handles, texts)
        rules = ruleset.rules
        with _LOCK:
            self._chunks = [_Chunk(ruleset.state, chunk, handles, texts) for chunk in _chunked(rules)]

    def select(self, facts: Facts) -> int | None:
        if not self._chunks:
            return None
        event = _event(facts)
        with _LOCK:
            for chunk in self._chunks:
                name = chunk.select(event)
                if name is not None:
                    return self._index[name]
        return None

    def close(self) -> None:
        self._chunks = []
        self._finalizer()


class DurableBackend:
    name = "durable"

    def load(self, ruleset: StateRuleset) -> DurableEvaluator:
        return DurableEvaluator(ruleset)

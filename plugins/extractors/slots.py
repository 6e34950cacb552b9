"""Filling several slots from one utterance (SPEC §3 ``slot_filling``).

"two large pizzas" must fill count=2 and size=large at once, and "call me on 212 555 0199" must not
also make 212 a count. Every missing slot's rule kind extracts what it finds, with spans; slots then
claim spans in a fixed order and a span, once claimed, is not reused:

1. specific kinds (enum, email, phone, date, regex, plugin kinds...) before generic ones (int,
   number), because digits inside a phone number or a date are not a quantity;
2. within each group, the prompted slot first (the user is answering its question), then the slots in
   the order given (required then optional, as the state lists them).

A slot takes its first valid value whose span is free; when it has none, the spans of its invalid
values are still claimed (an invalid phone number's digits are not a count either). The prompted slot
may also take the whole answer: a ``text`` slot always does (text is never found inside a sentence).

Rule strings are parsed once per flow by ``build_slot_specs``; ``extract_slots`` runs per message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_engine import ExtractContext, Found, RuleKind

GENERIC_KINDS = frozenset({"int", "number"})
DEFAULT_RULE = "text"


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A slot with its parsed rule: ``kind.extract(text, rule, ctx)`` finds its values."""

    name: str
    kind: type[RuleKind]
    rule: Any


@dataclass(slots=True)
class SlotExtraction:
    """What one utterance gave: values for slots, and why the prompted slot's answer was refused."""

    filled: dict[str, Any] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


def build_slot_specs(
    config_rules: Mapping[str, str], slots: Sequence[str], rule_kinds: Mapping[str, type[RuleKind]]
) -> list[SlotSpec]:
    """Parse each slot's rule string (``text`` when it has none), in slot order; called per flow compile.

    Raises ``ValueError`` naming the slot for an unknown kind or a bad argument.
    """
    specs = []
    for slot in slots:
        rule_string = config_rules.get(slot, DEFAULT_RULE)
        kind_name, colon, argument = rule_string.partition(":")
        kind = rule_kinds.get(kind_name.strip())
        if kind is None:
            known = ", ".join(sorted(rule_kinds))
            raise ValueError(f"slot '{slot}': unknown rule kind '{kind_name.strip()}' (known: {known})")
        try:
            rule = kind.parse(argument if colon else None)
        except ValueError as exc:
            raise ValueError(f"slot '{slot}': {exc}") from exc
        specs.append(SlotSpec(slot, kind, rule))
    return specs


def _claim_order(slots: Sequence[SlotSpec], prompted: str | None) -> list[SlotSpec]:
    order = {spec.name: i for i, spec in enumerate(slots)}
    return sorted(slots, key=lambda s: (s.kind.name in GENERIC_KINDS, s.name != prompted, order[s.name]))


def _overlaps(found: Found, claimed: list[tuple[int, int]]) -> bool:
    return any(found.start < end and start < found.end for start, end in claimed)


def extract_slots(
    text: str, slots: Sequence[SlotSpec], prompted: str | None, ctx: ExtractContext
) -> SlotExtraction:
    """Fill what ``text`` gives for ``slots`` (the missing ones); ``prompted`` is the slot just asked for.

    ``invalid`` only ever names the prompted slot: a bad value the user volunteered for another slot is
    ignored (that slot will be asked for in turn). The prompted slot is invalid when its answer held
    only invalid values, or when the answer filled nothing at all (the reason then says what was
    expected), so the state can send its retry prompt.
    """
    answer = text.strip()
    result = SlotExtraction()
    claimed: list[tuple[int, int]] = []
    prompted_spec: SlotSpec | None = None
    for spec in _claim_order(slots, prompted):
        if spec.name == prompted:
            prompted_spec = spec
        found = [f for f in spec.kind.extract(answer, spec.rule, ctx) if not _overlaps(f, claimed)]
        taken = next((f for f in found if f.valid), None)
        if taken is not None:
            result.filled[spec.name] = taken.value
            claimed.append((taken.start, taken.end))
            continue
        claimed.extend((f.start, f.end) for f in found)
        if spec.name == prompted and found:
            first = found[0]
            result.invalid[spec.name] = first.reason or f"'{answer[first.start : first.end]}' is not valid"
    if prompted_spec is not None and prompted_spec.name not in result.filled and answer:
        if prompted_spec.kind.name == DEFAULT_RULE:
            result.filled[prompted_spec.name] = answer
        elif not result.filled and prompted_spec.name not in result.invalid:
            result.invalid[prompted_spec.name] = f"no {prompted_spec.kind.name} value found in the answer"
    result.filled = {s.name: result.filled[s.name] for s in slots if s.name in result.filled}
    return result

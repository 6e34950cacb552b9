"""Filling several slots from one utterance, with the example flows' slot_filling configurations."""

import datetime as dt

import pytest

from mcp_engine import ExtractContext
from mcp_engine.plugins.extractors.rules import BUILTIN_RULES
from mcp_engine.plugins.extractors.slots import SlotExtraction, SlotSpec, build_slot_specs, extract_slots

KINDS = {kind.name: kind for kind in BUILTIN_RULES}
CTX = ExtractContext(timezone="America/New_York", now=dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC))

# examples/flows/pizza.json take_order and delivery_details, collect_contact.json ask_contact
ORDER = build_slot_specs(
    {
        "size": "enum:small,medium,large=big|huge",
        "count": "int:1..20",
        "crust": "enum:thin,classic=regular|normal,stuffed",
    },
    ["size", "count", "crust"],
    KINDS,
)
DELIVERY = build_slot_specs({"address": "text", "phone": "phone"}, ["address", "phone"], KINDS)
CONTACT = build_slot_specs(
    {"name": "text", "email": "email", "phone": "phone"}, ["name", "email", "phone"], KINDS
)


def extract(specs: list[SlotSpec], text: str, prompted: str | None = None) -> SlotExtraction:
    return extract_slots(text, specs, prompted, CTX)


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        ("I'd like two large pizzas", {"size": "large", "count": 2}),
        ("3 medium thin crust", {"size": "medium", "count": 3, "crust": "thin"}),
        ("twelve huge ones with stuffed crust", {"size": "large", "count": 12, "crust": "stuffed"}),
        ("a big one, regular crust", {"size": "large", "crust": "classic"}),
        ("hello", {}),
    ],
)
def test_one_utterance_fills_every_slot_it_mentions(text: str, filled: dict[str, object]) -> None:
    assert extract(ORDER, text) == SlotExtraction(filled=filled, invalid={})


def test_filled_follows_slot_order() -> None:
    assert list(extract(ORDER, "thin crust, 2, small").filled) == ["size", "count", "crust"]


def test_invalid_prompted_answer_has_a_reason() -> None:
    result = extract(ORDER, "30 please", prompted="count")
    assert result.filled == {}
    assert result.invalid == {"count": "30 is not between 1 and 20"}


def test_invalid_value_for_another_slot_is_ignored() -> None:
    assert extract(ORDER, "30 large pizzas", prompted="size") == SlotExtraction({"size": "large"}, {})


def test_answer_with_nothing_usable_is_invalid_for_the_prompted_slot() -> None:
    assert extract(ORDER, "banana", prompted="size").invalid == {"size": "no enum value found in the answer"}
    assert extract(ORDER, "banana").invalid == {}


def test_answer_for_another_slot_is_not_an_invalid_prompted_answer() -> None:
    assert extract(ORDER, "make it thin crust", prompted="size") == SlotExtraction({"crust": "thin"}, {})


def test_prompted_text_slot_takes_the_whole_answer() -> None:
    result = extract(DELIVERY, "  12 Main Street, Apt 4  ", prompted="address")
    assert result == SlotExtraction({"address": "12 Main Street, Apt 4"}, {})


def test_text_slot_is_not_filled_unless_prompted() -> None:
    assert extract(CONTACT, "Ann Smith") == SlotExtraction({}, {})
    assert extract(CONTACT, "Ann Smith", prompted="name").filled == {"name": "Ann Smith"}


def test_prompted_text_and_volunteered_values() -> None:
    result = extract(CONTACT, "ann@example.com, or call 212-555-0199", prompted="email")
    assert result.filled == {"email": "ann@example.com", "phone": "+12125550199"}


def test_invalid_email_answer() -> None:
    result = extract(CONTACT, "ann at example", prompted="email")
    assert result.invalid == {"email": "no email value found in the answer"}
    assert "period" in extract(CONTACT, "ann@example", prompted="email").invalid["email"]


def test_phone_digits_are_not_a_count() -> None:
    specs = build_slot_specs({"count": "int:1..1000", "phone": "phone"}, ["count", "phone"], KINDS)
    assert extract(specs, "call me on 212 555 0199").filled == {"phone": "+12125550199"}
    # an impossible number is still a phone number's digits, never a count
    assert extract(specs, "call me on 555 123 4567").filled == {}
    assert extract(specs, "4 pizzas, call 212 555 0199").filled == {"count": 4, "phone": "+12125550199"}


def test_date_digits_are_not_a_count() -> None:
    specs = build_slot_specs({"guests": "int", "day": "date"}, ["guests", "day"], KINDS)
    assert extract(specs, "table for 4 on 2026-12-01").filled == {"guests": 4, "day": "2026-12-01"}


def test_prompted_slot_wins_a_shared_span() -> None:
    specs = build_slot_specs({"adults": "int", "children": "int"}, ["adults", "children"], KINDS)
    assert extract(specs, "2", prompted="children").filled == {"children": 2}
    assert extract(specs, "2").filled == {"adults": 2}


def test_build_slot_specs_defaults_to_text_and_parses_once() -> None:
    specs = build_slot_specs({"count": "int:1..5"}, ["note", "count"], KINDS)
    assert [(s.name, s.kind.name, s.rule) for s in specs] == [
        ("note", "text", None),
        ("count", "int", (1, 5)),
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [({"x": "colour"}, "slot 'x': unknown rule kind 'colour'"), ({"x": "int:5..1"}, "slot 'x': minimum 5")],
)
def test_build_slot_specs_reports_the_slot(rules: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_slot_specs(rules, ["x"], KINDS)

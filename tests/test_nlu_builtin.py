"""The builtin classifier on the example flows' intents: patterns, example similarity, candidates."""

import json
from pathlib import Path

import pytest

from mcp_engine.flow.models import Intent
from mcp_engine.plugins.nlu.builtin import BuiltinClassifier, BuiltinConfig
from mcp_engine.runtime.services import EngineServices

FLOWS = Path(__file__).resolve().parent.parent / "examples" / "flows"


def classifier(flow: str, **config: object) -> BuiltinClassifier:
    intents = json.loads((FLOWS / f"{flow}.json").read_text())["intents"]
    parsed = {name: Intent(**intent) for name, intent in intents.items()}
    return BuiltinClassifier(parsed, BuiltinConfig(**config), EngineServices(env={}))


PIZZA_MENU = ["order_pizza", "opening_hours", "help", "cancel"]


@pytest.mark.parametrize(
    ("flow", "candidates", "text", "expected"),
    [
        ("pizza", PIZZA_MENU, "I'd like two large pizzas", "order_pizza"),
        ("pizza", PIZZA_MENU, "help", "help"),
        ("pizza", PIZZA_MENU, "HELP me", "help"),
        ("pizza", PIZZA_MENU, "when are you open tomorrow?", "opening_hours"),
        ("pizza", PIZZA_MENU, "can I get pizza delivered", "order_pizza"),
        ("pizza", PIZZA_MENU, "what can u do", "help"),
        ("pizza", ["affirm", "deny", "help", "cancel"], "yes please", "affirm"),
        ("pizza", ["affirm", "deny", "help", "cancel"], "nope", "deny"),
        (
            "bank",
            ["check_balance", "talk_to_agent", "help", "cancel"],
            "how much money do I have?",
            "check_balance",
        ),
        (
            "bank",
            ["check_balance", "talk_to_agent", "help", "cancel"],
            "connect me to an advisor",
            "talk_to_agent",
        ),
        (
            "support",
            ["billing_issue", "technical_issue", "talk_to_human"],
            "my wifi keeps dropping",
            "technical_issue",
        ),
    ],
)
async def test_typical_phrasing_is_recognised(
    flow: str, candidates: list[str], text: str, expected: str
) -> None:
    scores = await classifier(flow).classify(text, candidates)
    assert scores[0].name == expected
    assert scores[0].confidence >= 0.7


@pytest.mark.parametrize(
    "text",
    ["asdkjh qwe zzz", "blorp", "the weather is nice today", "I have no idea", "lorem ipsum dolor", ""],
)
async def test_unrelated_text_stays_below_threshold(text: str) -> None:
    scores = await classifier("pizza").classify(text, [*PIZZA_MENU, "affirm", "deny"])
    assert all(score.confidence < 0.7 for score in scores)


async def test_only_candidates_are_scored_and_ranked_highest_first() -> None:
    scores = await classifier("pizza").classify("are you open on sunday?", ["help", "opening_hours", "nope"])
    assert {s.name for s in scores} <= {"help", "opening_hours"}
    assert scores[0].name == "opening_hours"
    assert [s.confidence for s in scores] == sorted((s.confidence for s in scores), reverse=True)


async def test_pattern_ties_are_broken_by_similarity() -> None:
    # "help" and "cancel" patterns both need the text to start with their word: only one can match,
    # so use order_pizza/opening_hours whose patterns match anywhere.
    scores = await classifier("pizza").classify("can I order a pizza, when do you open?", PIZZA_MENU)
    assert [s.confidence for s in scores[:2]] == [1.0, 1.0]
    assert {s.name for s in scores[:2]} == {"order_pizza", "opening_hours"}


async def test_min_score_drops_weak_candidates() -> None:
    scores = await classifier("pizza", min_score=0.6).classify("help", PIZZA_MENU)
    assert [s.name for s in scores] == ["help"]


async def test_scorer_is_configurable() -> None:
    scores = await classifier("pizza", scorer="ratio").classify("what can you do?", ["help"])
    assert [(s.name, s.confidence) for s in scores] == [("help", 1.0)]


def test_bad_pattern_is_reported_with_its_intent() -> None:
    with pytest.raises(ValueError, match="intent 'broken'"):
        # model_construct: the flow model refuses the pattern already; the classifier must too
        BuiltinClassifier(
            {"broken": Intent.model_construct(patterns=["(unclosed"])}, None, EngineServices(env={})
        )

"""``builtin``: the classifier every flow gets without configuration (SPEC §2 ``intents``).

An intent's regex ``patterns`` are the designer's explicit word ("anything mentioning a pizza is an
order"), so any match is certain: confidence 1.0. Otherwise the message is compared with the intent's
``examples`` by fuzzy string similarity (rapidfuzz), best example per intent, scaled to 0..1.

The default scorer, ``blend``, averages ``token_set_ratio`` and ``token_sort_ratio``: the set ratio
alone scores 100 whenever one text's words are a subset of the other's (so "I have no idea" would be
a certain ``deny`` because of the example "no"), and the sort ratio alone punishes paraphrases that
add words ("could I order two pizzas"). The average keeps paraphrases above a 0.7 threshold while
unrelated sentences stay below it.

Everything is prepared when the flow is compiled (``__init__``): ``classify`` runs per turn and only
matches precompiled regexes and scores pre-normalised examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from mcp_engine import IntentClassifier, IntentScore, Services, hookimpl

Scorer = Callable[[str, str], float]


def _blend(a: str, b: str) -> float:
    return (fuzz.token_set_ratio(a, b) + fuzz.token_sort_ratio(a, b)) / 2


SCORERS: dict[str, Scorer] = {
    "blend": _blend,
    "ratio": fuzz.ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "WRatio": fuzz.WRatio,
}


class BuiltinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scorer: Literal["blend", "ratio", "token_sort_ratio", "token_set_ratio", "WRatio"] = Field(
        "blend", description="rapidfuzz scorer comparing the message with each example"
    )
    min_score: float = Field(
        0.0, ge=0.0, lt=1.0, description="Scores at or below this are dropped from the ranking"
    )


def normalise(text: str) -> str:
    """Lowercase, punctuation to spaces, trimmed: what examples and messages are compared as."""
    return default_process(text)


class _Prepared:
    """One intent, compiled: its regexes and its normalised, non-empty examples."""

    __slots__ = ("examples", "patterns")

    def __init__(self, name: str, patterns: Sequence[str], examples: Sequence[str]) -> None:
        self.patterns: list[re.Pattern[str]] = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"intent '{name}': bad pattern '{pattern}': {exc}") from exc
        self.examples = [e for e in (normalise(x) for x in examples) if e]


class BuiltinClassifier(IntentClassifier):
    name = "builtin"
    Config = BuiltinConfig
    description = "Regex patterns (confidence 1.0) and fuzzy similarity to examples (rapidfuzz)."

    def __init__(self, intents: Mapping[str, Any], config: BuiltinConfig | None, services: Services) -> None:
        config = config if config is not None else BuiltinConfig()
        super().__init__(intents, config, services)
        self._scorer = SCORERS[config.scorer]
        self._min_score = config.min_score
        self._prepared = {
            name: _Prepared(name, intent.patterns, intent.examples) for name, intent in intents.items()
        }

    def _similarity(self, prepared: _Prepared, text: str) -> float:
        return max((self._scorer(text, example) for example in prepared.examples), default=0.0) / 100.0

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        """Score every known candidate; a pattern match is 1.0, ties are broken by example similarity."""
        normalised = normalise(text)
        ranked: list[tuple[float, float, int, str]] = []
        for position, name in enumerate(dict.fromkeys(candidates)):
            prepared = self._prepared.get(name)
            if prepared is None:
                continue
            similarity = self._similarity(prepared, normalised) if normalised else 0.0
            matched = any(p.search(text) for p in prepared.patterns)
            confidence = 1.0 if matched else similarity
            if confidence > self._min_score:
                ranked.append((-confidence, -similarity, position, name))
        ranked.sort()
        return [IntentScore(name, round(-negated, 4)) for negated, _, _, name in ranked]


@hookimpl
def mcp_engine_intent_classifiers() -> list[type[IntentClassifier]]:
    return [BuiltinClassifier]

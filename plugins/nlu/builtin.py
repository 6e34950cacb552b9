"""``builtin``: the classifier every flow gets without configuration (SPEC §2 ``intents``).

An intent's regex ``patterns`` (RE2, linear time: ``compile_regex``) are the designer's explicit word
("anything mentioning a pizza is an order"), so any match is certain: confidence 1.0. Otherwise the
message is compared with the intent's ``examples`` by fuzzy string similarity (rapidfuzz), best example
per intent, scaled to 0..1.

The default scorer, ``blend``, averages ``token_set_ratio`` and ``token_sort_ratio``: the set ratio
alone scores 100 whenever one text's words are a subset of the other's (so "I have no idea" would be
a certain ``deny`` because of the example "no"), and the sort ratio alone punishes paraphrases that
add words ("could I order two pizzas"). The average keeps paraphrases above a 0.7 threshold while
unrelated sentences stay below it.

Everything is prepared when the flow is compiled (``__init__``): ``classify`` runs per turn and only
matches precompiled regexes and scores pre-normalised examples, all candidates' examples in one rapidfuzz
pass per scorer (``process.extract`` loops in C; a Python loop of ``fuzz`` calls took twice as long).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from mcp_engine import (
    IntentClassifier,
    IntentScore,
    PatternError,
    Regex,
    Services,
    compile_regex,
    found_in,
    hookimpl,
)

Scorer = Callable[..., float]

# Each scorer as the rapidfuzz scorers it sums, with their weights: "blend" is the mean of two.
SCORERS: dict[str, tuple[tuple[Scorer, float], ...]] = {
    "blend": ((fuzz.token_set_ratio, 0.5), (fuzz.token_sort_ratio, 0.5)),
    "ratio": ((fuzz.ratio, 1.0),),
    "token_sort_ratio": ((fuzz.token_sort_ratio, 1.0),),
    "token_set_ratio": ((fuzz.token_set_ratio, 1.0),),
    "WRatio": ((fuzz.WRatio, 1.0),),
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
        self.patterns: list[Regex] = []
        for pattern in patterns:
            try:
                self.patterns.append(compile_regex(pattern, ignore_case=True))
            except PatternError as exc:
                raise ValueError(f"intent '{name}': {exc}") from exc
        self.examples = [e for e in (normalise(x) for x in examples) if e]


class _Candidates:
    """A set of candidate intents (a state's), with all their examples in one list for one scoring pass;
    ``owners[i]`` is the position in ``names`` of the intent whose example ``examples[i]`` is."""

    __slots__ = ("examples", "intents", "names", "owners")

    def __init__(self, prepared: Mapping[str, _Prepared], candidates: Sequence[str]) -> None:
        self.names = [name for name in dict.fromkeys(candidates) if name in prepared]
        self.intents = [prepared[name] for name in self.names]
        self.examples = [example for intent in self.intents for example in intent.examples]
        self.owners = [i for i, intent in enumerate(self.intents) for _ in intent.examples]


CONTEXT_WEIGHT = 0.9  # what the earlier messages count for, against the message alone


class BuiltinClassifier(IntentClassifier):
    name = "builtin"
    reads_context = True
    Config = BuiltinConfig
    description = "Regex patterns (confidence 1.0) and fuzzy similarity to examples (rapidfuzz)."

    def __init__(self, intents: Mapping[str, Any], config: BuiltinConfig | None, services: Services) -> None:
        config = config if config is not None else BuiltinConfig()
        super().__init__(intents, config, services)
        self._scorers = SCORERS[config.scorer]
        self._min_score = config.min_score
        self._prepared = {
            name: _Prepared(name, intent.patterns, intent.examples) for name, intent in intents.items()
        }
        self._candidates: dict[tuple[str, ...], _Candidates] = {}

    def _similarities(self, text: str, candidates: _Candidates) -> list[float]:
        """Each candidate's best example score (0..1), in the order of ``candidates.names``."""
        scores = [0.0] * len(candidates.examples)
        if text:
            for scorer, weight in self._scorers:
                for _, score, index in process.extract(
                    text, candidates.examples, scorer=scorer, processor=None, limit=None
                ):
                    scores[index] += score * weight
        best = [0.0] * len(candidates.names)
        for owner, score in zip(candidates.owners, scores, strict=True):
            best[owner] = max(best[owner], score)
        return [score / 100.0 for score in best]

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        """Score every known candidate; a pattern match is 1.0, ties are broken by example similarity."""
        return self._ranked(text, candidates, ())

    async def classify_in_context(
        self,
        text: str,
        candidates: Sequence[str],
        context: Mapping[str, Any],
        recent: Sequence[str] = (),
    ) -> list[IntentScore]:
        """As ``classify``, and each intent also scores on the earlier messages and this one read together,
        at ``CONTEXT_WEIGHT``: "large" after "I want a pizza" still reads as an order, but a message that
        says something by itself outranks what the conversation said before."""
        return self._ranked(text, candidates, recent)

    def _ranked(self, text: str, candidates: Sequence[str], recent: Sequence[str]) -> list[IntentScore]:
        key = tuple(candidates)
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates[key] = _Candidates(self._prepared, key)
        scores = self._scores(text, found)
        if recent:
            window = self._scores(" ".join([*recent, text]), found)
            scores = [
                max(own, (conf * CONTEXT_WEIGHT, sim * CONTEXT_WEIGHT))
                for own, (conf, sim) in zip(scores, window, strict=True)
            ]
        ranked = sorted(
            (-confidence, -similarity, position, name)
            for position, (name, (confidence, similarity)) in enumerate(zip(found.names, scores, strict=True))
            if confidence > self._min_score
        )
        return [IntentScore(name, round(-negated, 4)) for negated, _, _, name in ranked]

    def _scores(self, text: str, found: _Candidates) -> list[tuple[float, float]]:
        """(confidence, similarity) of each candidate: a pattern match is confidence 1.0."""
        similarities = self._similarities(normalise(text), found)
        return [
            (1.0 if any(found_in(p, text) for p in intent.patterns) else similarity, similarity)
            for intent, similarity in zip(found.intents, similarities, strict=True)
        ]


@hookimpl
def mcp_engine_intent_classifiers() -> list[type[IntentClassifier]]:
    return [BuiltinClassifier]

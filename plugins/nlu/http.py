"""``http``: the Model Orchestrator (or any NLU service) classifies over HTTP, falling back to ``builtin``.

The service gets the seed's intent-detection request as one JSON POST::

    {"text": "...", "candidates": ["order_pizza", "help"],
     "intents": {"order_pizza": {"examples": [...], "patterns": [...]}},      # send_intents
     "conversation_history": [{"role": "user", "text": "..."}, ...],         # send_context
     "user_context": {"user_id": "...", "channel": "...", "user_profile": {...}},
     "model_preferences": {...}}

and answers ``{"intents": [{"name", "confidence"}]}``. ``conversation_history`` is the flow's
``recent_messages`` (``settings.history_messages`` of them; none by default); ``model_preferences`` are
the tenant's, written in the flow's ``classifier_config`` (a flow belongs to one tenant).

A conversation must never stall or fail because the service is down or slow: the call is a ``rest``
integration call (per-attempt timeout, retries with backoff on a timeout, a 5xx or a network error,
``${env:NAME}`` headers resolved per call and never logged, the engine's one HTTP path) behind a circuit
breaker per endpoint, and every failure — including an open breaker, which makes no call — is logged as
a warning and the message classified by the ``builtin`` classifier, built from the same intents when the
flow is compiled.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from yarl import URL

from mcp_engine import (
    CircuitBreaker,
    Integration,
    IntegrationRequest,
    IntentClassifier,
    IntentScore,
    RetryPolicy,
    Services,
    hookimpl,
)
from mcp_engine.plugins.integrations.rest import RestClient
from mcp_engine.plugins.nlu.builtin import BuiltinClassifier

log = logging.getLogger(__name__)


class ModelCall(BaseModel):
    """How the engine calls one Model Orchestrator endpoint (shared with ``response``'s ``generate``)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Endpoint that receives the POST")
    timeout_ms: int = Field(800, ge=1, le=60_000, description="Time allowed for one attempt")
    retries: int = Field(
        1, ge=0, le=5, description="Attempts after the first on a timeout, a 5xx or a network error"
    )
    backoff_ms: int = Field(100, ge=0, le=10_000, description="Wait before the first retry (growing)")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with every call; values may use ${env:NAME}"
    )
    model_preferences: dict[str, Any] = Field(
        default_factory=dict, description="The tenant's model preferences, sent as they are"
    )
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker, description="The endpoint's circuit breaker"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"'{url}' is not an http(s) URL")
        return url

    def client(self, services: Services) -> RestClient:
        """A ``rest`` client of the endpoint (raises ``ValueError`` for a URL that is not http(s))."""
        return RestClient(Integration(base_url=self.url, headers=self.headers), services)

    def request(self, body: dict[str, Any]) -> IntegrationRequest:
        """One POST of ``body``, its retries and their backoff bounded by this call's own deadline."""
        budget_ms = self.timeout_ms * (self.retries + 1) + self.backoff_ms * 2 ** (self.retries + 1)
        policy = RetryPolicy(max_retries=self.retries, backoff_ms=self.backoff_ms)
        return IntegrationRequest(
            method="POST",
            endpoint="",
            params=body,
            timeout_ms=self.timeout_ms,
            max_retries=policy.max_retries,
            backoff_ms=policy.backoff_ms,
            retry_on=tuple(policy.retry_on),
            deadline=time.monotonic() + budget_ms / 1000,
        )


def conversation_fields(context: Mapping[str, Any]) -> dict[str, Any]:
    """What a model call is told of the conversation: its recent messages and who it is with."""
    return {
        "conversation_history": list(context.get("recent_messages") or []),
        "user_context": {
            "user_id": context.get("user_id"),
            "channel": context.get("channel"),
            "user_profile": context.get("user_profile") or {},
        },
    }


class HttpConfig(ModelCall):
    send_intents: bool = Field(
        True, description="Also send the candidates' examples and patterns under 'intents'"
    )
    send_context: bool = Field(
        True, description="Also send conversation_history and user_context (profile, channel)"
    )


class MalformedAnswer(ValueError):
    """The service answered 2xx but not with ``{"intents": [{"name", "confidence"}]}``."""


def parse_answer(payload: Any, candidates: Sequence[str]) -> list[IntentScore]:
    """Keep the candidates' scores (best one per name), clamped to 0..1, ranked highest first."""
    if not isinstance(payload, dict) or not isinstance(payload.get("intents"), list):
        raise MalformedAnswer("expected an object with an 'intents' list")
    allowed = set(candidates)
    best: dict[str, float] = {}
    for item in payload["intents"]:
        if not isinstance(item, dict):
            raise MalformedAnswer("each intent must be an object")
        name, confidence = item.get("name"), item.get("confidence")
        if (
            not isinstance(name, str)
            or isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
        ):
            raise MalformedAnswer("each intent needs a string 'name' and a numeric 'confidence'")
        if not math.isfinite(confidence):
            raise MalformedAnswer(f"confidence of '{name}' is not a finite number")
        if name in allowed:
            best[name] = max(best.get(name, 0.0), min(1.0, max(0.0, float(confidence))))
    order = {name: i for i, name in enumerate(candidates)}
    ranked = sorted(best.items(), key=lambda item: (-item[1], order[item[0]]))
    return [IntentScore(name, confidence) for name, confidence in ranked]


class HttpClassifier(IntentClassifier):
    name = "http"
    reads_context = True
    Config = HttpConfig
    description = "Asks the Model Orchestrator (an NLU service) over HTTP; falls back to builtin."

    def __init__(self, intents: Mapping[str, Any], config: HttpConfig, services: Services) -> None:
        super().__init__(intents, config, services)
        self._fallback = BuiltinClassifier(intents, None, services)
        self._client = config.client(services)
        self._breaker = services.breaker(("model", config.url), f"model {config.url}", config.circuit_breaker)
        self._intent_docs = {
            name: {"examples": list(intent.examples), "patterns": list(intent.patterns)}
            for name, intent in intents.items()
        }

    def _body(
        self, text: str, candidates: Sequence[str], context: Mapping[str, Any], recent: Sequence[str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "candidates": list(candidates)}
        if recent:  # a context_aware state: the conversation's earlier messages, oldest first
            body["context"] = list(recent)
        if self.config.send_intents:
            body["intents"] = {n: self._intent_docs[n] for n in candidates if n in self._intent_docs}
        if self.config.send_context:
            body.update(conversation_fields(context))
        body["model_preferences"] = self.config.model_preferences
        return body

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        return await self.classify_in_context(text, candidates, {})

    async def classify_in_context(
        self,
        text: str,
        candidates: Sequence[str],
        context: Mapping[str, Any],
        recent: Sequence[str] = (),
    ) -> list[IntentScore]:
        """The service's answer; ``recent`` (a context_aware state) travels as the body's ``context``."""
        request = self.config.request(self._body(text, candidates, context, recent))
        result = await self._breaker.call(self._client, request)
        if result.ok:
            try:
                return parse_answer(result.data, candidates)
            except MalformedAnswer as exc:
                reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = f"{result.error}: {result.message}"
        log.warning("NLU service %s failed (%s); using the builtin classifier", self.config.url, reason)
        return await self._fallback.classify_in_context(text, candidates, context, recent)


@hookimpl
def mcp_engine_intent_classifiers() -> list[type[IntentClassifier]]:
    return [HttpClassifier]

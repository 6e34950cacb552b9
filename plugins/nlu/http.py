"""``http``: delegates classification to an external NLU service, falling back to ``builtin``.

The service gets ``{"text", "candidates", "intents"}`` as JSON and answers
``{"intents": [{"name", "confidence"}]}``. A conversation must never stall or fail because the NLU
service is down or slow, so every failure (timeout, network, non-2xx status, malformed answer) is logged
as a warning and the turn is classified by the ``builtin`` classifier, built from the same intents when
the flow is compiled. Header values may hold secrets as ``${env:NAME}``: they are resolved per call from
``services.env`` (so a rotated secret is picked up) and never logged.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import IntentClassifier, IntentScore, Services, hookimpl
from mcp_engine.plugins.nlu.builtin import BuiltinClassifier

log = logging.getLogger(__name__)

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Endpoint that receives the POST")
    timeout_ms: int = Field(800, ge=1, le=60_000, description="Total time allowed for one call")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with every call; values may use ${env:NAME}"
    )
    send_intents: bool = Field(
        True, description="Also send the candidates' examples and patterns under 'intents'"
    )


class MalformedAnswer(ValueError):
    """The service answered 2xx but not with ``{"intents": [{"name", "confidence"}]}``."""


def resolve_headers(headers: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """Substitute ``${env:NAME}``; an unset variable raises KeyError naming it (not its value)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"secret {name} is not granted to this tenant, or not set")
        return env[name]

    return {key: _ENV_REF.sub(substitute, value) for key, value in headers.items()}


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
    description = "Asks an external NLU service over HTTP; falls back to the builtin classifier."

    def __init__(self, intents: Mapping[str, Any], config: HttpConfig, services: Services) -> None:
        super().__init__(intents, config, services)
        self._fallback = BuiltinClassifier(intents, None, services)
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_ms / 1000)
        self._intent_docs = {
            name: {"examples": list(intent.examples), "patterns": list(intent.patterns)}
            for name, intent in intents.items()
        }

    def _body(self, text: str, candidates: Sequence[str], recent: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "candidates": list(candidates)}
        if recent:  # a context_aware state: the conversation's earlier messages, oldest first
            body["context"] = list(recent)
        if self.config.send_intents:
            body["intents"] = {n: self._intent_docs[n] for n in candidates if n in self._intent_docs}
        return body

    async def _ask(self, text: str, candidates: Sequence[str], recent: Sequence[str]) -> list[IntentScore]:
        headers = resolve_headers(self.config.headers, self.services.env)
        async with self.services.http().post(
            self.config.url, json=self._body(text, candidates, recent), headers=headers, timeout=self._timeout
        ) as response:
            if response.status >= 300:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=response.reason or ""
                )
            try:
                payload = await response.json(content_type=None)
            except ValueError as exc:
                raise MalformedAnswer("the body is not JSON") from exc
        return parse_answer(payload, candidates)

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        return await self.classify_in_context(text, candidates, ())

    async def classify_in_context(
        self, text: str, candidates: Sequence[str], recent: Sequence[str]
    ) -> list[IntentScore]:
        """The service's answer; ``recent`` (a context_aware state) travels as the body's ``context``."""
        try:
            return await self._ask(text, candidates, recent)
        except TimeoutError:
            reason = f"no answer within {self.config.timeout_ms} ms"
        except aiohttp.ClientResponseError as exc:
            reason = f"status {exc.status}"
        except (aiohttp.ClientError, KeyError, MalformedAnswer) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("NLU service %s failed (%s); using the builtin classifier", self.config.url, reason)
        return await self._fallback.classify_in_context(text, candidates, recent)


@hookimpl
def mcp_engine_intent_classifiers() -> list[type[IntentClassifier]]:
    return [HttpClassifier]

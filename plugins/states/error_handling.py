"""An integration state's ``error_handling``: per error kind, a reply and the state to go to.

``{"timeout": {"response": "The bank is slow today.", "target_state": "retry_later"},
"default": {"target_state": "handoff"}}``. Each entry becomes an ``integration_error`` transition of the
state (``StateType.implied_transitions``), tried after the state's own transitions, the named kinds before
``default``, so it works for every kind an integration client reports, whatever its type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mcp_engine import ERROR_KINDS, Reference

DEFAULT = "default"
LAST_PRIORITY = 1000  # after every transition of the document's own (ties go in document order)


class ErrorHandler(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response: str | None = Field(None, description="A template sent when the call fails so")
    target_state: str = Field(description="The state entered next")


def _known_kinds(handlers: dict[str, ErrorHandler]) -> dict[str, ErrorHandler]:
    for kind in handlers:
        if kind != DEFAULT and kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind '{kind}' (known: {', '.join(ERROR_KINDS)}, or {DEFAULT})")
    return handlers


ErrorHandling = Annotated[dict[str, ErrorHandler], AfterValidator(_known_kinds)]


def handler_references(handling: dict[str, ErrorHandler]) -> Iterator[Reference]:
    for kind, handler in handling.items():
        yield Reference("state", handler.target_state, ("error_handling", kind, "target_state"))
        if handler.response is not None:
            yield Reference("template", handler.response, ("error_handling", kind, "response"))


def handler_transitions(handling: dict[str, ErrorHandler]) -> list[dict[str, Any]]:
    """The entries as ``integration_error`` transitions: named kinds first, ``default`` last."""
    ordered = sorted(handling.items(), key=lambda item: item[0] == DEFAULT)
    return [
        {
            "condition": "integration_error",
            "condition_value": None if kind == DEFAULT else kind,
            "target_state": handler.target_state,
            "priority": LAST_PRIORITY,
            "actions": []
            if handler.response is None
            else [{"type": "send_message", "text": handler.response}],
        }
        for kind, handler in ordered
    ]

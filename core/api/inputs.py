"""One set of input limits for both adapters: what an id, a channel, metadata and attributes may be.

REST's request models are built from these types and gRPC's ``convert`` checks its messages with the same
model (``MessageFields``), so neither protocol accepts what the other refuses. Ids and channels are
bounded and may not hold ``/`` (it would change what a REST path names) or control characters (NUL, CR,
LF: they corrupt logs and stores). A message's text is bounded by the engine (``MCP_MAX_MESSAGE_BYTES``,
a tenant's override, the flow's ``max_message_chars``); the whole request by the adapters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mcp_engine.errors import InvalidInput
from mcp_engine.flow.models import FLOW_ID_PATTERN

ID_MAX_CHARS = 256
CHANNEL_MAX_CHARS = 64
MAP_MAX_ENTRIES = 64
MAP_KEY_MAX_CHARS = 128
MAP_VALUE_MAX_CHARS = 4096
_UNSAFE = re.compile(r"[/\x00-\x1f\x7f]")
PLAIN = "no '/' and no control characters (NUL, CR, LF, ...)"


def _plain(value: str) -> str:
    if _UNSAFE.search(value):
        raise ValueError(f"must hold {PLAIN}")
    return value


def _plain_text(value: str) -> str:
    """Map keys and values: any text but NUL (which no store keeps)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


Plain = AfterValidator(_plain)
ConversationId = Annotated[
    str,
    Field(min_length=1, max_length=ID_MAX_CHARS, description=f"1-{ID_MAX_CHARS} characters, {PLAIN}."),
    Plain,
]
UserId = Annotated[str, Field(max_length=ID_MAX_CHARS, description=f"{PLAIN}."), Plain]
Channel = Annotated[str, Field(max_length=CHANNEL_MAX_CHARS, description=f"{PLAIN}."), Plain]
TenantId = Annotated[str, Field(pattern=FLOW_ID_PATTERN, description="A tenant id (same form as a flow id).")]
StringMap = Annotated[
    dict[
        Annotated[str, Field(max_length=MAP_KEY_MAX_CHARS), AfterValidator(_plain_text)],
        Annotated[str, Field(max_length=MAP_VALUE_MAX_CHARS), AfterValidator(_plain_text)],
    ],
    Field(max_length=MAP_MAX_ENTRIES),
]


class MessageFields(BaseModel):
    """What gRPC's ``ProcessMessage`` carries beside the text, checked as REST checks its body."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: TenantId | None = None
    conversation_id: ConversationId
    user_id: UserId = ""
    channel: Channel = ""
    metadata: StringMap = Field(default_factory=dict)
    attributes: StringMap = Field(default_factory=dict)


def check_fields(**fields: Any) -> None:
    """``InvalidInput`` naming the first field of ``fields`` (``MessageFields``' names) that is refused."""
    try:
        MessageFields.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(
            f"invalid {where}: {first['msg']}",
            {"errors": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]},
        ) from None

"""The flow test file (``pizza.test.yaml``): cases of turns, each with what to send and what to expect.

A product surface for flow designers, kept small (like Rasa's test stories and Dialogflow CX's test
cases): a turn sends one thing (``user`` text, an ``event``, or lets the state's ``timeout`` elapse) and
expects any of ``state``, ``flow``, ``messages`` (regular expressions, one per message, in order),
``intent``, ``slots`` and ``variables`` (only the keys given are compared). Integrations never reach the
network: ``fakes`` answer them per integration id (and endpoint, method or params when given).
Unknown fields are errors, so a misspelt expectation cannot pass silently.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_engine.flow.models import FLOW_ID_PATTERN
from mcp_engine.flow.schema import SCHEMA_DIALECT
from mcp_engine.regexes import cached_regex, compile_regex

MAX_CASES = 500
MAX_TURNS = 200


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fake(Strict):
    """A declared answer of an integration. It answers a call when ``integration`` is the call's and
    ``endpoint`` (exact, or a glob like ``/accounts/*``), ``method`` and ``params`` (the keys given) match.
    It answers with ``status`` and ``body`` (JSON), or fails with a transport ``error``."""

    integration: str = Field(min_length=1, description="The integration id, as the flow declares it")
    endpoint: str | None = Field(None, description="The rendered endpoint: exact, or a glob ('/a/*/b')")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    params: dict[str, Any] | None = Field(None, description="Request params that must match (the keys given)")
    status: int = Field(200, ge=100, le=599, description="2xx: success with body; 4xx/5xx: an HTTP error")
    body: Any = Field(None, description="The JSON answer (for a 2xx status)")
    error: Literal["timeout", "network"] | None = Field(None, description="Fail without an HTTP answer")

    @model_validator(mode="after")
    def _error_has_no_answer(self) -> Fake:
        if self.error is not None and ({"status", "body"} & self.model_fields_set):
            raise ValueError(f"a fake with error '{self.error}' has no status or body")
        return self

    def matches(self, integration_ids: set[str], method: str, endpoint: str, params: dict[str, Any]) -> bool:
        if self.integration not in integration_ids:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.endpoint is not None and not fnmatchcase(endpoint, self.endpoint):
            return False
        return self.params is None or all(params.get(k, ...) == v for k, v in self.params.items())


class MessageExpectation(Strict):
    """One message of the turn: ``text`` is a regular expression searched in it (anchor with ^...$ for
    the whole text); ``type`` and ``attributes`` (e.g. ``response_type: handoff``; the keys given) are
    compared when given. A plain string is a ``text``."""

    text: str
    type: str | None = None
    attributes: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @field_validator("text")
    @classmethod
    def _is_a_regex(cls, value: str) -> str:
        compile_regex(value)  # PatternError (a ValueError): not a pattern the linear-time engine runs
        return value

    def matches(self, message: dict[str, Any]) -> bool:
        if self.type is not None and message.get("type") != self.type:
            return False
        attributes = message.get("attributes") or {}
        if self.attributes and any(attributes.get(k) != v for k, v in self.attributes.items()):
            return False
        compiled = cached_regex(self.text)
        return compiled is not None and compiled.search(str(message.get("text", ""))) is not None


class TestTurn(Strict):
    """One turn: exactly one of ``user``, ``event``, ``timeout``; then what the engine must have done."""

    __test__ = False  # not a pytest class

    user: str | None = Field(None, description="A user message")
    event: str | None = Field(None, description="A client event (content.type 'event'), e.g. 'timeout'")
    timeout: bool = Field(
        False, description="Let the waiting state's timeout elapse (the server timer fires)"
    )
    fakes: list[Fake] = Field(default_factory=list, description="For this turn only, tried before the case's")
    state: str | None = Field(None, description="The state the conversation is in after the turn")
    flow: str | None = Field(None, description="The flow it is in (a sub-flow's id while one runs)")
    messages: list[MessageExpectation] | None = Field(
        None, description="Every message of the turn, in order: one regex (or {text, type}) each; [] for none"
    )
    intent: str | None = Field(None, description="The intent the message was classified as (null: none)")
    slots: dict[str, Any] | None = Field(None, description="Expected slot values (null: not filled)")
    variables: dict[str, Any] | None = Field(None, description="Expected variable values (null: unset)")

    @field_validator("user", "event", mode="before")
    @classmethod
    def _text_as_written(cls, value: Any) -> Any:
        """YAML reads ``no`` as false and ``1.50`` as 1.5: text it cannot give back is refused, with how."""
        if isinstance(value, bool | float):
            raise ValueError(f"YAML read this as {str(value).lower()}, not as text: put it in quotes")
        return str(value) if isinstance(value, int) else value

    @field_validator("messages", mode="before")
    @classmethod
    def _one_message(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @model_validator(mode="after")
    def _sends_one_thing(self) -> TestTurn:
        sent = [name for name in ("user", "event") if getattr(self, name) is not None]
        sent += ["timeout"] if self.timeout else []
        if len(sent) != 1:
            given = f"got {', '.join(sent)}" if sent else "got none"
            raise ValueError(f"a turn sends exactly one of user, event, timeout ({given})")
        return self

    @property
    def sends(self) -> str:
        """How the turn reads in a report: ``user: "hi"``, ``event: timeout``, ``timeout``."""
        if self.user is not None:
            return f'user: "{self.user}"'
        return f"event: {self.event}" if self.event is not None else "timeout"

    def expects(self, name: str) -> bool:
        """Whether the turn states an expectation for ``name`` (``intent: null`` is one)."""
        return name in self.model_fields_set


class TestCase(Strict):
    """A conversation from its first message, on an engine of its own. ``clock``, ``channel`` and
    ``user_id`` default to the file's; its ``fakes`` are tried before the file's."""

    __test__ = False

    name: str = Field(min_length=1, max_length=200)
    turns: list[TestTurn] = Field(min_length=1, max_length=MAX_TURNS)
    fakes: list[Fake] = Field(default_factory=list, description="Tried after a turn's own fakes")
    clock: AwareDatetime | None = Field(None, description="The engine's clock, e.g. 2026-03-14T09:30:00Z")
    channel: str | None = Field(None, min_length=1, max_length=64)
    user_id: str | None = Field(None, max_length=256)
    xfail: str | None = Field(
        None, description="Expected to fail, and why: reported as xfailed; passing then fails the run"
    )


class CasesBody(Strict):
    """The cases of a flow and their defaults (the REST body, and a test file without its ``flow``)."""

    cases: list[TestCase] = Field(min_length=1, max_length=MAX_CASES)
    fakes: list[Fake] = Field(default_factory=list, description="Tried after a case's own fakes")
    clock: AwareDatetime | None = Field(
        None, description="The engine's clock (natural dates, timers) for every case; default: real time"
    )
    channel: str = Field("default", min_length=1, max_length=64, description="The channel messages come on")
    user_id: str = Field("flow-test", max_length=256)

    def fakes_for(self, case: TestCase, turn: TestTurn) -> list[Fake]:
        """The fakes a turn's calls are answered by, in the order they are tried."""
        return [*turn.fakes, *case.fakes, *self.fakes]

    def clock_for(self, case: TestCase) -> float | None:
        """The case's fixed clock (epoch seconds), or None for real time."""
        clock = case.clock or self.clock
        return clock.timestamp() if clock is not None else None


class TestFile(CasesBody):
    """A test file: the flow under test (by id; default: the file's name before ``.test.``) and its cases."""

    __test__ = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(None, alias="$schema", description="JSON Schema URL, for editors")
    flow: str | None = Field(None, pattern=FLOW_ID_PATTERN, description="The flow under test, by flow_id")


def file_schema() -> dict[str, Any]:
    """The test file's JSON Schema (``docs/flow-test.schema.json``): an object with ``cases``, or a bare
    list of cases. Editors complete with it; the loader checks more (one input per turn, names exist)."""
    schema = TestFile.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.pop("$defs")
    defs["TestFile"] = schema
    # what the before-validators accept: a message as a plain regex, one message alone, a number as text
    message = {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/MessageExpectation"}]}
    turn = defs["TestTurn"]["properties"]
    turn["messages"]["anyOf"] = [message, {"type": "array", "items": message}, {"type": "null"}]
    for name in ("user", "event"):
        turn[name]["anyOf"] = [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
    cases = {"type": "array", "items": {"$ref": "#/$defs/TestCase"}, "minItems": 1}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "MCP Engine flow test file",
        "anyOf": [{"$ref": "#/$defs/TestFile"}, cases],
        "$defs": defs,
    }

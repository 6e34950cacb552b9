"""SERVICE_NAME in log records: a ``service`` field in JSON lines, ``[name]`` in text lines."""

from __future__ import annotations

import json
import logging

from mcp_engine.logs import JsonFormatter, ServiceName, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord("mcp_engine.serve", logging.INFO, __file__, 1, "serving %s", ("REST",), None)
    for key, value in extra.items():
        setattr(made, key, value)
    assert ServiceName("chat-prod").filter(made)
    return made


def test_json_lines_carry_the_service() -> None:
    line = json.loads(JsonFormatter().format(record(tenant="demo")))
    assert (line["service"], line["message"], line["tenant"]) == ("chat-prod", "serving REST", "demo")


def test_text_lines_name_the_service_once() -> None:
    line = TextFormatter().format(record(tenant="demo"))
    assert line.endswith(" INFO [chat-prod] mcp_engine.serve: serving REST tenant=demo")
    assert line.count("chat-prod") == 1


def test_without_a_service_text_lines_are_as_before() -> None:
    plain = logging.LogRecord("mcp_engine.serve", logging.INFO, __file__, 1, "hello", None, None)
    assert TextFormatter().format(plain).endswith(" INFO mcp_engine.serve: hello")

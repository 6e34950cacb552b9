"""A small flow for flow-test tests (a date slot, an integration, a wait with a timeout) and helpers that
write a folder of flows and test files and run ``mcp-engine test`` on it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mcp_engine.cli import main

BOOKING: dict[str, Any] = {
    "flow_id": "booking",
    "tenant_id": "acme",
    "name": "Booking",
    "version": "1.0.0",
    "initial_state": "menu",
    "settings": {"timezone": "Europe/Rome"},
    "intents": {"book": {"patterns": ["(?i)\\bbook\\b"]}, "help": {"patterns": ["(?i)^help$"]}},
    "variables": {"party": 2},
    "integrations": {"tables": {"type": "rest", "base_url": "http://127.0.0.1:9/api"}},
    "global_handlers": {"intents": {"help": {"target_state": "helping", "resume": True}}},
    "states": {
        "menu": {
            "type": "intent",
            "config": {"intent_patterns": ["book"]},
            "transitions": [
                {"condition": "intent_match", "condition_value": "book", "target_state": "ask_day"}
            ],
        },
        "ask_day": {
            "type": "slot_filling",
            "config": {
                "required_slots": ["day"],
                "validation_rules": {"day": "date"},
                "prompts": {"day": "Which day?"},
            },
            "transitions": [{"condition": "slot_filled", "target_state": "check"}],
        },
        "check": {
            "type": "integration",
            "config": {
                "integration_id": "tables",
                "endpoint": "/tables/{{ slots.day }}",
                "request_mapping": {"party": "variables.party"},
                "response_mapping": {"variables.free": "$.free"},
            },
            "transitions": [
                {"condition": "integration_success", "target_state": "confirm", "priority": 1},
                {
                    "condition": "integration_error",
                    "condition_value": "http_4xx",
                    "target_state": "full",
                    "priority": 2,
                },
                {"condition": "integration_error", "target_state": "sorry", "priority": 3},
            ],
        },
        "confirm": {
            "type": "response",
            "config": {
                "response_templates": {"default": "{{ variables.free }} tables free on {{ slots.day }}."}
            },
            "transitions": [{"condition": "expression", "expression": "true", "target_state": "wait_reply"}],
        },
        "wait_reply": {
            "type": "wait",
            "config": {"timeout_ms": 60000},
            "transitions": [
                {"condition": "timeout", "target_state": "nudge", "priority": 1},
                {"condition": "any_input", "target_state": "done", "priority": 2},
            ],
        },
        "nudge": {
            "type": "response",
            "config": {"response_templates": {"default": "Still there?"}},
            "transitions": [{"condition": "expression", "expression": "true", "target_state": "wait_reply"}],
        },
        "helping": {"type": "end", "config": {"response_templates": {"default": "I book tables."}}},
        "full": {"type": "end", "config": {"response_templates": {"default": "Fully booked."}}},
        "sorry": {"type": "end", "config": {"response_templates": {"default": "Try later."}}},
        "done": {
            "type": "end",
            "config": {"response_templates": {"default": "Booked.", "voice": "Booked, see you."}},
        },
    },
}

TABLES_FREE = """\
clock: 2026-03-14T23:30:00Z
fakes:
  - integration: tables
    endpoint: /tables/*
    body: {free: 3}
"""


def booking() -> dict[str, Any]:
    return copy.deepcopy(BOOKING)


def write_folder(folder: Path, flows: list[dict[str, Any]], tests: dict[str, str]) -> Path:
    """``folder`` with each flow as ``<flow_id>.json`` and each test file as named."""
    folder.mkdir(parents=True, exist_ok=True)
    for flow in flows:
        (folder / f"{flow['flow_id']}.json").write_text(json.dumps(flow, indent=2), encoding="utf-8")
    for name, text in tests.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run_test(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["test", *map(str, args)])


def run_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """``mcp-engine test --format json``: the exit code and the report."""
    result = run_test("--format", "json", *args)
    report: dict[str, Any] = json.loads(result.output)
    return result.exit_code, report

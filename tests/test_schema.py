"""The flow JSON Schema is generated from the models and plugins, valid, and kept in docs/ without drift."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from mcp_engine.flow.schema import flow_schema
from mcp_engine.registry import default_registry
from tests.flowdocs import minimal_flow

ROOT = Path(__file__).resolve().parent.parent


def schema() -> dict[str, object]:
    return flow_schema(default_registry())


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_examples_and_minimal_flow_validate_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    docs = [minimal_flow()] + [
        json.loads(p.read_text()) for p in sorted((ROOT / "examples" / "flows").glob("*.json"))
    ]
    for doc in docs:
        assert list(validator.iter_errors(doc)) == [], doc["flow_id"]


def test_schema_checks_per_type_config_and_action_params() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    doc = minimal_flow()
    doc["states"]["ask"]["config"]["required_slot"] = ["size"]
    doc["states"]["bye"]["entry_actions"] = [{"type": "send_message", "txt": "hi"}]
    doc["states"]["menu"]["type"] = "nonsense"
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(doc)}
    assert {"states/ask/config", "states/bye/entry_actions/0", "states/menu/type"} <= paths


def test_flow_may_carry_dollar_schema() -> None:
    from mcp_engine.flow.validate import validate_data

    doc = minimal_flow()
    doc["$schema"] = "./flow.schema.json"
    assert validate_data(doc).problems == []


def test_docs_copy_matches_the_generated_schema() -> None:
    written = json.loads((ROOT / "docs" / "flow.schema.json").read_text())
    assert written == schema(), "regenerate with: mcp-engine schema > docs/flow.schema.json"

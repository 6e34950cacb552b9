"""The example flows, their scenario files and the JSON in the docs stay valid as the engine evolves.

Designers copy from these, and the rules differential test runs the scenarios, so a flow that
stops validating or a scenario naming a renamed state must fail here, not in someone's editor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_engine.experiments.checks import check_document
from mcp_engine.flow.models import Flow
from mcp_engine.flow.validate import validate_file, validate_text

ROOT = Path(__file__).parent.parent
FLOWS = sorted((ROOT / "examples" / "flows").glob("*.json"))
SCENARIOS = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CASE_KEYS = {"name", "state", "phase", "event", "intent", "integration", "expect"}
NAMESPACES = {"slots", "variables", "user_profile", "context", "slot_filling", "integration_results"}


def load(path: Path) -> Flow:
    return Flow.model_validate(json.loads(path.read_text()))


def json_blocks() -> list[tuple[str, str]]:
    return [
        (f"{doc.name}#{i}", block)
        for doc in DOCS
        for i, block in enumerate(JSON_BLOCK.findall(doc.read_text()))
    ]


def scenario(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.stem)
def test_example_flow_validates_without_problems(path: Path) -> None:
    flow = load(path)
    assert flow.tenant_id == "demo"
    result = validate_file(path)
    assert [p.render(str(path)) for p in result.problems] == []


def test_sub_flows_exist_in_the_same_tenant() -> None:
    flows = {flow.flow_id: flow for flow in map(load, FLOWS)}
    for flow in flows.values():
        for state in flow.states.values():
            actions = [
                *state.entry_actions,
                *state.exit_actions,
                *(a for t in state.transitions for a in t.actions),
            ]
            for action in (a for a in actions if a.type == "trigger_flow"):
                sub_flow = flows.get(action.params()["flow_id"])
                assert sub_flow is not None, f"{flow.flow_id} triggers a flow that is not an example"
                assert sub_flow.tenant_id == flow.tenant_id


def test_docs_have_flows_to_check() -> None:
    assert any('"flow_id"' in block for _, block in json_blocks())


@pytest.mark.parametrize(("where", "block"), json_blocks(), ids=[where for where, _ in json_blocks()])
def test_docs_json_block(where: str, block: str) -> None:
    data = json.loads(block)
    if '"experiment_id"' in block:  # an experiment document (docs/experiments.md)
        definition, problems = check_document(data)
        assert [p.render(where) for p in problems] == []
        assert definition is not None
    elif '"flow_id"' in block:
        result = validate_text(block, where)
        assert [p.render(where) for p in result.errors] == []
        assert isinstance(data, dict)
        Flow.model_validate(data)


def test_every_example_flow_has_scenarios() -> None:
    assert {p.stem for p in FLOWS} == {p.stem for p in SCENARIOS}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_name_existing_flow_states_and_targets(path: Path) -> None:
    data = scenario(path)
    flow_path = ROOT / "examples" / "flows" / data["flow"]
    assert flow_path.is_file(), f"{path.name}: no flow {data['flow']}"
    flow = load(flow_path)
    names = [case["name"] for case in data["cases"]]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in data["cases"]:
        where = f"{path.name}: {case['name']}"
        assert set(case) <= CASE_KEYS | NAMESPACES, where
        assert case["state"] in flow.states, where
        assert case["expect"] is None or case["expect"] in flow.states, where
        assert case["phase"] in {"input", "entry"}, where
        assert case["phase"] == "entry" or case.get("event"), f"{where}: an input case needs an event"
        if "integration" in case:
            assert case["integration"]["outcome"] in {"success", "error"}, where


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_cover_every_transition_and_no_match(path: Path) -> None:
    data = scenario(path)
    flow = load(ROOT / "examples" / "flows" / data["flow"])
    covered = {(case["state"], case["expect"]) for case in data["cases"]}
    wanted = {(name, t.target_state) for name, state in flow.states.items() for t in state.transitions}
    assert sorted(wanted - covered) == []
    assert any(expect is None for _, expect in covered), "add a case where no transition holds"

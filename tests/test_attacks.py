"""Issue 17, findings 3-7: each attack from tenant A on a real served engine is refused or bounded, and
tenant B's turns keep being answered meanwhile (``tests/attack_kit.py``; the seconds are measured by
``python -m benchmarks attacks``, never asserted here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_engine.errors import FlowValidationError, PayloadTooLarge
from mcp_engine.flow.loader import parse_document
from mcp_engine.runtime.sandbox import MAX_VALUE_CHARS
from tests import attack_kit as kit
from tests.serve_kit import MCP_ENGINE


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.Engine]:
    tmp = tmp_path_factory.mktemp("attacks")
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "bomb.yaml").write_text(kit.yaml_bomb(9))
    with kit.attack_engine(tmp, "--flows", str(flows), env={"STATE_EXECUTION_TIMEOUT_MS": "1000"}) as served:
        yield served


def attack_turn(engine: kit.Engine, document: dict[str, object], text: str, conversation: str) -> kit.Reply:
    """Publish ``document`` and send ``text`` while B takes turns; B must get every answer."""
    published = engine.publish(document)
    assert published.status == 200, published
    reply, latency = engine.during(
        lambda: engine.send(kit.ATTACKER, conversation, text, str(document["flow_id"]))
    )
    assert latency.samples, "tenant B got no turn in during the attack"
    assert latency.failures == 0
    return reply


# --- finding 3: regexes run in linear time; the deadline bounds a turn --------------------------------


def test_a_catastrophic_intent_pattern_matches_in_linear_time(engine: kit.Engine) -> None:
    reply = attack_turn(engine, kit.regex_flow(), kit.evil_text(3_000), "regex")
    assert reply.status == 200
    assert reply.body["current_state"] == "ask"  # no match, answered at once


def test_many_matches_in_one_expression_are_each_linear(engine: kit.Engine) -> None:
    reply = attack_turn(engine, kit.matches_flow(60), kit.evil_text(3_000), "matches")
    assert reply.status == 200
    assert reply.body["current_state"] == "check"


def _matches_lookahead() -> dict[str, object]:
    document = kit.matches_flow(1)
    document["states"]["check"]["transitions"][0]["expression"] = 'event.text matches "a(?=b)"'
    return document


def _slot_rule_backreference() -> dict[str, object]:
    collect = {
        "type": "slot_filling",
        "config": {
            "required_slots": ["code"],
            "validation_rules": {"code": "regex:(a)\\1"},
            "prompts": {"code": "Your code?"},
        },
        "transitions": [{"condition": "slot_filled", "target_state": "done"}],
    }
    return kit.flow(kit.ATTACKER, "rule", "collect", {"collect": collect, "done": kit.end("ok")})


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (kit.regex_flow(r"(a)\1"), "/intents/evil/patterns/0"),
        (kit.regex_flow(r"a(?=b)"), "/intents/evil/patterns/0"),
        (_matches_lookahead(), "/states/check/transitions/0/expression"),
        (_slot_rule_backreference(), "/states/collect/config/validation_rules/code"),
    ],
)
def test_a_pattern_the_linear_engine_cannot_run_is_refused_with_its_pointer(
    engine: kit.Engine, document: dict[str, object], where: str
) -> None:
    reply = engine.request("POST", "/v2/flows", kit.ATTACKER, document)
    assert reply.status == 422
    assert reply.code == "flow_invalid"
    problems = {p["pointer"]: p["message"] for p in reply.body["error"]["details"]["problems"]}
    assert "linear time (RE2)" in problems[where]


def test_a_turn_that_holds_the_loop_ends_at_its_deadline_and_keeps_the_context(engine: kit.Engine) -> None:
    document = kit.slow_chain_flow(30)
    assert engine.publish(document).status == 200
    first = engine.send(kit.ATTACKER, "slow", "hello", "slow")
    assert first.status == 200
    assert first.body["response"]["text"] == "say go"
    before = engine.state(kit.ATTACKER, "slow").body
    reply, latency = engine.during(lambda: engine.send(kit.ATTACKER, "slow", "go", "slow"))
    assert reply.status == 504
    assert reply.code == "deadline_exceeded"
    assert latency.failures == 0
    after = engine.state(kit.ATTACKER, "slow").body
    assert after == before  # nothing of the abandoned turn was written


# --- finding 4: templates cannot grow values without bound ---------------------------------------------


@pytest.mark.parametrize(
    ("template", "conversation"),
    [(kit.string_template(40), "strings"), (kit.integer_template(40), "ints")],
)
def test_a_template_that_grows_a_value_is_a_template_error(
    engine: kit.Engine, template: str, conversation: str
) -> None:
    reply = attack_turn(engine, kit.template_flow(template, conversation), "go", conversation)
    assert reply.status == 200
    assert reply.body["response"]["text"] == ""  # its literal text: the template has only tags
    assert engine.errors(kit.ATTACKER, conversation) == ["template_error"]


def test_a_value_under_the_bound_still_renders(engine: kit.Engine) -> None:
    doublings = (MAX_VALUE_CHARS // 2).bit_length() - 2  # the string stays under the bound
    reply = attack_turn(
        engine, kit.template_flow(kit.string_template(doublings), "small"), "go", "small-strings"
    )
    assert reply.body["response"]["text"] == str(2 ** (doublings + 1))


# --- finding 5: validation is bounded --------------------------------------------------------------------


def test_a_state_over_the_transition_limit_is_refused_naming_the_limit(engine: kit.Engine) -> None:
    document = kit.wide_flow(1_500)
    checked, latency = engine.during(
        lambda: engine.request("POST", "/v2/flows/validate", kit.ATTACKER, document)
    )
    assert latency.failures == 0
    assert checked.status == 200
    assert checked.body["valid"] is False
    assert [(p["pointer"], p["code"]) for p in checked.body["problems"]] == [
        ("/states/hub/transitions", "too-many-transitions")
    ]
    assert "MCP_MAX_TRANSITIONS" in checked.body["problems"][0]["message"]
    created = engine.request("POST", "/v2/flows", kit.ATTACKER, document)
    assert created.status == 422
    assert created.code == "flow_invalid"


def test_warnings_are_capped_per_code_with_a_summary(engine: kit.Engine) -> None:
    checked = engine.request("POST", "/v2/flows/validate", kit.ATTACKER, kit.wide_flow(256))
    assert checked.body["valid"] is True
    conflicts = [p for p in checked.body["problems"] if p["code"] == "priority-conflict"]
    assert len(conflicts) == 21  # 20, then "and N more"
    assert sum(p["message"].startswith("and ") for p in conflicts) == 1


def test_a_body_over_the_size_limit_is_a_413(engine: kit.Engine) -> None:
    reply = engine.request(
        "POST", "/v2/flows/validate", kit.ATTACKER, raw=b'{"x": "' + b"a" * (2 << 20) + b'"}'
    )
    assert reply.status == 413


# --- finding 6: a conversation's context is bounded ---------------------------------------------------


def test_a_turn_that_would_grow_the_context_over_the_limit_is_refused_and_not_saved(
    engine: kit.Engine,
) -> None:
    document = kit.growing_flow(200)
    assert engine.publish(document).status == 200
    assert engine.send(kit.ATTACKER, "grow", "small", "grow").status == 200
    before = engine.state(kit.ATTACKER, "grow").body
    reply, latency = engine.during(lambda: engine.send(kit.ATTACKER, "grow", "x" * 60_000, "grow"))
    assert latency.failures == 0
    assert reply.status == 413
    assert reply.code == "context_too_large"
    assert reply.body["error"]["details"]["limit"] == 1024 * 1024
    after = engine.state(kit.ATTACKER, "grow").body
    assert after == before
    assert after["context"]["variables"]["v0"] == "small"


# --- finding 7: YAML aliases are bounded, in one place for every reader -------------------------------


def test_serve_flows_skips_a_yaml_bomb_with_its_line(engine: kit.Engine) -> None:
    output = engine.served.output()
    assert "bomb.yaml" in output
    assert "aliases expand to more than" in output
    assert "Traceback" not in output


def test_validate_refuses_a_yaml_bomb_with_its_line_and_no_traceback(tmp_path: Path) -> None:
    import subprocess

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(kit.yaml_bomb(9))
    done = subprocess.run(
        [str(MCP_ENGINE), "validate", str(bomb)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "aliases expand to more than" in output
    assert re.search(rf"{re.escape(str(bomb))}:\d+: error", output)  # with the line of the alias
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (kit.yaml_bomb(9), "aliases expand to more than"),
        ("a: &a [1]\nb: " + "[" + ", ".join(["*a"] * 1_001) + "]\n", "more than 1000 aliases"),
        ("a: &a [*a]\n", "refers to its own anchor"),
    ],
)
def test_parse_document_bounds_aliases(text: str, message: str) -> None:
    with pytest.raises(FlowValidationError) as refused:
        parse_document(text.encode(), source="body.yaml")
    assert message in refused.value.problems[0].message
    assert refused.value.problems[0].line is not None
    assert refused.value.http_status == 422


def test_parse_document_refuses_an_oversized_document_with_413() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        parse_document("a: " + "x" * (2 << 20), source="body.yaml")
    assert refused.value.http_status == 413
    assert parse_document(b'{"a": [1, 2]}', source="body.json") == {"a": [1, 2]}

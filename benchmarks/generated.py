"""Generated flows of any size, for benchmarks that measure how cost grows with the flow."""

from __future__ import annotations

from typing import Any


def generated_flow(states: int, intents: int = 8) -> dict[str, Any]:
    """A valid flow of ``states`` states mixing every built-in state type and condition.

    Every block of four states is: an intent state branching on intents, a slot_filling state,
    a condition state testing an expression, and a response state moving on to the next block.
    """
    intent_names = [f"intent_{i}" for i in range(intents)]
    doc: dict[str, Any] = {
        "flow_id": f"generated-{states}",
        "tenant_id": "bench",
        "name": f"Generated {states}",
        "version": "1.0.0",
        "initial_state": "s0",
        "intents": {name: {"examples": [f"example {name}"]} for name in intent_names},
        "states": {},
    }
    names = [f"s{i}" for i in range(states)]
    for i, name in enumerate(names):
        nxt = names[i + 1] if i + 1 < states else "done"
        role = i % 4
        if role == 0:
            doc["states"][name] = {
                "type": "intent",
                "config": {"intent_patterns": intent_names},
                "transitions": [
                    {
                        "condition": "intent_match",
                        "condition_value": intent,
                        "target_state": nxt,
                        "priority": 10,
                    }
                    for intent in intent_names
                ]
                + [
                    {
                        "condition": "low_confidence",
                        "target_state": name if i == 0 else names[i - 1],
                        "priority": 20,
                    }
                ],
            }
        elif role == 1:
            doc["states"][name] = {
                "type": "slot_filling",
                "config": {
                    "required_slots": [f"slot_{i}"],
                    "validation_rules": {f"slot_{i}": "int:1..100"},
                    "prompts": {f"slot_{i}": "How many? ({{ variables.step }})"},
                },
                "transitions": [
                    {"condition": "slot_filled", "condition_value": f"slot_{i}", "target_state": nxt}
                ],
            }
        elif role == 2:
            doc["states"][name] = {
                "type": "condition",
                "transitions": [
                    {
                        "condition": "expression",
                        "expression": f"slots.slot_{i - 1} > 50 and variables.step != 'x'",
                        "target_state": nxt,
                        "priority": 1,
                    },
                    {"condition": "expression", "expression": "true", "target_state": nxt, "priority": 2},
                ],
            }
        else:
            doc["states"][name] = {
                "type": "response",
                "config": {"response_templates": {"default": f"Step {i} done"}},
                "entry_actions": [{"type": "set_variable", "name": "step", "expression": f"'s{i}'"}],
                "transitions": [{"condition": "expression", "expression": "true", "target_state": nxt}],
            }
    doc["states"]["done"] = {"type": "end", "config": {"response_templates": {"default": "Done"}}}
    return doc

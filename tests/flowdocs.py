"""Small flow documents for tests, built as plain dicts so each test can break one thing."""

from __future__ import annotations

import copy
from typing import Any


def minimal_flow() -> dict[str, Any]:
    """A valid flow touching every reference kind: intents, slots, an integration, handlers, an end."""
    return copy.deepcopy(
        {
            "flow_id": "shop",
            "tenant_id": "demo",
            "name": "Shop",
            "version": "1.0.0",
            "initial_state": "menu",
            "intents": {"order": {"examples": ["I want to order"]}, "help": {"patterns": ["\\bhelp\\b"]}},
            "integrations": {"stock": {"type": "rest", "base_url": "http://127.0.0.1:9"}},
            "global_handlers": {
                "intents": {"help": {"target_state": "helping", "resume": True}},
                "no_match": {"response": "Sorry?", "max_consecutive": 2, "target_state": "bye"},
                "error_state": "bye",
            },
            "states": {
                "menu": {
                    "type": "intent",
                    "config": {"intent_patterns": ["order", "help"]},
                    "transitions": [
                        {"condition": "intent_match", "condition_value": "order", "target_state": "ask"}
                    ],
                },
                "ask": {
                    "type": "slot_filling",
                    "config": {
                        "required_slots": ["size"],
                        "validation_rules": {"size": "enum:small,large=big|huge"},
                        "prompts": {"size": "Which size?"},
                    },
                    "transitions": [{"condition": "slot_filled", "target_state": "check", "priority": 10}],
                },
                "check": {
                    "type": "integration",
                    "config": {"integration_id": "stock", "endpoint": "/stock/{{ slots.size }}"},
                    "transitions": [
                        {"condition": "integration_success", "target_state": "bye", "priority": 1},
                        {
                            "condition": "integration_error",
                            "condition_value": "timeout",
                            "target_state": "bye",
                        },
                    ],
                },
                "helping": {
                    "type": "response",
                    "config": {"response_templates": {"default": "I can take your order."}},
                    "transitions": [
                        {
                            "condition": "expression",
                            "expression": "slots.size == 'large'",
                            "target_state": "bye",
                        }
                    ],
                },
                "bye": {"type": "end", "config": {"response_templates": {"default": "Bye"}}},
            },
        }
    )

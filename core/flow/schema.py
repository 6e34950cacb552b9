"""The flow document's JSON Schema, generated from the models and the registry (never hand-written).

Each registered state type's and action's ``Config`` becomes an ``if type == name then ...`` branch,
so editors complete and check a plugin's configuration exactly like a built-in's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mcp_engine.flow.models import Flow
from mcp_engine.registry import Registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/$defs/{model}"


def _hoist(model: type[BaseModel], key: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Add ``model``'s schema (and its own $defs) to ``defs`` under ``key``; return a $ref to it."""
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    defs[key] = schema
    return {"$ref": REF.format(model=key)}


def flow_schema(registry: Registry) -> dict[str, Any]:
    schema = Flow.model_json_schema(ref_template=REF)
    defs: dict[str, Any] = schema["$defs"]
    state, action, transition = defs["State"], defs["Action"], defs["Transition"]

    state["properties"]["type"]["enum"] = registry.state_types.names()
    branches = state.setdefault("allOf", [])
    for name, cls in sorted(registry.state_types.classes.items()):
        ref = _hoist(cls.Config, f"config.{name}", defs)
        branches.append(
            {"if": {"properties": {"type": {"const": name}}}, "then": {"properties": {"config": ref}}}
        )

    action["properties"]["type"]["enum"] = registry.actions.names()
    branches = action.setdefault("allOf", [])
    for name, action_cls in sorted(registry.actions.classes.items()):
        ref = _hoist(action_cls.Config, f"action.{name}", defs)
        params = defs[f"action.{name}"]
        params.setdefault("properties", {})["type"] = {"const": name}
        branches.append({"if": {"properties": {"type": {"const": name}}}, "then": ref})

    transition["properties"]["condition"]["enum"] = registry.conditions.names()
    defs["Integration"]["properties"]["type"]["enum"] = registry.integration_clients.names()
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "MCP Engine flow"}

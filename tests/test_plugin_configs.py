"""Every registered plugin class declares a name and a pydantic Config that forbids unknown keys."""

from __future__ import annotations

import pytest

from mcp_engine.registry import default_registry

REGISTRY = default_registry()
ENTRIES = [(kind.label, name, cls) for kind in REGISTRY.kinds() for name, cls in kind.classes.items()]


@pytest.mark.parametrize(("kind", "name", "cls"), ENTRIES, ids=[f"{k}:{n}" for k, n, _ in ENTRIES])
def test_config_forbids_extra_keys(kind: str, name: str, cls: type) -> None:
    assert cls.name == name
    assert cls.Config.model_config.get("extra") == "forbid", f"{kind} '{name}' Config must set extra='forbid'"


def test_every_kind_has_builtins() -> None:
    assert all(kind.classes for kind in REGISTRY.kinds())

"""Secrets in flows: ``${env:NAME}`` resolves only names an operator granted the tenant.

A flow names a secret as ``${env:NAME}`` (in integration headers and authentication, a classifier's
headers, any plugin config). It resolves from the engine's environment only if the tenant was granted
NAME, and never for a name the engine's own configuration reads (``MCP_ADMIN_KEY``, ``POSTGRES_URI``,
``REDIS_URL``, every ``EngineSettings`` variable, anything ``MCP_*``): those stay the operator's even if
granted. An ungranted reference is a validation error with its pointer; at call time the tenant's
``services.env`` (``SecretView``) simply does not have it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache

from mcp_engine.config import EngineSettings
from mcp_engine.flow.problems import Problem, pointer

REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
ENGINE_PREFIX = "MCP_"


@cache
def engine_variables() -> frozenset[str]:
    """Every environment variable the engine's own settings read."""
    return frozenset(f.alias or name.upper() for name, f in EngineSettings.model_fields.items())


def never_granted(name: str) -> bool:
    """Whether ``name`` is the engine's own configuration, which no tenant may read."""
    return name.upper().startswith(ENGINE_PREFIX) or name.upper() in engine_variables()


def granted(name: str, secrets: frozenset[str]) -> bool:
    return name in secrets and not never_granted(name)


class SecretView(Mapping[str, str]):
    """The environment as one tenant's plugins see it: its granted secrets, nothing else."""

    def __init__(self, env: Mapping[str, str], secrets: frozenset[str]) -> None:
        self._env, self._secrets = env, secrets

    def __getitem__(self, name: str) -> str:
        if not granted(name, self._secrets):
            raise KeyError(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._secrets if granted(name, self._secrets) and name in self._env)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def secret_problems(document: object, secrets: frozenset[str], tenant_id: str) -> list[Problem]:
    """A ``secret-not-granted`` error for each ``${env:NAME}`` of ``document`` the tenant may not read."""
    problems: list[Problem] = []
    for at, text in _strings(document, ()):
        for name in REFERENCE.findall(text):
            if never_granted(name):
                why = f"${{env:{name}}} is the engine's own configuration: no flow may reference it"
            elif name not in secrets:
                why = (
                    f"secret {name} is not granted to tenant '{tenant_id}' (an operator grants it: "
                    f"mcp-engine tenants grant {tenant_id} --secret {name}, or MCP_GRANT_SECRETS)"
                )
            else:
                continue
            problems.append(Problem("error", pointer(*at), why, "secret-not-granted"))
    return problems


def referenced(document: object) -> set[str]:
    """Every secret name ``document`` references."""
    return {name for _, text in _strings(document, ()) for name in REFERENCE.findall(text)}


def _strings(document: object, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string of ``document`` holding a reference, with its path (iterative: no depth limit)."""
    stack: list[tuple[tuple[str | int, ...], object]] = [(path, document)]
    while stack:
        at, node = stack.pop()
        if isinstance(node, str):
            if "${env:" in node:
                yield at, node
        elif isinstance(node, dict):
            stack.extend(((*at, str(key)), value) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*at, index), value) for index, value in reversed(list(enumerate(node))))

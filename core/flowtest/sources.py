"""Where the command line's replay and export read from: a store, an export file, a candidate flow.

A store is the engine's own (``store``: PostgreSQL + Redis when ``POSTGRES_URI``/``REDIS_URL`` are set,
else the ``MCP_SQLITE_PATH`` file) or a named SQLite file; conversations are read one by one through
``Store.history``. An export is what ``mcp-engine export`` writes (or ``GET .../history`` pages). A
candidate is a flow file (with the flows of its folder, for sub-flows) or a stored ``FLOW_ID@VERSION``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from mcp_engine.config import EngineSettings
from mcp_engine.errors import InvalidInput
from mcp_engine.flow.checks import pydantic_problems
from mcp_engine.flow.loader import Source, read_file
from mcp_engine.flow.validate import validate_data
from mcp_engine.flowtest.files import Folder, TestFileLoader
from mcp_engine.flowtest.harness import FlowSet
from mcp_engine.flowtest.history import conversations_of_export, read_histories
from mcp_engine.flowtest.replay import ReplayReport, replay
from mcp_engine.flowtest.spec import Fake
from mcp_engine.flowtest.suite import stored_flow_set
from mcp_engine.registry import Registry
from mcp_engine.store.base import Store
from mcp_engine.store.factory import open_store
from mcp_engine.store.sqlite import SQLiteStore

STORE = "store"  # ``--from store``: the store the engine's settings name


def is_export(source: str) -> bool:
    return source.lower().endswith(".json")


@asynccontextmanager
async def opened_store(source: str, settings: EngineSettings) -> AsyncIterator[Store]:
    """The store ``source`` names (``store``, or a SQLite file that must exist), opened."""
    if source == STORE:
        store = open_store(settings)
        if isinstance(store, SQLiteStore) and not Path(store.path).is_file():
            raise InvalidInput(
                f"no store at {store.path} (set MCP_SQLITE_PATH, or POSTGRES_URI and REDIS_URL)"
            )
    elif Path(source).is_file():
        store = SQLiteStore(source)
    else:
        raise InvalidInput(f"no such store file: {source} (give a SQLite file, an export .json, or 'store')")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def read_export(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The histories of an export file, by conversation id, each oldest first."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: not JSON: {exc}") from None
    return conversations_of_export(data, str(path))


def candidate_file(path: Path, registry: Registry) -> FlowSet:
    """A flow file as the candidate, with the other flows of its folder and tenant (sub-flows)."""
    source = _read(path)
    flow = validate_data(source.data, registry, source).raise_for_errors()
    folder = Folder.load(path.parent, registry)
    others = [
        (document, model)
        for (tenant, flow_id), (document, model) in folder.flows.items()
        if tenant == flow.tenant_id and flow_id != flow.flow_id
    ]
    return FlowSet(source.data, [d for d, _ in others], [flow, *(m for _, m in others)])


def read_fakes(path: Path) -> list[Fake]:
    """Fakes from a YAML/JSON file: a list of fakes, or a test file (its file-level ``fakes``)."""
    source = _read(path, TestFileLoader)
    listed = not isinstance(source.data, dict)
    data = source.data if listed else source.data.get("fakes", [])
    try:
        return _FAKES.validate_python(data)
    except ValidationError as exc:
        problems = []
        for found in pydantic_problems(exc, () if listed else ("fakes",)):
            problems.append(found.with_line(source.line_of(found.pointer)).render(str(path)))
        raise InvalidInput("; ".join(problems), {"file": str(path)}) from None


def _read(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Source:
    source, problem = read_file(path, loader)
    if source is None:
        where = f"{path}:{problem.line}" if problem is not None and problem.line else str(path)
        raise InvalidInput(f"{where}: {problem.message if problem else 'unreadable'}", {"file": str(path)})
    return source


_FAKES = TypeAdapter(list[Fake])


async def replay_from(
    source: str,
    candidate: str,
    tenant_id: str | None,
    conversation_ids: list[str],
    fakes: list[Fake],
    channel: str,
    registry: Registry,
    settings: EngineSettings,
) -> ReplayReport:
    """``mcp-engine replay``: read the conversations, find the candidate, replay."""
    if is_export(source):
        recorded = read_export(Path(source))
        if conversation_ids:
            recorded = {cid: recorded.get(cid, []) for cid in dict.fromkeys(conversation_ids)}
        flows = await _candidate(candidate, tenant_id, STORE, registry, settings)
    else:
        if not tenant_id or not conversation_ids:
            raise InvalidInput("reading from a store needs --tenant and at least one --conversation")
        async with opened_store(source, settings) as store:
            recorded = await read_histories(store, tenant_id, conversation_ids)
        flows = await _candidate(candidate, tenant_id, source, registry, settings)
    return await replay(recorded, flows, registry, settings, fakes, channel)


async def _candidate(
    candidate: str, tenant_id: str | None, store_source: str, registry: Registry, settings: EngineSettings
) -> FlowSet:
    if Path(candidate).is_file():
        return candidate_file(Path(candidate), registry)
    flow_id, at, version = candidate.partition("@")
    if not at or not flow_id or not version:
        raise InvalidInput(f"--against {candidate}: give a flow file or FLOW_ID@VERSION (a stored version)")
    if not tenant_id:
        raise InvalidInput("a stored candidate (FLOW_ID@VERSION) needs --tenant")
    async with opened_store(store_source, settings) as store:
        return await stored_flow_set(store, registry, tenant_id, flow_id, version)


async def export(
    source: str, tenant_id: str, conversation_ids: list[str], settings: EngineSettings
) -> dict[str, Any]:
    """``mcp-engine export``: whole histories in the ``GET .../history`` page format, one per conversation."""
    async with opened_store(source, settings) as store:
        recorded = await read_histories(store, tenant_id, conversation_ids)
    missing = [cid for cid, events in recorded.items() if not events]
    if missing:
        raise InvalidInput(f"tenant '{tenant_id}' has no history for {', '.join(missing)}")
    pages = [
        {"conversation_id": cid, "events": events[::-1], "next_before": None}
        for cid, events in recorded.items()
    ]
    return {"conversations": pages}

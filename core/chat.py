"""``mcp-engine chat FLOW``: a conversation in the terminal, scriptable through stdin.

The flow's folder is loaded too (sub-flows of the same tenant), on a throwaway SQLite store unless
``--db`` names one; every flow goes through the engine's catalogue, like one uploaded over REST. Timers
fire while the chat waits for input. The developer is the operator here: the chat grants the flows the
secrets they name and any address (``mcp_engine.security.local``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TextIO

from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError, FlowValidationError
from mcp_engine.flow.loader import read_file
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.security.local import developer_settings
from mcp_engine.store.base import FlowVersion
from mcp_engine.store.sqlite import SQLiteStore

PROMPT = "you> "


async def chat(flow_path: Path, db: Path | None, debug: bool, channel: str, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(str(db or Path(scratch) / "chat.db"))
        folder = [source.data for path in _flow_paths(flow_path) if (source := read_file(path)[0])]
        engine = ExecutionService(store, settings=developer_settings(EngineSettings(), folder))
        await engine.start()
        try:
            flow = await _publish(engine, flow_path, make_default=True)
            if flow is None:
                return 1
            for sibling in _flow_paths(flow_path):
                if sibling != flow_path:
                    await _publish(engine, sibling, tenant_id=flow.tenant_id)
            return await _loop(engine, flow.tenant_id, flow.flow_id, debug, channel, out)
        finally:
            await engine.close()


def _flow_paths(flow_path: Path) -> list[Path]:
    """The chat's flow and its folder's other JSON flows."""
    return [flow_path, *sorted(p for p in flow_path.parent.glob("*.json") if p != flow_path)]


async def _publish(
    engine: ExecutionService, path: Path, make_default: bool = False, tenant_id: str | None = None
) -> FlowVersion | None:
    """Publish the flow at ``path`` through the engine's catalogue (so in its tenant's view of the
    plugins). The chat's own flow prints its problems; a sibling (``tenant_id`` given) of another tenant,
    or one that does not validate, is left out silently."""
    source, problem = read_file(path)
    if source is None:
        if tenant_id is None and problem is not None:
            print(problem.render(str(path)), file=sys.stderr)
        return None
    if tenant_id is not None and (
        not isinstance(source.data, dict) or source.data.get("tenant_id") != tenant_id
    ):
        return None
    try:
        return await engine.catalogue.publish_document(source.data, make_default, source)
    except FlowValidationError as exc:
        if tenant_id is None:
            for found in exc.problems:
                print(found.render(str(path)), file=sys.stderr)
        return None


async def _loop(
    engine: ExecutionService, tenant: str, flow_id: str, debug: bool, channel: str, out: TextIO
) -> int:
    conversation = f"chat-{uuid.uuid4().hex[:8]}"
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    hints = Hints(force_flow=flow_id)
    while True:
        if interactive:
            print(PROMPT, end="", flush=True, file=out)
        line_task = loop.run_in_executor(None, sys.stdin.readline)
        while not line_task.done():
            for fired in await fire_due_timers(engine):
                for message in fired["messages"]:
                    print(f"bot> {message['text']}", file=out, flush=True)
            await asyncio.wait([line_task], timeout=0.2)
        line = line_task.result()
        if not line:
            return 0
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if not interactive:
            print(f"{PROMPT}{text}", file=out)
        message = InboundMessage(text=text, user_id="chat", channel=channel)
        try:
            reply = await engine.process_message(tenant, conversation, message, hints)
        except EngineError as exc:
            print(f"error: {exc.message}", file=out, flush=True)
            continue
        hints = Hints()
        for sent in reply["messages"]:
            print(f"bot> {sent['text']}", file=out, flush=True)
        if debug:
            context = await engine.get_state(tenant, conversation)
            print(
                f"  [state={reply['current_state']} slots={json.dumps(context.get('slots', {}))} "
                f"intent={json.dumps(context.get('intent'))} scores={json.dumps(reply['confidence_scores'])} "
                f"updates={json.dumps(reply['context_updates'])}]",
                file=out,
                flush=True,
            )

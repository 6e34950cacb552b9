"""``mcp-engine chat FLOW``: a conversation in the terminal, scriptable through stdin.

The flow's folder is loaded too (sub-flows of the same tenant), on a throwaway SQLite store unless
``--db`` names one. Timers fire while the chat waits for input.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, TextIO

from mcp_engine.errors import EngineError
from mcp_engine.flow.validate import validate_file
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.store.sqlite import SQLiteStore

PROMPT = "you> "


async def chat(flow_path: Path, db: Path | None, debug: bool, channel: str, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    result = validate_file(flow_path)
    if result.flow is None or not result.ok:
        for problem in result.problems:
            print(problem.render(result.source), file=sys.stderr)
        return 1
    flow = result.flow
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(str(db or Path(scratch) / "chat.db"))
        engine = ExecutionService(store)
        await engine.start()
        try:
            for sibling in sorted(flow_path.parent.glob("*.json")):
                other = validate_file(sibling)
                if (
                    sibling != flow_path
                    and other.ok
                    and other.flow
                    and other.flow.tenant_id == flow.tenant_id
                ):
                    await engine.publish_flow(_document(sibling))
            await engine.publish_flow(_document(flow_path), make_default=True)
            return await _loop(engine, flow.tenant_id, flow.flow_id, debug, channel, out)
        finally:
            await engine.close()


def _document(path: Path) -> dict[str, Any]:
    import yaml

    text = path.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return data


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
            for fired in await engine.fire_due_timers():
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

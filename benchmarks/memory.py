"""Memory of a served engine: RSS with many idle conversations and with many published flows, each store.

``mcp-engine serve --flows examples/flows`` after a warm-up (every code path of the pizza flow run once
per in-flight slot), then ``FEW`` and ``MANY`` idle conversations (one message each, so each is left
waiting mid-run), then ``FLOWS`` published flows (copies of the pizza flow under other ids, each published
over REST and run once, so each is compiled in the process). RSS is the server's VmRSS from /proc. On the
production store nothing in the process may grow with the number of idle conversations (locks, caches
and limiter entries are per busy conversation, per tenant or per flow): the bytes per conversation from
``FEW`` to ``MANY`` should be about zero; the embedded store has SQLite's page cache in the process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from benchmarks.client import Job, LoadClient, load_client
from benchmarks.load import ROOT, served_engines
from benchmarks.report import Section, Target

FLAT_BYTES = 2_048  # per idle conversation, production store: "flat" (allocator noise, no state per id)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _publish_flows(port: int, count: int) -> None:
    """``count`` copies of the pizza flow as flows of their own, each published and run once."""
    pizza = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
    base = f"http://127.0.0.1:{port}"
    headers = {"X-Tenant-ID": "demo"}
    async with aiohttp.ClientSession() as http:
        for n in range(count):
            document = pizza | {"flow_id": f"pizza_{n}"}
            for method, url, body in (
                ("POST", f"{base}/v2/flows", document),
                ("POST", f"{base}/v2/flows/pizza_{n}/versions/{pizza['version']}/publish", None),
                (
                    "POST",
                    f"{base}/v2/conversations/flow-{n}/messages",
                    {"content": {"type": "text", "text": "hi"}, "hints": {"force_flow": f"pizza_{n}"}},
                ),
            ):
                async with http.request(method, url, json=body, headers=headers) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(f"{method} {url}: {response.status} {await response.text()}")


def _measure(client: LoadClient, store: str, few: int, many: int, flows: int) -> dict[str, int]:
    with served_engines(store) as served:
        pid, ports = served.pids[0], served.grpc_ports
        client.run(Job("grpc", ports, 16, 160))  # warm-up: distinct conversations, whole happy paths
        found = {"warm": rss_bytes(pid)}
        client.run(Job("grpc", ports, 16, few, conversations=few))
        found["few"] = rss_bytes(pid)
        client.run(Job("grpc", ports, 16, many - few, conversations=many - few))
        found["many"] = rss_bytes(pid)
        asyncio.run(_publish_flows(served.http_ports[0], flows))
        found["flows"] = rss_bytes(pid)
    return found


def run(quick: bool = False) -> Section:
    few, many, flows = (100, 300, 3) if quick else (1_000, 10_000, 100)
    stores = ("production",) if quick else ("embedded", "production")
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    per_conversation: dict[str, float] = {}
    with load_client() as client:
        for store in stores:
            found = _measure(client, store, few, many, flows)
            figures[store] = found
            per_conversation[store] = (found["many"] - found["few"]) / (many - few)
            per_flow = (found["flows"] - found["many"]) / flows
            rows += [
                [store, "served, warmed up", f"{found['warm'] / 2**20:.1f} MB", ""],
                [store, f"+ {few:,} idle conversations", f"{found['few'] / 2**20:.1f} MB", ""],
                [
                    store,
                    f"+ {many:,} idle conversations in all",
                    f"{found['many'] / 2**20:.1f} MB",
                    f"{per_conversation[store]:,.0f} B per conversation from {few:,} to {many:,}",
                ],
                [
                    store,
                    f"+ {flows} published flows (compiled)",
                    f"{found['flows'] / 2**20:.1f} MB",
                    f"{per_flow / 1024:,.0f} KB per flow",
                ],
            ]
    return Section(
        "Memory: RSS of a served engine with idle conversations and published flows",
        ["store", "after", "RSS", "growth"],
        rows,
        [
            Target(
                f"production: flat in idle conversations (≤ {FLAT_BYTES:,} B each, {few:,} to {many:,})",
                f"{per_conversation['production']:,.0f} B",
                per_conversation["production"] <= FLAT_BYTES,
            )
        ],
        notes=[
            "RSS: VmRSS of the serve process; idle conversations got one message each (left mid-run);"
            " flows are copies of the pizza flow under other ids, each published and run once.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

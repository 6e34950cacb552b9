"""``mcp-engine serve``: REST and gRPC over one engine, in one process, on one event loop.

One ``ExecutionService`` (one store, one compiled-flow cache, one timer loop) and one ``Limiter`` serve
both protocols, so ``MAX_PARALLEL_EXECUTIONS`` bounds the turns of the process, not of each adapter.
Shutdown (SIGTERM/SIGINT) is graceful and bounded: health turns NOT_SERVING, both servers stop accepting
and wait up to ``grace_s`` for the turns in flight, then timers, sinks and the store close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from mcp_engine.auth import Authenticator
from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError, FlowValidationError
from mcp_engine.flow.loader import flow_files, read_file
from mcp_engine.flow.problems import Problem
from mcp_engine.logs import access_middleware
from mcp_engine.metrics import Metrics
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from mcp_engine.runtime.services import EngineServices
from mcp_engine.runtime.timers import run_timers
from mcp_engine.security.metrics_access import metrics_routes
from mcp_engine.store.factory import describe_store, open_store

log = logging.getLogger("mcp_engine.serve")
GRACE_S = 10.0
AUTH_OFF_WARNING = (
    "!!! AUTH IS OFF (MCP_AUTH=off): every request names its own tenant and nothing is checked. "
    "Fine on your own machine; never expose this port. Set MCP_AUTH=on and MCP_ADMIN_KEY to require keys. !!!"
)


class EngineServer:
    """The engine, its REST site and its gRPC server; ``start`` then ``stop`` (once each)."""

    def __init__(
        self,
        settings: EngineSettings,
        host: str = "127.0.0.1",
        flows_dir: Path | None = None,
        default_flow: str | None = None,
        services: EngineServices | None = None,
        grace_s: float = GRACE_S,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.reuse_port = reuse_port  # ``serve --workers``: the worker processes share both ports
        self.host = host
        self.flows_dir = flows_dir
        self.default_flow = default_flow
        self.grace_s = grace_s
        self.metrics = Metrics(settings.service_name)
        self.engine = ExecutionService(
            open_store(settings), settings=settings, services=services, metrics=self.metrics
        )
        self.limiter = Limiter(settings.max_parallel_executions)
        self.http_port = 0
        self.grpc_port = 0
        self._runner: web.AppRunner | None = None
        self._grpc: Any = None
        self._stop_timers = asyncio.Event()
        self._timers: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from mcp_engine.api.grpc.server import create_server
        from mcp_engine.api.playground.routes import playground_routes
        from mcp_engine.api.rest.app import create_app

        engine, settings = self.engine, self.settings
        await engine.start()
        auth = Authenticator.from_settings(engine.store, settings)
        log.info("store: %s", describe_store(engine.store, settings))
        log.info("plugins: %s", plugin_summary(engine.registry.describe()))
        log.info("rules backend: %s", settings.rules_backend)
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])
        log.info("service: %s; %s", settings.service_name, feature_summary(settings))
        if auth.mode == "off":
            log.warning(AUTH_OFF_WARNING)
        log.info("metrics: /metrics is %s (MCP_METRICS)", settings.metrics_mode)
        if self.flows_dir is not None:
            await load_flows(engine, self.flows_dir, self.default_flow)
        extra_routes = metrics_routes(self.metrics.handle, settings)
        if settings.enable_visual_designer:
            extra_routes += playground_routes()
        app = create_app(engine, auth, self.limiter, extra_routes=extra_routes)
        app.middlewares.insert(0, access_middleware)  # outermost: it logs the status clients get
        self._runner = web.AppRunner(app, shutdown_timeout=self.grace_s, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, settings.http_port, reuse_port=self.reuse_port or None)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        self._grpc, self.grpc_port = await create_server(
            engine,
            auth,
            self.limiter,
            self.host,
            settings.grpc_port,
            metrics=self.metrics,
            access_log=True,
            reuse_port=self.reuse_port,
        )
        await self._grpc.start()
        engine.catalogue.book.own_ports.update((self.http_port, self.grpc_port))  # the URL policy's
        self._timers = asyncio.create_task(run_timers(engine, self._stop_timers), name="timers")
        if settings.enable_visual_designer:
            log.info("playground: http://%s:%d/playground", self.host, self.http_port)
        log.info(
            "serving REST on http://%s:%d and gRPC on %s:%d (at most %d turns in flight)",
            self.host,
            self.http_port,
            self.host,
            self.grpc_port,
            self.limiter.max_parallel,
        )

    async def stop(self) -> None:
        """Stop accepting, let the turns in flight finish (at most ``grace_s``), close everything."""
        from mcp_engine.api.grpc.server import set_not_serving

        log.info("stopping: finishing the turns in flight (at most %.0f s)", self.grace_s)
        if self._grpc is not None:
            await set_not_serving(self._grpc)
        await asyncio.gather(
            self._grpc.stop(self.grace_s) if self._grpc is not None else asyncio.sleep(0),
            self._runner.cleanup() if self._runner is not None else asyncio.sleep(0),
        )
        self._stop_timers.set()
        if self._timers is not None:
            await self._timers
        await self.engine.close()
        log.info("stopped")


def run(settings: EngineSettings, main: Coroutine[Any, Any, int]) -> int:
    """``main`` (``serve(...)``) on uvloop where it is installed (``MCP_EVENT_LOOP``, default uvloop):
    measured here, it takes a third off the CPU each Redis command costs the client and half off each
    PostgreSQL query's."""
    factory = None
    if settings.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows): the standard loop serves as well
            log.info("uvloop is not installed: serving on the asyncio event loop")
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def serve(
    settings: EngineSettings,
    host: str,
    flows_dir: Path | None,
    default_flow: str | None,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; the exit status. ``reuse_port`` and
    ``ready`` (called once both servers listen) are for ``serve --workers``."""
    server = EngineServer(settings, host, flows_dir, default_flow, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.stop()
        raise
    if ready is not None:
        ready()
    await stop.wait()
    await server.stop()
    return 0


async def load_flows(engine: ExecutionService, folder: Path, default_flow: str | None) -> list[str]:
    """Publish every flow document of ``folder`` (file-name order); a broken one is reported and skipped.

    Each tenant's default flow becomes ``default_flow`` (``MCP_DEFAULT_FLOW``) if the folder has it for
    that tenant; otherwise a default the tenant already has (an earlier start, ``PUT /v2/tenants``) is
    kept; otherwise the tenant's first flow here. Returns the published ``tenant/flow@version`` names.
    """
    published: list[str] = []
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for path in flow_files(folder):
        source, problem = read_file(path)
        if source is None:
            _skipped(path, [problem] if problem else [])
            continue
        try:
            stored = await engine.catalogue.publish_document(source.data, source=source)
        except FlowValidationError as exc:
            _skipped(path, exc.problems)
            continue
        except EngineError as exc:  # e.g. the stored version has other content (VersionExists)
            log.error("flow %s skipped: %s", path, exc.message)
            continue
        published.append(f"{stored.tenant_id}/{stored.flow_id}@{stored.version}")
        by_tenant[stored.tenant_id].append(stored.flow_id)
    for tenant_id, flow_ids in by_tenant.items():
        await _set_default(engine, tenant_id, flow_ids, default_flow)
    log.info("flows: %d published from %s: %s", len(published), folder, ", ".join(published) or "none")
    return published


def _skipped(path: Path, problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    log.error("flow %s skipped: %d error(s)", path, len(errors))
    for found in errors:
        log.error("  %s", found.render(str(path)))


async def _set_default(
    engine: ExecutionService, tenant_id: str, flow_ids: list[str], wanted: str | None
) -> None:
    tenant = await engine.store.get_tenant(tenant_id)
    if wanted is not None and wanted in flow_ids:
        choice = wanted
    elif tenant is not None and tenant.default_flow:
        log.info("tenant %s keeps its default flow %s", tenant_id, tenant.default_flow)
        return
    else:
        choice = flow_ids[0]
    await engine.catalogue.set_default_flow(tenant_id, choice)
    log.info("tenant %s: default flow %s", tenant_id, choice)


def feature_summary(settings: EngineSettings) -> str:
    """The feature switches as serve logs them at start: ``A/B testing on, flow versioning off, ...``."""
    switches = {
        "A/B testing": settings.enable_ab_testing,
        "flow versioning": settings.enable_flow_versioning,
        "visual designer": settings.enable_visual_designer,
    }
    return ", ".join(f"{name} {'on' if on else 'off'}" for name, on in switches.items())


def plugin_summary(rows: list[dict[str, str]]) -> str:
    """``N (kind: a, b; kind: c)`` from ``Registry.describe()``."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row["name"])
    kinds = "; ".join(f"{kind} {len(names)}: {', '.join(names)}" for kind, names in by_kind.items())
    return f"{len(rows)} ({kinds})"

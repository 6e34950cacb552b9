"""The gRPC adapter: ``mcp.v2.MCPEngine`` on grpc.aio, a thin layer over ``ExecutionService`` (SPEC §7).

Each RPC does the same four things and nothing else: find the tenant (``Authenticator.tenant`` with the
``authorization`` metadata and the request's ``tenant_id``), map the request (``convert``), call the
engine, map the reply. ``ProcessMessage`` also takes a ``Limiter`` slot, so load past
``MAX_PARALLEL_EXECUTIONS`` is refused at once (UNAVAILABLE + ``retry-after``) instead of queueing, and
hands the client's deadline to the engine, so a turn the client has given up on is abandoned unwritten.

Each call's access line (``mcp_engine.logs``) is written here too, where its status is known, when the
server is built with ``access_log``: a ``grpc.aio`` interceptor would cost the call two more coroutines.

Errors are rendered here and nowhere else: an ``EngineError`` becomes its status code with the stable
code in the trailing metadata ``error-code``; anything else is logged with its traceback and becomes
INTERNAL with a generic message, so no Python internals reach a client.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.api.grpc.convert import conversation, inbound, process_reply, state_reply
from mcp_engine.errors import EngineError, Overloaded
from mcp_engine.logs import log_request
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter, priority_of

if TYPE_CHECKING:
    from mcp_engine.metrics import Metrics

log = logging.getLogger(__name__)

SERVICE_NAME: str = mcp_pb2.DESCRIPTOR.services_by_name["MCPEngine"].full_name  # "mcp.v2.MCPEngine"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
Context = grpc.aio.ServicerContext[Any, Any]

# The health servicer of each server this module built, for ``set_not_serving``: ``grpc.aio.Server`` has
# no place for it, and ``create_server`` returns only the server and its port.
_HEALTH: weakref.WeakKeyDictionary[grpc.aio.Server, health.aio.HealthServicer] = weakref.WeakKeyDictionary()


class TenantResolver(Protocol):
    """What the servicer needs of ``mcp_engine.auth.Authenticator``."""

    async def tenant(self, authorization: str | None, claimed: str | None) -> str: ...


@dataclass
class _Call:
    """Per-RPC bookkeeping: whether the engine's ``process_message`` was entered, since it counts its own
    errors in the metrics and the adapter must count only those the engine never saw."""

    in_engine: bool = False
    state: str | None = None  # where the conversation ended up, for the access line


class MCPEngineServicer(mcp_pb2_grpc.MCPEngineServicer):
    def __init__(
        self,
        engine: ExecutionService,
        auth: TenantResolver,
        limiter: Limiter,
        metrics: Metrics | None = None,
        access_log: bool = False,
    ) -> None:
        self._engine = engine
        self._auth = auth
        self._limiter = limiter
        self._metrics = metrics
        self._access_log = access_log

    async def ProcessMessage(
        self, request: mcp_pb2.ProcessMessageRequest, context: Context
    ) -> mcp_pb2.ProcessMessageResponse:
        async with self._rpc(context, "ProcessMessage", request) as call:
            message, hints = inbound(request)
            tenant = await self._tenant(request.tenant_id, context)
            async with self._limiter.slot(priority_of(hints.priority)):
                remaining = context.time_remaining()
                deadline = None if remaining is None else time.monotonic() + remaining
                call.in_engine = True
                reply = await self._engine.process_message(
                    tenant, request.conversation_id, message, hints, deadline=deadline
                )
            call.state = reply["current_state"]
            return process_reply(reply)

    async def GetConversationState(
        self, request: mcp_pb2.GetStateRequest, context: Context
    ) -> mcp_pb2.GetStateResponse:
        async with self._rpc(context, "GetConversationState", request) as call:
            conversation_id = conversation(request)
            tenant = await self._tenant(request.tenant_id, context)
            state = state_reply(await self._engine.get_state(tenant, conversation_id))
            call.state = state.current_state
            return state

    async def ResetConversation(
        self, request: mcp_pb2.ResetRequest, context: Context
    ) -> mcp_pb2.ResetResponse:
        async with self._rpc(context, "ResetConversation", request):
            conversation_id = conversation(request)
            tenant = await self._tenant(request.tenant_id, context)
            return mcp_pb2.ResetResponse(reset=await self._engine.reset(tenant, conversation_id))

    async def _tenant(self, claimed: str, context: Context) -> str:
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        return await self._auth.tenant(
            authorization if isinstance(authorization, str) else None, claimed or None
        )

    @asynccontextmanager
    async def _rpc(self, context: Context, method: str, request: Any) -> AsyncIterator[_Call]:
        """Render whatever the RPC body raises as a gRPC status (the only place errors are formatted),
        and write the call's access line."""
        call, started, status = _Call(), time.perf_counter(), "OK"
        try:
            yield call
        except EngineError as exc:
            status = exc.grpc_status
            if self._metrics is not None and not call.in_engine:
                self._metrics.error("request", exc.code)
            trailers: list[tuple[str, str]] = [("error-code", exc.code)]
            if isinstance(exc, Overloaded):
                trailers.append(("retry-after", str(exc.retry_after_s)))
            await context.abort(grpc.StatusCode[exc.grpc_status], exc.message, tuple(trailers))
        except Exception:
            status = "INTERNAL"
            log.exception("gRPC call failed")
            if self._metrics is not None:
                self._metrics.error("request", "internal")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error", (("error-code", "internal"),))
        except BaseException:  # the client went away or its deadline passed: the call was cancelled
            status = "CANCELLED"
            raise
        finally:
            if self._access_log:
                elapsed_ms = (time.perf_counter() - started) * 1000
                tenant, conversation_id = request.tenant_id, request.conversation_id
                log_request("grpc", method, tenant, conversation_id, call.state, status, elapsed_ms)


async def create_server(
    engine: ExecutionService,
    auth: TenantResolver,
    limiter: Limiter,
    host: str = "127.0.0.1",
    port: int = 0,
    metrics: Metrics | None = None,
    access_log: bool = False,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, int]:
    """A server with ``mcp.v2.MCPEngine``, health checking (SERVING for "" and the service) and
    reflection, bound to ``host:port`` (0: any free port) but not started: the caller starts and stops
    it (``await server.start()``; ``await set_not_serving(server)`` then ``await server.stop(grace)``).
    Returns the server and the port it is bound to; a port in use raises RuntimeError.
    ``access_log``: an access line per ``mcp.v2.MCPEngine`` call (``serve``'s). ``reuse_port``: several
    processes share the port (``serve --workers``), the kernel spreading the connections over them.

    ``metrics`` should be the engine's own: the engine counts the errors of its turns, the adapter those
    it refuses before reaching the engine (auth, overload) and those of the state and reset calls."""
    # grpc's default (1) lets a second server bind a port in use and take half its traffic: only when asked
    options = [*SERVER_OPTIONS, ("grpc.so_reuseport", int(reuse_port))]
    server = grpc.aio.server(options=options)
    servicer = MCPEngineServicer(engine, auth, limiter, metrics, access_log)
    # protoc's grpc plugin writes no type hints (and the generated module is excluded from mypy).
    mcp_pb2_grpc.add_MCPEngineServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    _HEALTH[server] = health_servicer
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound


async def set_not_serving(server: grpc.aio.Server) -> None:
    """Report NOT_SERVING for every service (and ignore later changes), so load balancers and clients
    polling health move away before ``server.stop(grace)`` ends the calls in flight."""
    found = _HEALTH.get(server)
    if found is not None:
        await found.enter_graceful_shutdown()

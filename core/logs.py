"""Logging for ``mcp-engine serve``: one access line per request (written by the REST middleware here and
by the gRPC servicer), as text or JSON lines.

``MCP_LOG_FORMAT=json`` makes every record (access lines and the engine's own) one JSON object per line,
for log shippers; anything else gives plain text for a terminal. Access records carry their fields as
``extra`` attributes, so the JSON formatter emits them as keys and the text formatter as ``key=value``.
The formatter is 20 lines over orjson (already a dependency) rather than a logging library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

ACCESS = logging.getLogger("mcp_engine.access")
# What a REST handler learned that the access line wants: the tenant it resolved, the state a turn ended in.
REQUEST_TENANT = web.RequestKey("mcp_engine_tenant", str)
REQUEST_STATE = web.RequestKey("mcp_engine_state", str)
ACCESS_FIELDS = ("protocol", "method", "status", "tenant", "conversation", "state", "latency_ms")
# Attributes every LogRecord has; whatever else a record carries came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level [service] logger: message key=value ...`` (the ``extra`` fields appended)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        service = getattr(record, "service", None)
        if service is not None:
            line = line.replace(f" {record.name}: ", f" [{service}] {record.name}: ", 1)
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and k != "service")
        return f"{line} {extra}" if extra else line


class ServiceName(logging.Filter):
    """Stamps every record with the deployment's ``SERVICE_NAME`` (a ``service`` field in JSON lines)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def configure_logging(fmt: str | None, level: int = logging.INFO, service: str | None = None) -> None:
    """Send every ``mcp_engine`` record to stderr in ``fmt`` ("json" or text), each stamped with
    ``service`` (``SERVICE_NAME``) when given; replaces earlier handlers."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if (fmt or "").lower() == "json" else TextFormatter())
    if service is not None:
        handler.addFilter(ServiceName(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def log_request(
    protocol: str,
    method: str,
    tenant: str | None,
    conversation: str | None,
    state: str | None,
    status: str | int,
    latency_ms: float,
) -> None:
    """One access line: which protocol and method, for whom, where the conversation ended up, how it went."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    texts = (protocol, method, status, tenant or "", conversation or "", state or "")
    fields = (*(escaped(str(text)) for text in texts), round(latency_ms, 2))
    ACCESS.info("request", extra=dict(zip(ACCESS_FIELDS, fields, strict=True)))


def escaped(text: str) -> str:
    """``text`` with control characters (and backslashes) escaped, so a field read from a request (an id
    with CR/LF in it) cannot start a forged log line, in either format."""
    if text.isprintable() and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii")


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The REST access line; outermost, so it sees the status the error middleware chose."""
    started = time.perf_counter()
    status = 500  # what the client sees if the handler is cancelled or escapes every error handler
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        tenant = (
            request.get(REQUEST_TENANT)
            or request.headers.get("X-Tenant-ID")
            or request.query.get("tenant_id")
        )
        log_request(
            "rest",
            f"{request.method} {resource.canonical if resource is not None else request.path}",
            tenant,
            request.match_info.get("conversation_id"),
            request.get(REQUEST_STATE),
            status,
            (time.perf_counter() - started) * 1000,
        )

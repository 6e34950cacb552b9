"""Every failure leaves the REST API as ``{"error": {"code", "message", "details"}}`` (SPEC §7).

Engine errors carry their own code and status; aiohttp's HTTP errors (unknown route, wrong method,
oversize body) are rewritten into the same shape; the edge's model errors become 400 with each field's
location; anything unexpected is a 500 with a generic message, its traceback only in the log.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from mcp_engine.api.rest.edge import json_response
from mcp_engine.errors import EngineError, InvalidInput, Overloaded, Unauthenticated

log = logging.getLogger(__name__)

HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ResourceNotFound(EngineError):
    """A tenant or key the request names does not exist (flows and conversations have their own codes)."""

    code = "not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class Unavailable(EngineError):
    """A dependency is down: the store for readiness, Graphviz for SVG."""

    code = "unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"


def invalid(exc: ValidationError, where: str) -> InvalidInput:
    """A pydantic error as ``InvalidInput`` listing each problem with its location (``["body", ...]``).

    The offending input is left out: it may be large, or a secret the client sent by mistake.
    """
    errors = [
        {"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0]
    at = "".join(f".{part}" for part in first["loc"][1:])
    return InvalidInput(f"invalid request {where}{at}: {first['msg']}", {"errors": errors})


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    return json_response({"error": {"code": code, "message": message, "details": details or {}}}, status)


def _engine_error(exc: EngineError) -> web.Response:
    response = json_response(exc.to_dict(), exc.http_status)
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="mcp-engine"'
    if exc.http_status == 503:
        retry = exc.retry_after_s if isinstance(exc, Overloaded) else exc.details.get("retry_after_s", 1)
        response.headers["Retry-After"] = str(retry)
    return response


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    details: dict[str, Any] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed"] = sorted(exc.allowed_methods)
    phrase = http.HTTPStatus(exc.status).phrase
    code = HTTP_CODES.get(exc.status, phrase.lower().replace(" ", "_"))
    if exc.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:  # aiohttp's own text when it says more than "413: Request Entity Too Large"
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else phrase
    response = _error(exc.status, code, message, details)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except EngineError as exc:
        return _engine_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error(500, "internal", "internal server error; the engine log has the details")

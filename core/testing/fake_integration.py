"""A real aiohttp server on 127.0.0.1 standing in for the service an integration calls.

Routes are aiohttp handlers on aiohttp paths (``/accounts/{account}/balance``, so ``request.match_info``
works), and may be added or replaced while the server runs: a test adds the answers it needs after the
fixture started the server. Every request is recorded in ``received`` before its handler runs, body
included (so a handler sees ``request.body_exists``, not ``can_read_body``; ``await request.json()`` works).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        return orjson.loads(self.body) if self.body else None


class FakeIntegration:
    """``async with FakeIntegration() as fake``: a server whose ``url()`` a flow's ``base_url`` points at.

    ``route(method, path, handler)`` serves a handler, ``reply(method, path, body, status)`` a JSON answer;
    routing a method and path again replaces its handler. A request no route matches gets 404.
    """

    def __init__(self, routes: Iterable[web.RouteDef] = ()) -> None:
        self.received: list[Received] = []
        self._routes = _OpenRoutes()
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self._base = ""
        for route in routes:
            self.route(route.method, route.path, route.handler)

    def route(self, method: str, path: str, handler: Handler) -> None:
        key = (method.upper(), path)
        if key not in self._handlers:

            async def dispatch(request: web.Request) -> web.StreamResponse:
                return await self._handlers[key](request)

            self._routes.router.add_route(key[0], path, dispatch)
        self._handlers[key] = handler

    def reply(self, method: str, path: str, body: Any = None, status: int = 200) -> None:
        """Answer every ``method`` request to ``path`` with ``body`` as JSON and ``status``."""

        async def answer(request: web.Request) -> web.Response:
            return web.json_response(body, status=status)

        self.route(method, path, answer)

    def url(self, path: str = "") -> str:
        """The server's URL, with ``path`` appended (``fake.url("/api")`` for a ``base_url``)."""
        if not self._base:
            raise RuntimeError("the fake integration is not started (use it with `async with`)")
        return self._base + path

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.register_resource(self._routes)
        # handler_cancellation: a handler the engine stopped waiting for (a timeout) is cancelled, so
        # closing the server never waits for it
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner, self._base = None, ""

    async def __aenter__(self) -> FakeIntegration:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return await handler(request)


class _OpenRoutes(web.AbstractResource):
    """The application's one resource, resolving through a router of its own that is never frozen, so
    routes can be added while the server runs (aiohttp freezes an application's router at start)."""

    def __init__(self) -> None:
        super().__init__()
        self.router = web.UrlDispatcher()

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        return URL("/")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("a fake integration is not a sub-application")

    def get_info(self) -> Any:
        return {"routes": len(self)}

    def raw_match(self, path: str) -> bool:
        return False

    async def resolve(self, request: web.Request) -> tuple[Any, set[str]]:
        match = await self.router.resolve(request)
        error = match.http_exception
        if error is None:
            return match, {request.method}
        return None, set(getattr(error, "allowed_methods", ()))

    def __len__(self) -> int:
        return len(self.router.routes())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.router.routes())

"""``/playground`` and its assets: plain files shipped in the package (no build step), read once.

The page is public like any static file; everything it shows it fetches from ``/v2`` with the
credentials its user types in (a tenant key as ``Authorization: Bearer``, or with ``MCP_AUTH=off`` a
tenant id as ``X-Tenant-ID``), so it sees exactly what a REST client of that tenant sees. A strict
Content-Security-Policy keeps flow text from ever running as script.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
MEDIA = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PAGE = "index.html"


def playground_routes(static: Path = STATIC) -> list[web.RouteDef]:
    """``GET /playground`` (the page) and ``GET /playground/{asset}`` (its scripts and styles). Only the
    files present now are served, by name: nothing on disk beyond them is reachable."""
    assets = {
        path.name: (path.read_bytes(), MEDIA[path.suffix])
        for path in sorted(static.iterdir())
        if path.is_file() and path.suffix in MEDIA
    }

    def respond(name: str) -> web.Response:
        if name not in assets:
            raise web.HTTPNotFound()
        body, media = assets[name]
        return web.Response(body=body, content_type=media, charset="utf-8", headers=HEADERS)

    async def page(request: web.Request) -> web.Response:
        return respond(PAGE)

    async def asset(request: web.Request) -> web.Response:
        return respond(request.match_info["asset"])

    return [
        web.get("/playground", page),
        web.get("/playground/", page),
        web.get("/playground/{asset}", asset),
    ]

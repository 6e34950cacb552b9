"""REST v2 (aiohttp)."""

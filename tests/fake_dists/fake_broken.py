"""A plugin whose dependency is not installed: importing it raises, so the host must skip it."""

import mcp_engine_fake_missing_dependency  # noqa: F401

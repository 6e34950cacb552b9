"""``python -m mcp_engine``: the ``mcp-engine`` command, for an interpreter whose scripts are elsewhere."""

from mcp_engine.cli import main

main()

"""mcp_engine.plugins: the built-in plugins. They use only the public API of ``mcp_engine``."""

"""plugin_template/ is ``mcp_engine.plugin_template``: the copier template ``mcp-engine new-plugin`` renders.

It holds no code: ``copier.yml`` and ``project/`` ship as package data, so an installed engine can render
them (``mcp_engine.new_plugin``); README.md says how the template is kept working.
"""

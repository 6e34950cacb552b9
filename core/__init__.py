"""core/ is the import package ``mcp_engine`` (mapped by ``package_dir`` in setup.cfg).

The names below are the public API for plugin authors, and a plugin imports only from here: they are
exactly the plugin contract, ``mcp_engine.contract`` (its ``__all__``), where each is defined or chosen.
"""

from mcp_engine.contract import *  # noqa: F403  (the contract is the whole public API)
from mcp_engine.contract import __all__ as _contract

__version__ = "0.1.0"

__all__ = [*_contract, "__version__"]

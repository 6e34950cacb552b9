"""core/ is the import package ``mcp_engine`` (mapped by ``package_dir`` in setup.cfg).

The names below are the public API for plugin authors: a plugin imports only from here.
"""

from mcp_engine.errors import EngineError, FlowValidationError
from mcp_engine.flow.models import ERROR_KINDS, FLOW_ID_PATTERN, Integration, RetryPolicy
from mcp_engine.flow.problems import Problem, Severity
from mcp_engine.hookspecs import hookimpl
from mcp_engine.kinds import (
    Action,
    ConditionType,
    EventSink,
    IntegrationClient,
    IntentClassifier,
    Reference,
    RuleKind,
    StateType,
)
from mcp_engine.rulesets.context import RuleContext
from mcp_engine.runtime.services import Services
from mcp_engine.runtime.view import (
    ExtractContext,
    FlowAssets,
    Found,
    IntegrationRequest,
    IntegrationResult,
    IntentScore,
    OutboundMessage,
    Template,
    TurnView,
)

__version__ = "0.1.0"

__all__ = [
    "ERROR_KINDS",
    "FLOW_ID_PATTERN",
    "Action",
    "ConditionType",
    "EngineError",
    "EventSink",
    "ExtractContext",
    "FlowAssets",
    "FlowValidationError",
    "Found",
    "Integration",
    "IntegrationClient",
    "IntegrationRequest",
    "IntegrationResult",
    "IntentClassifier",
    "IntentScore",
    "OutboundMessage",
    "Problem",
    "Reference",
    "RetryPolicy",
    "RuleContext",
    "RuleKind",
    "Services",
    "Severity",
    "StateType",
    "Template",
    "TurnView",
    "__version__",
    "hookimpl",
]

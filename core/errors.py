"""One error hierarchy with stable codes; the API adapters map the codes to HTTP and gRPC statuses.

Nothing outside the adapters formats errors: they carry a code, a message and structured details.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mcp_engine.flow.problems import Problem


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(EngineError):
    code = "invalid_argument"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class FlowValidationError(InvalidInput):
    """A flow document has at least one error; ``problems`` lists every error and warning."""

    code = "flow_invalid"
    http_status = 422

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        errors = [p for p in problems if p.severity == "error"]
        where = f" in {source}" if source else ""
        super().__init__(
            f"{len(errors)} error(s){where}: " + "; ".join(p.short() for p in errors[:3]),
            {"problems": [p.to_dict() for p in problems]},
        )
        self.problems = problems


class UrlRefused(InvalidInput):
    """A URL the tenant's URL policy refuses (``mcp_engine.security.urls``), named with where it is."""

    code = "url_refused"
    http_status = 422


class PayloadTooLarge(InvalidInput):
    """A request or message over the tenant's size limit (``MCP_MAX_BODY_BYTES``, a tenant's override)."""

    code = "payload_too_large"
    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"


class ExperimentValidationError(InvalidInput):
    """An experiment document, or an experiment about to start, has at least one error; ``problems``
    lists every error and warning, each with its JSON pointer into the experiment document."""

    code = "experiment_invalid"
    http_status = 422

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(
            f"{len(errors)} error(s) in the experiment: " + "; ".join(p.short() for p in errors[:3]),
            {"problems": [p.to_dict() for p in problems]},
        )
        self.problems = problems


class FlowNotFound(EngineError):
    code = "flow_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class Unauthenticated(EngineError):
    """No key, an unknown key or a revoked key."""

    code = "unauthenticated"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"


class Overloaded(EngineError):
    """More turns in flight than ``MAX_PARALLEL_EXECUTIONS``: refused at once, safe to retry."""

    code = "overloaded"
    http_status = 503
    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, {"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class PermissionDenied(EngineError):
    code = "permission_denied"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class ConversationBusy(EngineError):
    code = "conversation_busy"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class ConversationNotFound(EngineError):
    code = "conversation_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class DeadlineExceeded(EngineError):
    """A turn ran past ``STATE_EXECUTION_TIMEOUT_MS`` and was abandoned: nothing of it was written."""

    code = "deadline_exceeded"
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"


class ContextTooLarge(EngineError):
    """A turn would leave the conversation's context over ``MCP_MAX_CONTEXT_BYTES``; it was not saved."""

    code = "context_too_large"
    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"


class ConcurrentUpdate(EngineError):
    """A compare-and-set failed: the conversation changed since it was loaded."""

    code = "concurrent_update"
    http_status = 409
    grpc_status = "ABORTED"


class ExperimentNotFound(EngineError):
    code = "experiment_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class ExperimentConflict(EngineError):
    """The experiment cannot do that in its state (a stopped one does not start again), or its id is
    stored with another document (experiments are immutable, like flow versions)."""

    code = "experiment_conflict"
    http_status = 409
    grpc_status = "FAILED_PRECONDITION"


class ExperimentOverlap(ExperimentConflict):
    """Another experiment is already running on the flow: a flow's new runs are split by one at a time."""

    code = "experiment_overlap"

    def __init__(self, flow_id: str, running: str) -> None:
        super().__init__(
            f"experiment '{running}' is already running on flow '{flow_id}': stop it first",
            {"flow_id": flow_id, "running": running},
        )
        self.flow_id, self.running = flow_id, running


class VersionExists(EngineError):
    """A flow version is immutable once stored with other content."""

    code = "version_exists"
    http_status = 409
    grpc_status = "ALREADY_EXISTS"


class UnstorableData(EngineError):
    """A value handed to the store is not JSON (a set, an object, a non-string key): nothing is written."""

    code = "unstorable_data"


class StoreUnavailable(EngineError):
    """PostgreSQL or Redis cannot be reached right now: nothing of the request was written (a turn's writes
    are one transaction), so the client retries it, with the same ``message_id``, later or elsewhere."""

    code = "store_unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class PluginNotEnabled(EngineError):
    """A flow uses a plugin its tenant has not enabled (disabled after the flow was published): the turn
    is refused and nothing of it is written; enabling the plugin, or publishing a version without it,
    lets the conversation go on."""

    code = "plugin_not_enabled"
    http_status = 409
    grpc_status = "FAILED_PRECONDITION"


class PluginClash(EngineError):
    """Two providers registered the same name for one plugin kind."""

    code = "plugin_clash"


def _table(cls: type[EngineError]) -> dict[str, tuple[int, str]]:
    table = {cls.code: (cls.http_status, cls.grpc_status)}
    for sub in cls.__subclasses__():
        table.update(_table(sub))
    return table


def error_table() -> dict[str, tuple[int, str]]:
    """Every error code -> (HTTP status, gRPC status), from the hierarchy itself (so it cannot drift)."""
    return _table(EngineError)

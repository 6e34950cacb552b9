"""One error hierarchy with stable codes; the table of statuses is derived from it."""

from mcp_engine import errors


def test_every_error_has_a_unique_code_and_statuses() -> None:
    table = errors.error_table()
    expected = {
        "invalid_argument": (400, "INVALID_ARGUMENT"),
        "flow_invalid": (422, "INVALID_ARGUMENT"),
        "flow_not_found": (404, "NOT_FOUND"),
        "permission_denied": (403, "PERMISSION_DENIED"),
        "conversation_busy": (503, "UNAVAILABLE"),
        "conversation_not_found": (404, "NOT_FOUND"),
        "deadline_exceeded": (504, "DEADLINE_EXCEEDED"),
        "concurrent_update": (409, "ABORTED"),
        "version_exists": (409, "ALREADY_EXISTS"),
    }
    assert expected.items() <= table.items()
    codes = [cls.code for cls in _all(errors.EngineError)]
    assert len(codes) == len(set(codes)), "two error classes share a code"


def test_errors_render_as_the_api_shape() -> None:
    error = errors.FlowNotFound("flow 'x' not found", {"flow_id": "x"})
    assert error.to_dict() == {
        "error": {"code": "flow_not_found", "message": "flow 'x' not found", "details": {"flow_id": "x"}}
    }


def _all(cls: type[errors.EngineError]) -> list[type[errors.EngineError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _all(child))]

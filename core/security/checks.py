"""A flow's grant checks, added to its validation: the secrets it references and the URLs it calls.

Run by the catalogue in the tenant's view, on every upload, validation and publish, and when a stored
version is compiled (a version stored before a grant was revoked fails to compile, saying why).
Linear in the document's size; the result is the compiled flow's, so no turn repeats it.
"""

from __future__ import annotations

from mcp_engine.flow.loader import Source
from mcp_engine.flow.validate import ValidationResult
from mcp_engine.security.scope import TenantServices
from mcp_engine.security.secrets import secret_problems
from mcp_engine.security.urls import url_problems


def grant_problems(
    result: ValidationResult, document: object, scope: TenantServices, source: Source | None = None
) -> ValidationResult:
    """``result`` with the grant problems of ``document`` for ``scope``'s tenant (with their lines)."""
    tenant_id = scope.tenant_id
    found = [
        *secret_problems(document, frozenset(scope.grants.secrets), tenant_id),
        *url_problems(document, scope.policy, tenant_id),
    ]
    if not found:
        return result
    if source is not None:
        found = [p.with_line(source.line_of(p.pointer)) for p in found]
    result.problems = sorted(
        [*result.problems, *found], key=lambda p: (p.severity != "error", p.line or 0, p.pointer)
    )
    return result

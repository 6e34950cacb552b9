"""A problem found in a flow document: severity, where (JSON pointer and line) and why."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["error", "warning"]


def pointer(*parts: str | int) -> str:
    """Build an RFC 6901 JSON pointer from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Problem:
    severity: Severity
    pointer: str
    message: str
    code: str
    line: int | None = None
    column: int | None = None
    hints: tuple[str, ...] = field(default=())

    def short(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"

    def with_line(self, line: int | None) -> Problem:
        return replace(self, line=line)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "pointer": self.pointer,
            "code": self.code,
            "message": self.message,
        }
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        return out

    def render(self, source: str | None = None) -> str:
        where = source or ""
        if self.line is not None:
            where += f":{self.line}"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.severity}: {self.pointer or '/'}: {self.message} [{self.code}]"

"""RFC 7386 JSON merge patch, as the RFC's own ten-line algorithm (section 2).

Written here rather than taken from ``json-merge-patch``, the one package for it: that one changes its
target in place and ships no type hints, and a variant's patch must never touch the stored flow version
it is applied to.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied; neither is changed. An object patch merges key by key (``null``
    removes a key); anything else replaces the target whole."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result

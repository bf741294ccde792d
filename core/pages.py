"""Page contexts: each page's context is a typed dataclass, handed to its template as variables."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def as_context(page: DataclassInstance) -> dict[str, Any]:
    """The page's fields as template variables (shallow: each value keeps its type)."""
    return {field.name: getattr(page, field.name) for field in fields(page)}

"""The base of the admin pages of tenant data: lists, search and detail pages, never a change.

Tenant data changes through imports and services only (their checks, locks and recomputes);
in the admin it is read-only for everyone, superusers included. Deleting a partner's data is the
`offboard_partner` command's job.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

M = TypeVar("M", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[M]):
    """No add, change or delete (nor the delete action); every field shown read-only."""

    show_full_result_count = False  # no second COUNT(*) over a large table on each search

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False

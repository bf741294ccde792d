"""Offboarding: deleting a partner and everything of it, set-based (the `offboard_partner` command).

The tables come from the model registry, so a table added by any app is included without
naming it here: every model with a `partner` foreign key (rows `WHERE partner_id = …`), every
model reaching those through its foreign keys (join tables, API tokens, a product's workloads:
`WHERE fk IN (SELECT id FROM parent WHERE …)`), and django-axes' records of the partner's staff
sign-ins (by username). One DELETE per table, children before parents, in one transaction under
the partner's import and metrics locks: a constant number of statements whatever the data size,
and no row of another partner (their rows have another partner_id; the shared catalog has none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import connection, models, transaction

from accounts.models import Partner, StaffUser
from core.db import partner_lock


@dataclasses.dataclass(frozen=True)
class Target:
    """One table to empty of the partner's rows: `condition` selects them (named parameter
    `partner_id`) and reads the tables of `reads`, which must therefore be deleted after it."""

    model: type[models.Model]
    condition: str
    reads: frozenset[type[models.Model]]

    @property
    def table(self) -> str:
        return self.model._meta.db_table


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def targets() -> list[Target]:
    """Every table holding rows of a partner, in deletion order (children first), Partner last."""
    found: dict[type[models.Model], Target] = {Partner: Target(Partner, f"{_q('id')} = %(partner_id)s", frozenset())}
    staff = f"SELECT LOWER({_q('email')}) FROM {_q(StaffUser._meta.db_table)} WHERE {_q('partner_id')} = %(partner_id)s"
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label == "axes" and any(f.name == "username" for f in model._meta.concrete_fields):
            found[model] = Target(model, f"LOWER({_q('username')}) IN ({staff})", frozenset({StaffUser}))
    grown = True
    while grown:  # follow foreign keys until no new table is reached
        grown = False
        for model in apps.get_models(include_auto_created=True):
            keys = [(key, parent) for key, parent in _foreign_keys(model) if parent in found]
            if model in found or not keys:
                continue
            # A partner_id column is enough (rows of one partner hang together); else any owned parent.
            chosen = [(key, parent) for key, parent in keys if parent is Partner] or keys
            conditions = [_owned_by(key, found[parent]) for key, parent in chosen]
            reads = frozenset(parent for _, parent in chosen if parent is not Partner)
            found[model] = Target(model, f"({' OR '.join(conditions)})", reads)
            grown = True
    return _children_first(list(found.values()))


def _foreign_keys(model: type[models.Model]) -> list[tuple[models.ForeignKey[Any, Any], type[models.Model]]]:
    """The foreign keys of `model` with the model each points to."""
    return [
        (field, field.related_model)
        for field in model._meta.concrete_fields
        if isinstance(field, models.ForeignKey) and not isinstance(field.related_model, str)
    ]


def _owned_by(key: models.ForeignKey[Any, Any], parent: Target) -> str:
    """The condition on `key` selecting rows whose parent (`parent`) is of the partner."""
    if parent.model is Partner:
        return f"{_q(key.column)} = %(partner_id)s"
    related = key.target_field.column
    return f"{_q(key.column)} IN (SELECT {_q(related)} FROM {_q(parent.table)} WHERE {parent.condition})"


def _children_first(remaining: list[Target]) -> list[Target]:
    """Orders targets so that no table is emptied while another target still reads or references it."""
    ordered: list[Target] = []
    while remaining:
        needed = {
            parent
            for target in remaining
            for parent in target.reads | {model for _, model in _foreign_keys(target.model)}
            if parent is not target.model
        }
        free = [target for target in remaining if target.model not in needed] or remaining[:1]
        ordered += free
        remaining = [target for target in remaining if target not in free]
    return ordered


def partner_data_counts(*, partner: Partner) -> dict[str, int]:
    """How many rows of `partner` each table holds (one COUNT per table), in deletion order."""
    counts = {}
    with connection.cursor() as cursor:
        for target in targets():
            sql = f"SELECT COUNT(*) FROM {_q(target.table)} WHERE {target.condition}"
            cursor.execute(sql, {"partner_id": partner.pk})
            counts[target.table] = cursor.fetchone()[0]
    return counts


def partner_offboard(*, partner: Partner, on_table: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Deletes `partner` and all its rows: one DELETE per table, children first, in one
    transaction under its import and metrics locks (a running import or recompute finishes
    first). Files its rows named are removed once the transaction commits. Returns the rows
    deleted per table."""
    deleted: dict[str, int] = {}
    params = {"partner_id": partner.pk}
    with transaction.atomic():
        partner_lock("import", partner.pk)
        partner_lock("metrics", partner.pk)
        files = _stored_files(params)
        with connection.cursor() as cursor:
            for target in targets():
                cursor.execute(f"DELETE FROM {_q(target.table)} WHERE {target.condition}", params)
                deleted[target.table] = cursor.rowcount
                if on_table:
                    on_table(target.table, cursor.rowcount)
        transaction.on_commit(lambda: _remove(files))
    return deleted


def _stored_files(params: dict[str, int]) -> list[tuple[models.FileField, str]]:
    """The stored files the partner's rows name (uploads), one SELECT per table that has files."""
    files = []
    with connection.cursor() as cursor:
        for target in targets():
            for field in target.model._meta.concrete_fields:
                if isinstance(field, models.FileField):
                    column = _q(field.column)
                    cursor.execute(f"SELECT {column} FROM {_q(target.table)} WHERE {target.condition}", params)
                    files += [(field, name) for (name,) in cursor.fetchall() if name]
    return files


def _remove(files: list[tuple[models.FileField, str]]) -> None:
    for field, name in files:
        field.storage.delete(name)

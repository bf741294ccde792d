"""The floor plan holds: reads of tenant data go through selectors, writes through services."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "accounts", "customers", "metrics", "imports", "exports", "dashboard")
# Modules allowed to use a tenant model's manager directly: the one read path (selectors), the
# one write path (services), and the models themselves (their managers and querysets).
ALLOWED = ("selectors", "services", "models")


def tenant_models() -> set[str]:
    """Names of the models that hold a partner's rows (a `partner` field)."""
    return {
        model.__name__
        for model in apps.get_models()
        if model._meta.app_label in APPS and any(f.name == "partner" for f in model._meta.get_fields())
    }


def allowed(path: Path) -> bool:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return any(part in ALLOWED for part in parts) or "migrations" in parts


def direct_reads(path: Path, models: set[str]) -> list[str]:
    """`Model.objects` / `Model._default_manager` uses in `path`, as `file:line Model`."""
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr in {"objects", "_default_manager", "_base_manager"}
        and isinstance(node.value, ast.Name)
        and node.value.id in models
    ]


def test_tenant_models_are_read_only_through_selectors_and_services():
    models = tenant_models()
    assert {"Customer", "Subscription", "SkuSnapshot", "ImportRun", "StaffUser"} <= models
    offenders = [
        line
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if not allowed(path)
        for line in direct_reads(path, models)
    ]
    assert offenders == []


def test_each_engine_step_declares_exactly_the_tables_it_reads():

    from metrics import engine

    for step in engine.STEPS:
        statements = [step.select] if isinstance(step.select, str) else list(step.select.values())
        named = {table for sql in statements for table in re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", sql)}
        assert named - {"step"} == set(step.reads), step.name


def test_each_engine_step_writes_every_column_of_its_target():
    from metrics import engine

    for step in engine.STEPS:
        statements = [step.select] if isinstance(step.select, str) else list(step.select.values())
        for sql in statements:
            first_select = sql.split("FROM", 1)[0]
            for column in step.columns:
                assert re.search(rf"\b{column}\b", first_select), (step.name, column)

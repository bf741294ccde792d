"""The upgrade from the layout before the apps were layered to today's, on a database with data.

    DEBUG=true python -m tests.upgrade DATABASE_URL

The database must be empty. It is migrated to the last migrations the code before the layering
had (OLD_LEAVES), filled through the historical models of that state — today's classes would
neither find `customers.ImportRun` nor match the old tables — and dumped; then `migrate` runs
as a deployment does, and everything is dumped again. Every table of the project's apps, the
content types and the permissions must come out row for row as they went in, save the one
expected change: the content type of ImportRun now says `imports`. Prints a JSON report on
stdout; exits 1 on any difference (tests/test_upgrade.py runs it on SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import django

# The last migration of each app of ours before the layering (the code deployed until then).
OLD_LEAVES = {
    "accounts": "0002_api_tokens",
    "customers": "0004_subscription_auto_renew_billing_cycle",
    "metrics": "0004_inactive_snapshot",
    "exports": "0001_report_schedule",
}
DJANGO_APPS = ("contenttypes", "auth", "sessions", "admin", "axes")  # migrated to their leaves
# The tables compared: the project's apps (ImportRun's table kept its `customers_` name), the
# content types (whose importrun row moves) and the permissions that point at them.
TABLE_PREFIXES = ("accounts_", "customers_", "metrics_", "exports_", "imports_")
TABLES = ("django_content_type", "auth_permission")
# Every value the old code wrote into recompute_run.trigger (now a CHECK-ed closed set).
OLD_TRIGGERS = ("nightly", "import", "command", "manual", "settings", "demo", "bench")
# The new layout's CHECK constraints, which the upgrade must have added: table -> names.
NEW_CHECKS = {
    "customers_importrun": {"import_run_status_valid", "import_run_origin_valid", "import_run_phase_valid"},
    "metrics_recomputerun": {"recompute_run_status_valid", "recompute_run_trigger_valid"},
    "metrics_insightsettings": {"insight_settings_days_valid"},
    "exports_reportschedule": {"report_schedule_cadence_valid", "report_schedule_grain_valid"},
}

# Models added since, whose content type and permissions post_migrate adds: (app label, model).
NEW_MODELS = {
    ("accounts", "invitation"),
    ("collection", "vendorconnection"),
    ("collection", "pullrun"),
    ("collection", "customersync"),
}
# Columns added since, with the value every old row must get: table -> column -> value.
ADDED_COLUMNS: dict[str, dict[str, Any]] = {
    "customers_importrun": {
        "phase": "done",  # old runs have ended (a "running" one is swept as stopped)
        "rows_read": 0,
        "files_done": 0,
        "files_total": 0,
        "heartbeat_at": None,
        "attempts": 0,
        "failure_reason": "",
        "upload_files": [],
        "upload_removed_at": None,
    },
}

DAY = dt.date(2026, 11, 30)  # the data's "yesterday": fixed, so every run fills the same rows
NOW = dt.datetime(2026, 12, 1, 6, 30, tzinfo=dt.UTC)

Row = dict[str, Any]


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ["DATABASE_URL"] = argv[0]
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnerinsights.settings")
    django.setup()
    from django.db import connection

    with connection.cursor() as cursor:
        existing = connection.introspection.table_names(cursor)
    if existing:
        print(f"refusing: the database is not empty ({len(existing)} tables)", file=sys.stderr)
        return 2
    old_state = migrate_to_old_leaves()
    fill(old_state)
    before = dump()
    upgrade()
    after = dump()
    report = compare(before, after)
    report["today_models"] = check_today_models(before)
    report["new_checks"] = check_new_constraints()
    report["ok"] = (
        all(table["equal"] for table in report["tables"].values())
        and report["content_type_importrun"]["moved"]
        and report["today_models"]["ok"]
        and report["new_checks"]["ok"]
    )
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if report["ok"] else 1


def migrate_to_old_leaves() -> Any:
    """Migrates app by app to the old leaves, as the old code's `migrate` left a database (its
    post_migrate created the content types and permissions); returns the historical apps."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    loader = MigrationLoader(connection)
    targets = list(OLD_LEAVES.items())
    targets += [node for app in DJANGO_APPS for node in loader.graph.leaf_nodes(app)]
    for app, name in targets:
        call_command("migrate", app, name, verbosity=0, interactive=False)
    expected = {node for target in targets for node in loader.graph.forwards_plan(target)}
    applied = set(MigrationRecorder(connection).applied_migrations())
    if applied != expected:
        raise SystemExit(f"old state wrong: extra {sorted(applied - expected)}, missing {sorted(expected - applied)}")
    if any(app == "imports" or name.endswith("closed_sets_enforced") for app, name in applied):
        raise SystemExit("a migration of the new layout was applied before the upgrade")
    return MigrationLoader(connection).project_state(targets).apps


def fill(apps: Any) -> None:
    """A few hundred rows of two partners in every table of the old layout, written through the
    historical models (the old state's `customers.ImportRun` among them)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    def model(label: str) -> Any:
        return apps.get_model(label)

    with transaction.atomic():
        password = make_password("correct-horse-battery-staple", salt="upgradesalt")
        operator = model("accounts.StaffUser").objects.create(
            email="operator@example.com", password=password, is_superuser=True, is_staff=True, role="", date_joined=NOW
        )
        catalog = {p.sku: p for p in model("customers.Product").objects.filter(partner=None)}
        for number, slug in enumerate(("alpha", "bravo")):
            fill_partner(model, number, slug, password, catalog, operator)
        # auto_now fields: fixed afterwards (update() leaves auto_now alone), for a deterministic dump
        model("metrics.InsightSettings").objects.update(updated_at=NOW)
        model("exports.ReportSchedule").objects.update(updated_at=NOW)


def fill_partner(model: Any, number: int, slug: str, password: str, catalog: dict[str, Any], operator: Any) -> None:
    """One partner's staff, products, customers and everything that hangs off them."""
    partner = model("accounts.Partner").objects.create(slug=slug, name=f"{slug.title()} Partners", created_at=NOW)
    roles = ("global_admin", "user_admin", "admin_agent", "sales_agent")
    staff = [
        model("accounts.StaffUser").objects.create(
            email=f"{role}@{slug}.example",
            full_name=f"{role.replace('_', ' ').title()} of {slug}",
            password=password,
            partner=partner,
            role=role,
            is_active=role != "user_admin" or number == 0,
            last_login=NOW - dt.timedelta(hours=len(role)) if role != "sales_agent" else None,
            date_joined=NOW - dt.timedelta(days=30),
        )
        for role in roles
    ]
    for index, user in enumerate(staff[:2]):
        model("accounts.ApiToken").objects.create(
            user=user,
            name=f"token {index}",
            prefix=f"pi_{slug}{index}",
            key_hash=hashlib.sha256(f"{slug}-{index}".encode()).hexdigest(),
            created_at=NOW - dt.timedelta(days=3),
            last_used_at=NOW - dt.timedelta(hours=1) if index == 0 else None,
            revoked_at=NOW if index == 1 else None,
        )

    # An own product with workloads; bravo's own ENTERPRISEPACK replaces the catalog's for bravo.
    own_sku = "ALPHA_SECURE" if number == 0 else "ENTERPRISEPACK"
    own = model("customers.Product").objects.create(
        partner=partner, sku=own_sku, name=f"{slug} suite", family="office365"
    )
    for workload in ("exchange", "teams", "office_apps"):
        model("customers.ProductWorkload").objects.create(product=own, workload=workload)
    products = [own, catalog["STANDARDPACK"], catalog["DYN365_ENTERPRISE_SALES"], catalog["POWER_BI_PRO"]]

    statuses = ("active", "grace", "disabled", "preprovisioned", "suspended", "cancelled", "expired")
    sources = ("own", "other_partner", "direct")
    cycles = ("monthly", "annual", "triennial", "none", "onetime", "")
    states = ("active", "suspended", "upgraded", "cancelled")
    workloads = ("exchange", "sharepoint", "onedrive", "teams", "yammer", "office_apps", "dynamics365")
    categories = ("howto", "incident", "billing", "other")
    activities: list[Any] = []
    for c in range(3):
        # The same directory tenant id under both partners: two unrelated customers.
        customer = model("customers.Customer").objects.create(
            partner=partner, external_id=f"tenant-{c}", name=f"{slug} customer {c}", domain=f"c{c}.{slug}.example"
        )
        subscriptions = []
        for s, product in enumerate(products):
            k = c * len(products) + s
            subscriptions.append(
                model("customers.Subscription").objects.create(
                    partner=partner,
                    customer=customer,
                    product=product,
                    external_id=f"{slug}-sub-{c}-{s}",
                    quantity=5 + k,
                    status=statuses[k % len(statuses)] if s else "active",
                    is_trial=k % 5 == 4,
                    source=sources[k % len(sources)],
                    start_date=None if k % 4 == 0 else DAY - dt.timedelta(days=100 + k),
                    end_date=DAY + dt.timedelta(days=265) if k % 3 else None,
                    auto_renew=(True, False, None)[k % 3],
                    billing_cycle=cycles[k % len(cycles)],
                )
            )
        for u in range(5):
            user = model("customers.EndUser").objects.create(
                partner=partner,
                customer=customer,
                external_id=f"{slug}-user-{c}-{u}",
                upn=f"user{u}@c{c}.{slug}.example",
                display_name=f"User {u}" if u % 4 else "",
            )
            for s, subscription in enumerate(subscriptions[: 1 + u % 2]):
                model("customers.LicenseAssignment").objects.create(
                    partner=partner,
                    customer=customer,
                    user=user,
                    subscription=subscription,
                    assigned_on=DAY - dt.timedelta(days=60 + u),
                    removed_on=DAY - dt.timedelta(days=5) if (u + s) % 3 == 2 else None,
                    state=states[(u + s) % len(states)],
                )
            activities += [
                model("customers.Activity")(
                    partner=partner, user=user, activity_date=DAY - dt.timedelta(days=d), workload=workload
                )
                for d in range(0, 10, 2)
                for workload in workloads[u % 3 : u % 3 + 2]
            ]
        for r in range(2 + c):
            model("customers.SupportRequest").objects.create(
                partner=partner,
                customer=customer,
                external_id=f"{slug}-case-{c}-{r}",
                opened_on=DAY - dt.timedelta(days=3 * r),
                category=categories[(c + r) % len(categories)],
            )
        fill_snapshots(model, partner, customer, products, workloads)
    model("customers.Activity").objects.bulk_create(activities)

    fill_runs(model, number, partner, staff, operator)
    fill_settings(model, number, partner, staff, products)


def fill_snapshots(model: Any, partner: Any, customer: Any, products: list[Any], workloads: Sequence[str]) -> None:
    """Two dates of snapshots of one customer at every grain (portfolio rows once per partner)."""
    for back in (0, 1):
        as_of = DAY - dt.timedelta(days=back)
        numbers = {
            "entitled_users": 5 - back,
            "active_users": 3,
            "sold_licenses": 12 + customer.pk,
            "own_sold_licenses": 7,
            "assigned_licenses": 9,
        }
        for product in products:
            model("metrics.SkuSnapshot").objects.create(
                partner=partner, customer=customer, product=product, as_of=as_of, **numbers
            )
        for workload in workloads:
            model("metrics.WorkloadSnapshot").objects.create(
                partner=partner, customer=customer, workload=workload, as_of=as_of, entitled_users=4, active_users=2
            )
        for family in ("office365", "dynamics365"):
            model("metrics.FamilySnapshot").objects.create(
                partner=partner,
                customer=customer,
                family=family,
                as_of=as_of,
                rec_sold_licenses=10,
                rec_assigned_licenses=8,
                rec_entitled_users=4,
                rec_active_users=2,
                **numbers,
            )
            model("metrics.PortfolioSnapshot").objects.get_or_create(
                partner=partner, family=family, as_of=as_of, defaults={"customers": 3, **numbers}
            )
        for product in (None, products[0]):
            model("metrics.InactiveSnapshot").objects.create(
                partner=partner, customer=customer, product=product, as_of=as_of, users_30=4, users_60=3, users_90=2
            )


def fill_runs(model: Any, number: int, partner: Any, staff: list[Any], operator: Any) -> None:
    """Import runs of every status and origin; recompute runs with every trigger the old code wrote."""
    outcomes = (("succeeded", "command"), ("failed", "upload"), ("running", "api"), ("succeeded", "upload"))
    for index, (status, origin) in enumerate(outcomes):
        model("customers.ImportRun").objects.create(
            partner=partner,
            started_by=(staff[0], None, operator, staff[3])[index],
            origin=origin,
            source_name=f"{partner.slug}-export-{index}.zip",
            sha256=hashlib.sha256(f"{partner.slug}{index}".encode()).hexdigest() if status != "running" else "",
            status=status,
            started_at=NOW - dt.timedelta(days=index, minutes=5),
            finished_at=None if status == "running" else NOW - dt.timedelta(days=index),
            counts={"customers.csv": {"rows": 3, "created": 1 + index, "updated": 1, "unchanged": 1}},
            errors=[{"file": "users.csv", "line": 7, "message": "unknown customer"}] if status == "failed" else [],
            error_count=1 if status == "failed" else 0,
            warnings=["activity.csv: 2 rows before the window"] if index % 2 else [],
            affected_from=DAY - dt.timedelta(days=27) if status == "succeeded" else None,
            affected_to=DAY if status == "succeeded" else None,
        )
    statuses = ("succeeded", "failed", "running")
    triggers = OLD_TRIGGERS if number == 0 else OLD_TRIGGERS[:3]
    for index, trigger in enumerate(triggers):
        status = statuses[index % len(statuses)]
        model("metrics.RecomputeRun").objects.create(
            partner=partner,
            as_of=DAY - dt.timedelta(days=index),
            status=status,
            trigger=trigger,
            attempts=1 + index % 2,
            started_at=NOW - dt.timedelta(days=index, minutes=2),
            finished_at=None if status == "running" else NOW - dt.timedelta(days=index),
            published_at=NOW - dt.timedelta(days=index) if status == "succeeded" else None,
            duration_ms=None if status == "running" else 1200 + index,
            error="OperationalError: connection lost" if status == "failed" else "",
        )


def fill_settings(model: Any, number: int, partner: Any, staff: list[Any], products: list[Any]) -> None:
    """Insight and SKU settings, the report schedule with its recipients, past deliveries."""
    model("metrics.InsightSettings").objects.create(
        partner=partner,
        low_usage_pct=Decimal("55.5") if number else Decimal(60),
        unused_licenses_min=5 + number,
        howto_per_100_users=Decimal("7.5"),
        inactivity_days=(30, 90)[number],
        currency=("EUR", "USD")[number],
    )
    for index, product in enumerate(products):
        model("metrics.SkuSetting").objects.create(
            partner=partner,
            sku=product.sku,
            monthly_price=None if index == 3 else Decimal("12.30") * (index + 1),
            excluded=index == 2,
        )
    schedule = model("exports.ReportSchedule").objects.create(
        partner=partner, cadence=("weekly", "monthly")[number], grain=("sku", "family")[number]
    )
    schedule.recipients.set(staff[: 2 + number])
    for index, period in enumerate(("2026-W47", "2026-W48") if number == 0 else ("2026-10", "2026-11")):
        model("exports.ReportDelivery").objects.create(
            partner=partner,
            period=period,
            as_of=DAY - dt.timedelta(days=7 * (1 - index)),
            sent_at=NOW - dt.timedelta(days=7 * (1 - index)),
            recipients=2 + number,
        )


def upgrade() -> None:
    """What a deployment of the new code runs: `migrate`, no target."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def dump() -> dict[str, dict[str, Any]]:
    """Every compared table: its columns and its rows (as JSON text, sorted), count and sha256."""
    from django.db import connection

    with connection.cursor() as cursor:
        names = [
            name
            for name in sorted(connection.introspection.table_names(cursor))
            if name.startswith(TABLE_PREFIXES) or name in TABLES
        ]
        return {name: _dump_table(cursor, name) for name in names}


def _dump_table(cursor: Any, table: str) -> dict[str, Any]:
    from django.db import connection

    quote = connection.ops.quote_name
    columns = sorted(column.name for column in connection.introspection.get_table_description(cursor, table))
    cursor.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)}")
    rows = sorted(json.dumps(dict(zip(columns, row, strict=True)), default=_plain, sort_keys=True) for row in cursor)
    digest = hashlib.sha256("\n".join([json.dumps(columns), *rows]).encode()).hexdigest()
    return {"columns": columns, "rows": rows, "count": len(rows), "sha256": digest}


def _plain(value: object) -> str:
    """A stable text for what JSON has no type for (dates, decimals, bytes)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value) if isinstance(value, Decimal) else repr(value)


def _moved(rows: Iterable[str]) -> list[str]:
    """The content type rows as the upgrade must leave them: importrun's app label is `imports`."""
    result = []
    for text in rows:
        row = json.loads(text)
        if (row["app_label"], row["model"]) == ("customers", "importrun"):
            row["app_label"] = "imports"
        result.append(json.dumps(row, sort_keys=True))
    return sorted(result)


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Table by table: same columns, same rows (the content types: with importrun moved)."""
    tables: dict[str, Any] = {}
    after = _without_new_models(after)
    for name, old in before.items():
        new = _without_added(name, after[name]) if name in after else None
        expected = _moved(old["rows"]) if name == "django_content_type" else old["rows"]
        entry = {"rows_before": old["count"], "sha256_before": old["sha256"]}
        if new is None:
            entry.update(rows_after=None, sha256_after=None, equal=False, problem="table gone")
        else:
            equal = new["columns"] == old["columns"] and new["rows"] == expected
            entry.update(rows_after=new["count"], sha256_after=new["sha256"], equal=equal)
            if not equal:
                entry["lost"] = sorted(set(expected) - set(new["rows"]))[:5]
                entry["gained"] = sorted(set(new["rows"]) - set(expected))[:5]
                entry["columns_after"] = new["columns"] if new["columns"] != old["columns"] else None
        tables[name] = entry
    return {
        "tables": tables,
        "new_tables": sorted(set(after) - set(before)),
        "rows_before": sum(table["count"] for table in before.values()),
        "rows_after": sum(after[name]["count"] for name in before if name in after),
        "content_type_importrun": _importrun_content_type(before, after),
    }


def _without_new_models(dump: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dump less the content types and permissions of NEW_MODELS (which the upgrade adds)."""
    types = [json.loads(text) for text in dump["django_content_type"]["rows"]]
    new_ids = {row["id"] for row in types if (row["app_label"], row["model"]) in NEW_MODELS}
    kept = {
        "django_content_type": [
            text
            for text, row in zip(dump["django_content_type"]["rows"], types, strict=True)
            if row["id"] not in new_ids
        ],
        "auth_permission": [
            text for text in dump["auth_permission"]["rows"] if json.loads(text)["content_type_id"] not in new_ids
        ],
    }
    return {**dump, **{name: {**dump[name], "rows": rows, "count": len(rows)} for name, rows in kept.items()}}


def _without_added(table: str, dumped: dict[str, Any]) -> dict[str, Any]:
    """A table's dump without the columns added since, when every row holds their expected
    value (else as it is, so that the comparison shows the difference)."""
    added = ADDED_COLUMNS.get(table, {})
    if not added:
        return dumped
    rows = [json.loads(text) for text in dumped["rows"]]
    for row in rows:
        for column, expected in added.items():
            value = row.pop(column, "missing")
            if value != expected and value != json.dumps(expected):  # SQLite hands JSON back as text
                return dumped
    columns = [column for column in dumped["columns"] if column not in added]
    return {**dumped, "columns": columns, "rows": sorted(json.dumps(row, sort_keys=True) for row in rows)}


def _importrun_content_type(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def find(dump: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        rows = (json.loads(text) for text in dump["django_content_type"]["rows"])
        return [row for row in rows if row["model"] == "importrun"]

    old, new = find(before), find(after)
    moved = (
        len(old) == len(new) == 1
        and old[0]["app_label"] == "customers"
        and new[0]["app_label"] == "imports"
        and old[0]["id"] == new[0]["id"]
    )
    return {
        "app_label_before": [row["app_label"] for row in old],
        "app_label_after": [row["app_label"] for row in new],
        "id_before": [row["id"] for row in old],
        "id_after": [row["id"] for row in new],
        "moved": moved,
    }


def check_today_models(before: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Today's classes read the old rows: ImportRun from `imports`, every RecomputeRun valid
    against the new closed sets, ImportRun's content type the one row it always had."""
    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType
    from django.core.exceptions import ValidationError
    from django_scopes import scopes_disabled

    import_run, recompute_run = apps.get_model("imports", "ImportRun"), apps.get_model("metrics", "RecomputeRun")
    old_imports = sorted(
        (row["id"], row["status"], row["origin"]) for row in map(json.loads, before["customers_importrun"]["rows"])
    )
    problems: list[str] = []
    with scopes_disabled():
        imports = sorted(import_run.objects.values_list("id", "status", "origin"))
        runs = list(recompute_run.objects.all())
        for run in [*runs, *import_run.objects.all()]:
            try:
                run.full_clean()
            except ValidationError as error:  # reported, not raised: the report names every invalid row
                problems.append(f"{type(run).__name__} {run.pk}: {error}")
    ContentType.objects.clear_cache()
    content_type = ContentType.objects.get_for_model(import_run)
    triggers = sorted({run.trigger for run in runs})
    labels = sorted({run.get_trigger_display() for run in runs})
    if imports != old_imports:
        problems.append(f"imports.ImportRun sees {len(imports)} rows, the table had {len(old_imports)}")
    if triggers != sorted(OLD_TRIGGERS):
        problems.append(f"RecomputeRun triggers {triggers}")
    if set(labels) & set(OLD_TRIGGERS):
        problems.append(f"a trigger without a label: {labels}")
    if (content_type.app_label, content_type.model) != ("imports", "importrun"):
        problems.append(f"ImportRun's content type is {content_type.app_label}.{content_type.model}")
    return {
        "import_runs": len(imports),
        "recompute_runs": len(runs),
        "triggers": triggers,
        "importrun_content_type_id": content_type.pk,
        "problems": problems,
        "ok": not problems,
    }


def check_new_constraints() -> dict[str, Any]:
    """The upgrade did build the new layout: its CHECK constraints exist in the database."""
    from django.db import connection

    with connection.cursor() as cursor:
        missing = {
            table: sorted(names - set(connection.introspection.get_constraints(cursor, table)))
            for table, names in NEW_CHECKS.items()
        }
    missing = {table: names for table, names in missing.items() if names}
    return {"missing": missing, "ok": not missing}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Writing staged rows into the live tables: one upsert per file, matched by ids (SPEC §6).

Every statement takes the partner as a parameter. A row whose stored fields already equal the
file's is left alone, so a repeated import changes nothing and reports it as unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from imports.pipeline import files
from imports.pipeline.files import FileSpec


def _differs(columns: list[str], table: str) -> str:
    """SQL: some column of the stored row differs from the incoming one (NULL-safe)."""
    op = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
    return " OR ".join(f"{table}.{c} {op} excluded.{c}" for c in columns)


@dataclass(frozen=True)
class Upsert:
    spec: FileSpec
    table: str
    conflict: list[str]
    insert_columns: list[str]
    select: str  # the SELECT list and FROM/JOINs over the staging table `s`
    update_columns: list[str]
    exists: str  # SQL: the staged row `s` already has a stored row

    def sql(self) -> str:
        update = ", ".join(f"{c} = excluded.{c}" for c in self.update_columns)
        return f"""INSERT INTO {self.table} ({", ".join(self.insert_columns)})
                   SELECT {self.select} WHERE true
                   ON CONFLICT ({", ".join(self.conflict)}) DO UPDATE SET {update}
                   WHERE {_differs(self.update_columns, self.table)}"""


_CUSTOMER_OF_S = "JOIN customers_customer c ON c.partner_id = %(partner_id)s AND c.external_id = s.customer_id"

UPSERTS: tuple[Upsert, ...] = (
    Upsert(
        files.CUSTOMERS,
        "customers_customer",
        ["partner_id", "external_id"],
        ["partner_id", "external_id", "name", "domain"],
        "%(partner_id)s, s.customer_id, s.name, COALESCE(s.domain, '') FROM import_stage_customers s",
        ["name", "domain"],
        "SELECT 1 FROM customers_customer t WHERE t.partner_id = %(partner_id)s AND t.external_id = s.customer_id",
    ),
    Upsert(
        files.SUBSCRIPTIONS,
        "customers_subscription",
        ["partner_id", "external_id"],
        [
            "partner_id",
            "customer_id",
            "product_id",
            "external_id",
            "quantity",
            "status",
            "is_trial",
            "source",
            "start_date",
            "end_date",
        ],
        f"""%(partner_id)s, c.id, COALESCE(own.id, shipped.id), s.subscription_id, s.quantity,
            s.status, s.is_trial, s.source, s.start_date, s.end_date
            FROM import_stage_subscriptions s {_CUSTOMER_OF_S}
            LEFT JOIN customers_product own ON own.partner_id = %(partner_id)s AND own.sku = s.sku
            LEFT JOIN customers_product shipped ON shipped.partner_id IS NULL AND shipped.sku = s.sku""",
        ["customer_id", "product_id", "quantity", "status", "is_trial", "source", "start_date", "end_date"],
        "SELECT 1 FROM customers_subscription t WHERE t.partner_id = %(partner_id)s"
        " AND t.external_id = s.subscription_id",
    ),
    Upsert(
        files.USERS,
        "customers_enduser",
        ["partner_id", "external_id"],
        ["partner_id", "customer_id", "external_id", "upn", "display_name"],
        f"%(partner_id)s, c.id, s.user_id, s.upn, COALESCE(s.display_name, '')"
        f" FROM import_stage_users s {_CUSTOMER_OF_S}",
        ["customer_id", "upn", "display_name"],
        "SELECT 1 FROM customers_enduser t WHERE t.partner_id = %(partner_id)s AND t.external_id = s.user_id",
    ),
    Upsert(
        files.ASSIGNMENTS,
        "customers_licenseassignment",
        ["user_id", "subscription_id", "assigned_on"],
        ["partner_id", "customer_id", "user_id", "subscription_id", "assigned_on", "removed_on", "state"],
        """%(partner_id)s, u.customer_id, u.id, sub.id, s.assigned_on, s.removed_on, s.state
           FROM import_stage_assignments s
           JOIN customers_enduser u ON u.partner_id = %(partner_id)s AND u.external_id = s.user_id
           JOIN customers_subscription sub ON sub.partner_id = %(partner_id)s
               AND sub.external_id = s.subscription_id""",
        ["removed_on", "state"],
        # From the staged ids to the stored row through unique keys (CROSS JOIN fixes that order on
        # SQLite, which otherwise scans the partner's assignments once per staged row).
        """SELECT 1 FROM customers_enduser u
           CROSS JOIN customers_subscription sub
           CROSS JOIN customers_licenseassignment t
           WHERE u.partner_id = %(partner_id)s AND u.external_id = s.user_id
             AND sub.partner_id = %(partner_id)s AND sub.external_id = s.subscription_id
             AND t.user_id = u.id AND t.subscription_id = sub.id AND t.assigned_on = s.assigned_on
             AND t.partner_id = %(partner_id)s""",
    ),
    Upsert(
        files.SUPPORT_REQUESTS,
        "customers_supportrequest",
        ["partner_id", "external_id"],
        ["partner_id", "customer_id", "external_id", "opened_on", "category"],
        f"%(partner_id)s, c.id, s.request_id, s.opened_on, s.category"
        f" FROM import_stage_support_requests s {_CUSTOMER_OF_S}",
        ["customer_id", "opened_on", "category"],
        "SELECT 1 FROM customers_supportrequest t WHERE t.partner_id = %(partner_id)s AND t.external_id = s.request_id",
    ),
)

# Activity rows are facts: a repeated (user, workload, date) is stored once. CROSS JOIN makes
# SQLite probe each staged row's user by its unique key instead of scanning the staging table.
INSERT_ACTIVITY = """
    INSERT INTO customers_activity (partner_id, user_id, activity_date, workload)
    SELECT DISTINCT %(partner_id)s, u.id, s.date, s.workload FROM import_stage_activity s
    CROSS JOIN customers_enduser u
    WHERE u.partner_id = %(partner_id)s AND u.external_id = s.user_id
    ON CONFLICT (user_id, activity_date, workload) DO NOTHING"""

# After users or subscriptions moved to another customer, their assignments follow them.
REALIGN_ASSIGNMENTS = """
    UPDATE customers_licenseassignment SET customer_id = (
        SELECT u.customer_id FROM customers_enduser u WHERE u.id = customers_licenseassignment.user_id)
    WHERE partner_id = %(partner_id)s AND customer_id <> (
        SELECT u.customer_id FROM customers_enduser u WHERE u.id = customers_licenseassignment.user_id)"""

# A partner's own product replaces the shipped entry of the same sku for that partner only.
REPOINT_SUBSCRIPTIONS = """
    UPDATE customers_subscription SET product_id = (
        SELECT own.id FROM customers_product own JOIN customers_product shipped ON shipped.sku = own.sku
        WHERE own.partner_id = %(partner_id)s AND shipped.id = customers_subscription.product_id)
    WHERE partner_id = %(partner_id)s AND product_id IN (
        SELECT shipped.id FROM customers_product shipped JOIN customers_product own ON own.sku = shipped.sku
        WHERE shipped.partner_id IS NULL AND own.partner_id = %(partner_id)s)"""

AFFECTED_DATES = """
    SELECT MIN(d), MAX(d) FROM (
        SELECT date AS d FROM import_stage_activity
        UNION ALL SELECT assigned_on FROM import_stage_assignments
        UNION ALL SELECT removed_on FROM import_stage_assignments
        UNION ALL SELECT opened_on FROM import_stage_support_requests) q"""


def apply_upsert(upsert: Upsert, *, partner_id: int, rows: int) -> dict[str, int]:
    """Writes one staged file; returns its rows, created, updated and unchanged counts."""
    params = {"partner_id": partner_id}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {upsert.spec.table} s WHERE NOT EXISTS ({upsert.exists})", params)
        created = cursor.fetchone()[0]
        cursor.execute(upsert.sql(), params)
        changed = cursor.rowcount
    return {"rows": rows, "created": created, "updated": changed - created, "unchanged": rows - changed}


def apply_activity(*, partner_id: int, rows: int) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(INSERT_ACTIVITY, {"partner_id": partner_id})
        created = cursor.rowcount
    return {"rows": rows, "created": created, "updated": 0, "unchanged": rows - created}


def realign_assignments(*, partner_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(REALIGN_ASSIGNMENTS, {"partner_id": partner_id})


def repoint_subscriptions(*, partner_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(REPOINT_SUBSCRIPTIONS, {"partner_id": partner_id})

"""Set-based checks of the staged rows against each other and the stored data (SPEC §6).

Each check is one SELECT of (file, line, value, detail) over a staging table; the stored data
it consults is always restricted to the importing partner.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from imports.pipeline import files
from imports.pipeline.files import FileSpec
from imports.pipeline.issues import ImportIssue, IssueList

# Stored rows are always read through the partner: `%(partner_id)s` below.
KNOWN_CUSTOMER = """(
    EXISTS (SELECT 1 FROM import_stage_customers k WHERE k.customer_id = {ref})
    OR EXISTS (SELECT 1 FROM customers_customer k WHERE k.partner_id = %(partner_id)s AND k.external_id = {ref}))"""
KNOWN_PRODUCT = """(
    EXISTS (SELECT 1 FROM import_stage_products k WHERE k.sku = {ref})
    OR EXISTS (SELECT 1 FROM customers_product k
               WHERE (k.partner_id = %(partner_id)s OR k.partner_id IS NULL) AND k.sku = {ref}))"""
KNOWN_USER = """(
    EXISTS (SELECT 1 FROM import_stage_users k WHERE k.user_id = {ref})
    OR EXISTS (SELECT 1 FROM customers_enduser k WHERE k.partner_id = %(partner_id)s AND k.external_id = {ref}))"""
KNOWN_SUBSCRIPTION = """(
    EXISTS (SELECT 1 FROM import_stage_subscriptions k WHERE k.subscription_id = {ref})
    OR EXISTS (SELECT 1 FROM customers_subscription k WHERE k.partner_id = %(partner_id)s AND k.external_id = {ref}))"""

# The customer (external id) a user / subscription will belong to after this import.
USER_CUSTOMER = """COALESCE(
    (SELECT MIN(k.customer_id) FROM import_stage_users k WHERE k.user_id = {ref}),
    (SELECT kc.external_id FROM customers_enduser ku JOIN customers_customer kc ON kc.id = ku.customer_id
     WHERE ku.partner_id = %(partner_id)s AND ku.external_id = {ref}))"""
SUBSCRIPTION_CUSTOMER = """COALESCE(
    (SELECT MIN(k.customer_id) FROM import_stage_subscriptions k WHERE k.subscription_id = {ref}),
    (SELECT kc.external_id FROM customers_subscription ks JOIN customers_customer kc ON kc.id = ks.customer_id
     WHERE ks.partner_id = %(partner_id)s AND ks.external_id = {ref}))"""


@dataclass(frozen=True)
class Check:
    spec: FileSpec
    column: str
    reason: str  # may use {detail}
    select: str  # SELECT file, line, value, detail FROM …


def _unknown(spec: FileSpec, column: str, known: str, what: str) -> Check:
    ref = f"s.{column}"
    return Check(
        spec,
        column,
        f"unknown {what}: not in this import nor already stored",
        f"SELECT s.file, s.line, s.{column}, '' FROM {spec.table} s "
        f"WHERE {ref} IS NOT NULL AND NOT {known.format(ref=ref)}",
    )


def _duplicates(spec: FileSpec) -> Check:
    """Every repeat of a key after its first occurrence (by file, then line); the first one is
    named by its line, or by file:line when it stands in another file (vendor exports)."""
    keys = ", ".join(spec.key)
    same_key = " AND ".join(f"o.{k} = d.{k}" for k in spec.key)
    value = " || ' / ' || ".join(f"CAST(o.{k} AS text)" for k in spec.key)
    occurrences = f"""SELECT o.file, o.line, {value} AS value, {", ".join(f"o.{k}" for k in spec.key)},
               ROW_NUMBER() OVER (PARTITION BY {", ".join(f"o.{k}" for k in spec.key)} ORDER BY o.file, o.line) AS n
        FROM {spec.table} o
        JOIN (SELECT {keys} FROM {spec.table} WHERE {" AND ".join(f"{k} IS NOT NULL" for k in spec.key)}
              GROUP BY {keys} HAVING COUNT(*) > 1) d ON {same_key}"""
    same_first = " AND ".join(f"f.{k} = s.{k}" for k in spec.key)
    return Check(
        spec,
        "+".join(spec.key),
        "duplicate id, first given on line {detail}",
        f"""SELECT s.file, s.line, s.value,
                   CASE WHEN f.file = s.file THEN CAST(f.line AS text) ELSE f.file || ':' || f.line END
            FROM ({occurrences}) s JOIN ({occurrences}) f ON {same_first} AND f.n = 1
            WHERE s.n > 1""",
    )


# A staged user moving to another customer while a stored assignment ties it to a subscription
# of the old one (and the reverse for subscriptions): that assignment would cross customers.
_USER_MOVE_BREAKS_ASSIGNMENT = Check(
    files.USERS,
    "customer_id",
    "the user keeps license assignments on subscriptions of customer '{detail}'",
    f"""SELECT s.file, s.line, s.customer_id, MIN(sc.external_id) FROM import_stage_users s
        JOIN customers_enduser u ON u.partner_id = %(partner_id)s AND u.external_id = s.user_id
        JOIN customers_licenseassignment a ON a.user_id = u.id
        JOIN customers_subscription sub ON sub.id = a.subscription_id
        JOIN customers_customer sc ON sc.id = sub.customer_id
        WHERE {SUBSCRIPTION_CUSTOMER.format(ref="sub.external_id")} <> s.customer_id
        GROUP BY s.file, s.line, s.customer_id""",
)
_SUBSCRIPTION_MOVE_BREAKS_ASSIGNMENT = Check(
    files.SUBSCRIPTIONS,
    "customer_id",
    "the subscription keeps license assignments of users of customer '{detail}'",
    f"""SELECT s.file, s.line, s.customer_id, MIN(uc.external_id) FROM import_stage_subscriptions s
        JOIN customers_subscription sub ON sub.partner_id = %(partner_id)s AND sub.external_id = s.subscription_id
        JOIN customers_licenseassignment a ON a.subscription_id = sub.id
        JOIN customers_enduser u ON u.id = a.user_id
        JOIN customers_customer uc ON uc.id = u.customer_id
        WHERE {USER_CUSTOMER.format(ref="u.external_id")} <> s.customer_id
        GROUP BY s.file, s.line, s.customer_id""",
)

CHECKS: tuple[Check, ...] = (
    *(_duplicates(spec) for spec in files.FILE_SPECS if spec.key),
    _unknown(files.SUBSCRIPTIONS, "customer_id", KNOWN_CUSTOMER, "customer"),
    _unknown(files.SUBSCRIPTIONS, "sku", KNOWN_PRODUCT, "sku"),
    _unknown(files.USERS, "customer_id", KNOWN_CUSTOMER, "customer"),
    _unknown(files.ASSIGNMENTS, "user_id", KNOWN_USER, "user"),
    _unknown(files.ASSIGNMENTS, "subscription_id", KNOWN_SUBSCRIPTION, "subscription"),
    _unknown(files.ACTIVITY, "user_id", KNOWN_USER, "user"),
    _unknown(files.SUPPORT_REQUESTS, "customer_id", KNOWN_CUSTOMER, "customer"),
    Check(
        files.ASSIGNMENTS,
        "subscription_id",
        "the subscription belongs to customer '{detail}', not to the user's customer",
        f"""SELECT file, line, subscription_id, subscription_customer FROM (
                SELECT s.file, s.line, s.subscription_id,
                       {USER_CUSTOMER.format(ref="s.user_id")} AS user_customer,
                       {SUBSCRIPTION_CUSTOMER.format(ref="s.subscription_id")} AS subscription_customer
                FROM import_stage_assignments s) q
            WHERE user_customer <> subscription_customer""",
    ),
    _USER_MOVE_BREAKS_ASSIGNMENT,
    _SUBSCRIPTION_MOVE_BREAKS_ASSIGNMENT,
)


def run_checks(*, partner_id: int, issues: IssueList) -> None:
    """Adds every problem the checks find; the first few of each are listed."""
    params = {"partner_id": partner_id}
    with connection.cursor() as cursor:
        for check in CHECKS:
            cursor.execute(f"SELECT COUNT(*) FROM ({check.select}) q", params)
            total = cursor.fetchone()[0]
            if not total:
                continue
            cursor.execute(f"SELECT * FROM ({check.select}) q ORDER BY 1, 2 LIMIT {max(issues.room, 1)}", params)
            found = [
                ImportIssue(file, line, check.column, check.reason.format(detail=detail), str(value))
                for file, line, value, detail in cursor.fetchall()
            ]
            issues.add_counted(found, total)

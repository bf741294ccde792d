"""Set-based SQL turning staged vendor exports into canonical staged rows (vendor-formats.md §0).

The vendor readers fill the `import_stage_vendor_*` tables; the statements below derive from
them the rows of the canonical staging tables (customers, products, subscriptions, users,
assignments, activity), so the canonical checks, the atomic apply and the counts serve vendor
files too. Only what needs stored data is done here: netting tenant totals against the partner's
own subscriptions, the subscription an assigned product lands on, and ending assignments a
later report no longer lists. Every statement reads stored rows through `%(partner_id)s`, the partner,
and runs on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from imports.pipeline.checks import KNOWN_PRODUCT
from imports.pipeline.vendor_report import WORKLOADS


@dataclass(frozen=True)
class TempTable:
    name: str
    columns: str
    index: tuple[str, ...] = ()


_ROW = "line integer NOT NULL, file text NOT NULL"
SUBSCRIPTIONS = TempTable(
    "import_stage_vendor_subscriptions",
    f"""{_ROW}, customer_id text, subscription_id text, offer_name text, offer_key text, quantity bigint,
        status text, is_trial boolean, start_date date, end_date date, auto_renew boolean, billing_cycle text,
        sku text""",
    ("subscription_id",),
)
SKUS = TempTable(
    "import_stage_vendor_skus",
    f"{_ROW}, customer_id text, sku text, enabled bigint, warning bigint, suspended bigint, locked_out bigint",
)
SKU_SUBSCRIPTIONS = TempTable(
    "import_stage_vendor_sku_subscriptions",
    f"{_ROW}, customer_id text, sku text, subscription_id text",
    ("customer_id", "subscription_id"),
)
REPORT = TempTable(
    "import_stage_vendor_report",
    f"""{_ROW}, customer_id text, refresh_date date, upn text, display_name text, is_deleted boolean,
        deleted_date date, assigned_on date, products text, {", ".join(f"{w} date" for w, _ in WORKLOADS)}""",
    ("customer_id", "upn"),
)
# Known SKU names (upper case) and the SKUs each distinct `Assigned Products` value names.
PRODUCT_KEYS = TempTable("import_stage_vendor_product_keys", "name_key text, sku text", ("name_key",))
PRODUCT_NAMES = TempTable("import_stage_vendor_product_names", "products text, sku text", ("products",))
# Every subscription of the report and SKU customers as it will be after this import.
KNOWN_SUBSCRIPTIONS = TempTable(
    "import_stage_vendor_known_subscriptions",
    """customer_id text, subscription_id text, sku text, quantity bigint, status text, is_trial boolean,
       source text, start_date date, end_date date""",
    ("customer_id", "sku"),
)
# Each customer folder (its tenant id) with one of its files, to name in an error.
FOLDERS = TempTable("import_stage_vendor_folders", "customer_id text, file text")
REPORT_DATES = TempTable("import_stage_vendor_report_dates", "customer_id text, refresh_date date, file text")
# The latest report row of each user; removed_on: when a deleted user's licenses ended.
USERS = TempTable(
    "import_stage_vendor_users",
    f"{_ROW}, customer_id text, user_id text, display_name text, removed_on date",
    ("customer_id", "user_id"),
)
# Every (report row, SKU) an assigned product names.
LISTED = TempTable(
    "import_stage_vendor_listed",
    f"{_ROW}, customer_id text, user_id text, sku text, refresh_date date, assigned_on date, removed_on date",
    ("customer_id", "user_id", "sku"),
)
# One assignment per customer, user and SKU the reports list.
ASSIGNMENTS = TempTable(
    "import_stage_vendor_assignments",
    f"""{_ROW}, customer_id text, user_id text, sku text, listed_on date, assigned_on date, removed_on date,
        subscription_id text""",
)
# The stored open assignments of the report customers; removed_on: when a report ends them.
OPEN_ASSIGNMENTS = TempTable(
    "import_stage_vendor_open_assignments",
    "customer_id text, user_id text, sku text, subscription_id text, assigned_on date, state text, removed_on date",
    ("user_id", "subscription_id"),
)
TABLES = (
    SUBSCRIPTIONS,
    SKUS,
    SKU_SUBSCRIPTIONS,
    REPORT,
    PRODUCT_KEYS,
    PRODUCT_NAMES,
    KNOWN_SUBSCRIPTIONS,
    FOLDERS,
    REPORT_DATES,
    USERS,
    LISTED,
    ASSIGNMENTS,
    OPEN_ASSIGNMENTS,
)


# A customer folder must name a customer of this import or one stored for the partner.
UNKNOWN_FOLDERS = """
    SELECT f.customer_id, MIN(f.file) FROM import_stage_vendor_folders f
    WHERE NOT EXISTS (SELECT 1 FROM import_stage_customers k WHERE k.customer_id = f.customer_id)
      AND NOT EXISTS (SELECT 1 FROM customers_customer k WHERE k.partner_id = %(partner_id)s
          AND k.external_id = f.customer_id)
    GROUP BY f.customer_id ORDER BY f.customer_id"""


def _no_later_row(table: str, partition: tuple[str, ...], date: str) -> str:
    """SQL: no row of `table` (alias n) in the partition of row `r` is later by date, file, line."""
    same = " AND ".join(f"n.{column} = r.{column}" for column in partition)
    return f"""NOT EXISTS (SELECT 1 FROM {table} n WHERE {same} AND (n.{date} > r.{date}
        OR (n.{date} = r.{date} AND (n.file > r.file OR (n.file = r.file AND n.line > r.line)))))"""


# SKUs of the tenant's list that the partner does not know become partner products (family
# `other`, no workloads); one row per SKU, named by the file and item that first gave it.
UNKNOWN_SKUS_AS_PRODUCTS = f"""
    INSERT INTO import_stage_products (file, line, sku, name, family, workloads)
    SELECT MIN(v.file), MIN(v.line), v.sku, v.sku, 'other', '' FROM import_stage_vendor_skus v
    WHERE v.sku IS NOT NULL AND NOT {KNOWN_PRODUCT.format(ref="v.sku")}
    GROUP BY v.sku"""

# The products added above (canonical rows keep their default file name), for the warnings.
ADDED_PRODUCTS = "SELECT sku, file FROM import_stage_products WHERE file <> 'products.csv' ORDER BY sku"

# The partner's products (replacing the catalog's of the same SKU), then this import's: later wins.
PRODUCT_NAMES_BY_SKU = """
    SELECT sku, name FROM (
        SELECT sku, name, 0 AS rank FROM customers_product WHERE partner_id IS NULL
        UNION ALL SELECT sku, name, 1 FROM customers_product WHERE partner_id = %(partner_id)s
        UNION ALL SELECT sku, name, 2 FROM import_stage_products WHERE sku IS NOT NULL AND name IS NOT NULL
    ) q ORDER BY rank"""

# A portal subscription's SKU: the tenant SKU listing its id, else the SKU named like its offer,
# else (a re-import without the SKU list) the SKU it is stored with.
RESOLVE_SUBSCRIPTION_SKUS = """
    UPDATE import_stage_vendor_subscriptions AS v SET sku = COALESCE(
        (SELECT MIN(m.sku) FROM import_stage_vendor_sku_subscriptions m
         WHERE m.customer_id = v.customer_id AND m.subscription_id = v.subscription_id),
        (SELECT MIN(n.sku) FROM import_stage_vendor_product_keys n WHERE n.name_key = v.offer_key),
        (SELECT MIN(pr.sku) FROM customers_subscription s JOIN customers_product pr ON pr.id = s.product_id
         WHERE s.partner_id = %(partner_id)s AND s.external_id = v.subscription_id))"""

# Portal subscriptions whose SKU was found, as canonical own subscriptions.
STAGE_SUBSCRIPTIONS = """
    INSERT INTO import_stage_subscriptions (file, line, subscription_id, customer_id, sku, quantity, status,
        is_trial, source, start_date, end_date)
    SELECT file, line, subscription_id, customer_id, sku, quantity, status, is_trial, 'own', start_date, end_date
    FROM import_stage_vendor_subscriptions WHERE sku IS NOT NULL"""

# Portal subscriptions whose SKU was not found: skipped, each with a warning.
SKIPPED_SUBSCRIPTIONS = """
    SELECT file, line, subscription_id, offer_name FROM import_stage_vendor_subscriptions
    WHERE sku IS NULL ORDER BY file, line"""

# Each report's customer and refresh date: what ends assignments a later report no longer lists.
REPORT_DATES_OF_FILES = """
    INSERT INTO import_stage_vendor_report_dates (customer_id, refresh_date, file)
    SELECT DISTINCT customer_id, refresh_date, file FROM import_stage_vendor_report WHERE refresh_date IS NOT NULL"""

# Emptied to build the known subscriptions again once the netted ones are staged.
CLEAR_KNOWN_SUBSCRIPTIONS = "DELETE FROM import_stage_vendor_known_subscriptions"

# Staged subscriptions, and the stored ones this import leaves as they are, of the customers
# that have a SKU list or a report here.
KNOWN_SUBSCRIPTIONS_OF_CUSTOMERS = """
    INSERT INTO import_stage_vendor_known_subscriptions (customer_id, subscription_id, sku, quantity, status,
        is_trial, source, start_date, end_date)
    SELECT customer_id, subscription_id, sku, quantity, status, is_trial, source, start_date, end_date
    FROM import_stage_subscriptions
    UNION ALL
    SELECT c.external_id, s.external_id, pr.sku, s.quantity, s.status, s.is_trial, s.source, s.start_date, s.end_date
    FROM customers_subscription s
    JOIN customers_customer c ON c.id = s.customer_id
    JOIN customers_product pr ON pr.id = s.product_id
    WHERE s.partner_id = %(partner_id)s
      AND NOT EXISTS (SELECT 1 FROM import_stage_subscriptions k WHERE k.subscription_id = s.external_id)
      AND c.external_id IN (SELECT customer_id FROM import_stage_vendor_skus
                            UNION SELECT customer_id FROM import_stage_vendor_report_dates)"""

# Tenant totals net of the partner's own subscriptions in that status (trials included, never below
# 0): one `other_partner` subscription per SKU and status whose stable id a re-import replaces.
NET_TENANT_TOTALS = """
    INSERT INTO import_stage_subscriptions (file, line, subscription_id, customer_id, sku, quantity, status,
        is_trial, source, start_date, end_date)
    SELECT file, line, subscription_id, customer_id, sku, CASE WHEN units > own THEN units - own ELSE 0 END,
           status, false, 'other_partner', NULL, NULL
    FROM (
        SELECT k.file, k.line, k.customer_id || ':' || k.sku || ':' || b.suffix AS subscription_id,
               k.customer_id, k.sku, b.status,
               CASE b.status WHEN 'active' THEN k.enabled WHEN 'grace' THEN k.warning
                             WHEN 'suspended' THEN k.suspended ELSE k.locked_out END AS units,
               (SELECT COALESCE(SUM(o.quantity), 0) FROM import_stage_vendor_known_subscriptions o
                WHERE o.customer_id = k.customer_id AND o.sku = k.sku AND o.source = 'own'
                  AND o.status = b.status) AS own
        FROM import_stage_vendor_skus k
        CROSS JOIN (SELECT 'other' AS suffix, 'active' AS status UNION ALL SELECT 'grace', 'grace'
                    UNION ALL SELECT 'suspended', 'suspended' UNION ALL SELECT 'cancelled', 'cancelled') b
        WHERE k.sku IS NOT NULL
    ) n
    WHERE units > own
       OR EXISTS (SELECT 1 FROM customers_subscription t WHERE t.partner_id = %(partner_id)s
                  AND t.external_id = n.subscription_id)"""

# The distinct `Assigned Products` values (few, however many users), split in Python.
DISTINCT_PRODUCTS = """
    SELECT products, MIN(file) FROM import_stage_vendor_report WHERE products <> '' GROUP BY products"""

# Each user once, from their latest report row (by refresh date, then file and line).
LATEST_USER_ROWS = f"""
    INSERT INTO import_stage_vendor_users (file, line, customer_id, user_id, display_name, removed_on)
    SELECT r.file, r.line, r.customer_id, r.upn, r.display_name,
           CASE WHEN r.is_deleted THEN COALESCE(r.deleted_date, r.refresh_date) END
    FROM import_stage_vendor_report r
    WHERE r.upn IS NOT NULL AND {_no_later_row("import_stage_vendor_report", ("customer_id", "upn"), "refresh_date")}"""

# user_id = upn = User Principal Name (vendor-formats.md §0).
STAGE_USERS = """
    INSERT INTO import_stage_users (file, line, user_id, customer_id, upn, display_name)
    SELECT file, line, user_id, customer_id, user_id, COALESCE(display_name, '') FROM import_stage_vendor_users"""

# One activity per user and workload at its last activity date.
STAGE_ACTIVITY = "INSERT INTO import_stage_activity (file, line, user_id, workload, date) " + " UNION ALL ".join(
    f"SELECT file, line, upn, '{workload}', {workload} FROM import_stage_vendor_report "
    f"WHERE upn IS NOT NULL AND {workload} IS NOT NULL"
    for workload, _ in WORKLOADS
)

# Each report row with each known SKU its `Assigned Products` names.
LIST_ASSIGNED_SKUS = """
    INSERT INTO import_stage_vendor_listed (file, line, customer_id, user_id, sku, refresh_date, assigned_on,
        removed_on)
    SELECT r.file, r.line, r.customer_id, r.upn, n.sku, r.refresh_date, r.assigned_on,
           CASE WHEN r.is_deleted THEN COALESCE(r.deleted_date, r.refresh_date) END
    FROM import_stage_vendor_report r JOIN import_stage_vendor_product_names n ON n.products = r.products
    WHERE r.upn IS NOT NULL AND r.refresh_date IS NOT NULL"""

# From the latest report listing a user's SKU: assigned since the earliest date any report gives,
# removed when the user was deleted or at the next report of the customer that no longer lists it.
ASSIGNMENTS_OF_LISTINGS = f"""
    INSERT INTO import_stage_vendor_assignments (file, line, customer_id, user_id, sku, listed_on, assigned_on,
        removed_on)
    SELECT r.file, r.line, r.customer_id, r.user_id, r.sku, r.refresh_date,
           (SELECT MIN(e.assigned_on) FROM import_stage_vendor_listed e
            WHERE e.customer_id = r.customer_id AND e.user_id = r.user_id AND e.sku = r.sku),
           COALESCE(r.removed_on, (SELECT MIN(d.refresh_date) FROM import_stage_vendor_report_dates d
                                   WHERE d.customer_id = r.customer_id AND d.refresh_date > r.refresh_date))
    FROM import_stage_vendor_listed r
    WHERE {_no_later_row("import_stage_vendor_listed", ("customer_id", "user_id", "sku"), "refresh_date")}"""

# The customer's own subscription of the SKU counted at the report's date (SPEC §2), the smallest
# id if several, else the subscription of the other sellers' units.
RESOLVE_ASSIGNMENT_SUBSCRIPTIONS = """
    UPDATE import_stage_vendor_assignments AS a SET subscription_id = COALESCE(
        (SELECT MIN(k.subscription_id) FROM import_stage_vendor_known_subscriptions k
         WHERE k.customer_id = a.customer_id AND k.sku = a.sku AND k.source = 'own'
           AND k.status = 'active' AND NOT k.is_trial
           AND (k.start_date IS NULL OR k.start_date <= a.listed_on)
           AND (k.end_date IS NULL OR k.end_date >= a.listed_on)),
        (SELECT k.subscription_id FROM import_stage_vendor_known_subscriptions k
         WHERE k.customer_id = a.customer_id AND k.subscription_id = a.customer_id || ':' || a.sku || ':other'))"""

# The stored assignments without an end of the customers that have a report here.
STORED_OPEN_ASSIGNMENTS = """
    INSERT INTO import_stage_vendor_open_assignments (customer_id, user_id, sku, subscription_id, assigned_on, state)
    SELECT c.external_id, u.external_id, pr.sku, s.external_id, a.assigned_on, a.state
    FROM customers_licenseassignment a
    JOIN customers_customer c ON c.id = a.customer_id
    JOIN customers_enduser u ON u.id = a.user_id
    JOIN customers_subscription s ON s.id = a.subscription_id
    JOIN customers_product pr ON pr.id = s.product_id
    WHERE a.partner_id = %(partner_id)s AND a.removed_on IS NULL
      AND c.external_id IN (SELECT customer_id FROM import_stage_vendor_report_dates)"""

# A stored open assignment of the same user and subscription keeps its assigned_on, so a report
# that no longer gives an assign date does not start a second assignment.
KEEP_STORED_ASSIGNED_ON = """
    UPDATE import_stage_vendor_assignments AS a SET assigned_on = (
        SELECT MIN(o.assigned_on) FROM import_stage_vendor_open_assignments o
        WHERE o.user_id = a.user_id AND o.subscription_id = a.subscription_id)
    WHERE EXISTS (SELECT 1 FROM import_stage_vendor_open_assignments o
                  WHERE o.user_id = a.user_id AND o.subscription_id = a.subscription_id)"""

# The assignments placed on a subscription, as canonical active assignments.
STAGE_ASSIGNMENTS = """
    INSERT INTO import_stage_assignments (file, line, user_id, subscription_id, assigned_on, removed_on, state)
    SELECT file, line, user_id, subscription_id, assigned_on, removed_on, 'active'
    FROM import_stage_vendor_assignments WHERE subscription_id IS NOT NULL"""

# Listed SKUs the customer has no subscription of: skipped, one warning per SKU.
UNPLACED_ASSIGNMENTS = """
    SELECT sku, COUNT(*), MIN(customer_id), COUNT(DISTINCT customer_id) FROM import_stage_vendor_assignments
    WHERE subscription_id IS NULL GROUP BY sku ORDER BY sku"""

# A stored open assignment a report does not give again (matched by user and SKU; or moved to
# another subscription) ends at the first report after its start; a deleted user's at deletion.
END_UNLISTED_ASSIGNMENTS = """
    UPDATE import_stage_vendor_open_assignments AS o SET removed_on = COALESCE(
        (SELECT u.removed_on FROM import_stage_vendor_users u
         WHERE u.customer_id = o.customer_id AND u.user_id = o.user_id),
        (SELECT MIN(d.refresh_date) FROM import_stage_vendor_report_dates d
         WHERE d.customer_id = o.customer_id AND d.refresh_date > o.assigned_on))
    WHERE NOT EXISTS (SELECT 1 FROM import_stage_assignments s
                      WHERE s.user_id = o.user_id AND s.subscription_id = o.subscription_id
                        AND s.assigned_on = o.assigned_on)"""

# The stored assignments ended above, staged with their new removed_on (counted as updated).
STAGE_ENDED_ASSIGNMENTS = """
    INSERT INTO import_stage_assignments (file, line, user_id, subscription_id, assigned_on, removed_on, state)
    SELECT (SELECT MIN(d.file) FROM import_stage_vendor_report_dates d WHERE d.customer_id = o.customer_id), 0,
           o.user_id, o.subscription_id, o.assigned_on, o.removed_on, o.state
    FROM import_stage_vendor_open_assignments o WHERE o.removed_on IS NOT NULL"""

# After the apply: the portal's renewal flag and billing cycle, which the canonical files lack.
SET_RENEWAL_FIELDS = """
    UPDATE customers_subscription SET
        auto_renew = (SELECT v.auto_renew FROM import_stage_vendor_subscriptions v
                      WHERE v.subscription_id = customers_subscription.external_id),
        billing_cycle = (SELECT COALESCE(v.billing_cycle, '') FROM import_stage_vendor_subscriptions v
                         WHERE v.subscription_id = customers_subscription.external_id)
    WHERE partner_id = %(partner_id)s
      AND external_id IN (SELECT subscription_id FROM import_stage_vendor_subscriptions WHERE sku IS NOT NULL)"""

# The conversion, in order (the Python steps between them are in `vendor`).
BEFORE_PRODUCT_NAMES = (UNKNOWN_SKUS_AS_PRODUCTS,)
SUBSCRIPTION_STEPS = (
    RESOLVE_SUBSCRIPTION_SKUS,
    STAGE_SUBSCRIPTIONS,
    REPORT_DATES_OF_FILES,
    KNOWN_SUBSCRIPTIONS_OF_CUSTOMERS,
    NET_TENANT_TOTALS,
    CLEAR_KNOWN_SUBSCRIPTIONS,
    KNOWN_SUBSCRIPTIONS_OF_CUSTOMERS,  # again, now with the other sellers' subscriptions
)
REPORT_STEPS = (
    LATEST_USER_ROWS,
    STAGE_USERS,
    STAGE_ACTIVITY,
    LIST_ASSIGNED_SKUS,
    ASSIGNMENTS_OF_LISTINGS,
    RESOLVE_ASSIGNMENT_SUBSCRIPTIONS,
    STORED_OPEN_ASSIGNMENTS,
    KEEP_STORED_ASSIGNED_ON,
    STAGE_ASSIGNMENTS,
)
REMOVAL_STEPS = (END_UNLISTED_ASSIGNMENTS, STAGE_ENDED_ASSIGNMENTS)

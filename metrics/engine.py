"""The metric engine: every number of SPEC §2 for one partner and one date, set-based.

A fixed list of SQL statements per date, whatever the number of customers and users:
temporary tables of user-level facts, then one `INSERT … SELECT … GROUP BY` per grain and one
for the inactive licensed users of SPEC §8.
The statements take the partner and the dates as parameters and run on PostgreSQL and SQLite
alike. The caller (`metrics.services`) runs them in one transaction after deleting the date,
so readers never see a half-written day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

from customers.models import Workload
from metrics.models import InactiveSnapshot, InactivityDays

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

WINDOW_DAYS = 28
INACTIVITY_DAYS = sorted(InactivityDays.values)  # the periods of SPEC §8, shortest first
LOOKBACK_DAYS = max(WINDOW_DAYS, INACTIVITY_DAYS[-1])  # how far back a date's snapshots read activity
INSIGHT_FAMILIES = "('office365', 'dynamics365')"

# A subscription counted at D (SPEC §2): active, not a trial, started (or start unknown), not ended.
COUNTED = """(s.status = 'active' AND NOT s.is_trial
    AND (s.start_date IS NULL OR s.start_date <= %(d)s) AND (s.end_date IS NULL OR s.end_date >= %(d)s))"""
# An assignment current at D.
CURRENT = "(a.assigned_on <= %(d)s AND (a.removed_on IS NULL OR a.removed_on > %(d)s))"

# Sets of workloads are integers, a bit per workload, so a user's or a SKU's workloads are one
# value and "active on a workload of the SKU" is one `&` (both databases have it): joining
# (user, workload) pairs with (SKU, workload) pairs made several rows per license and was most
# of a date's time.
WORKLOADS = tuple(Workload.values)
BIT = {workload: 1 << n for n, workload in enumerate(WORKLOADS)}


def bit_of(column: str) -> str:
    """SQL: the bit of the workload named in `column`."""
    return _case(column, {f"'{w}'": str(bit) for w, bit in BIT.items()})


def _case(column: str, values: dict[str, str]) -> str:
    """SQL: what `values` gives for the value of `column`."""
    return f"CASE {column} {' '.join(f'WHEN {key} THEN {value}' for key, value in values.items())} END"


# Each SKU's workloads (the rows of ProductWorkload are unique, so their sum is their union).
PRODUCT_WORKLOADS = f"""(SELECT pw.product_id, SUM({bit_of("pw.workload")}) AS workloads
    FROM customers_productworkload pw GROUP BY pw.product_id)"""

TEMP_TABLES = {
    # Users with activity in the window W(D) = D-27 … D, and the workloads of that activity.
    "metric_active_users": "user_id bigint NOT NULL, workloads integer NOT NULL",
    # One row per customer, insight-family SKU and user holding an assignment of that SKU that
    # overlaps W(D): entitled = current, active, on a counted subscription; active = activity in
    # W(D) on a workload the SKU includes; alerted = the partner did not exclude the SKU;
    # workloads = the SKU's; active_workloads = those of them with the user's activity in W(D).
    "metric_user_facts": (
        "customer_id bigint NOT NULL, product_id bigint NOT NULL, user_id bigint NOT NULL, "
        "entitled integer NOT NULL, active integer NOT NULL, alerted integer NOT NULL, "
        "workloads integer NOT NULL, active_workloads integer NOT NULL"
    ),
    # Users entitled on alerted SKUs without activity on their workloads in W(D), with their last
    # activity on those workloads in the longest inactivity period (empty: none in it).
    "metric_idle_users": "customer_id bigint NOT NULL, user_id bigint NOT NULL, last_date date",
}

# A user's workloads are the union of their activity's bits in the window: PostgreSQL's BIT_OR
# takes it in one pass over the window (a third faster than two aggregations); SQLite has no
# BIT_OR, so there the distinct (user, workload) pairs' bits are summed.
_ACTIVITY_IN_WINDOW = (
    "customers_activity act WHERE act.partner_id = %(p)s AND act.activity_date BETWEEN %(w)s AND %(d)s"
)
ACTIVE_USERS = {
    "postgresql": f"""
        INSERT INTO metric_active_users (user_id, workloads)
        SELECT act.user_id, BIT_OR({bit_of("act.workload")}) FROM {_ACTIVITY_IN_WINDOW}
        GROUP BY act.user_id""",
    "sqlite": f"""
        INSERT INTO metric_active_users (user_id, workloads)
        SELECT pairs.user_id, SUM({bit_of("pairs.workload")})
        FROM (SELECT DISTINCT act.user_id, act.workload FROM {_ACTIVITY_IN_WINDOW}) pairs
        GROUP BY pairs.user_id""",
}

USER_FACTS = f"""
    INSERT INTO metric_user_facts (customer_id, product_id, user_id, entitled, active, alerted, workloads,
        active_workloads)
    SELECT s.customer_id, s.product_id, a.user_id,
           MAX(CASE WHEN a.state = 'active' AND {CURRENT} AND {COUNTED} THEN 1 ELSE 0 END),
           MAX(CASE WHEN (pm.workloads & au.workloads) <> 0 THEN 1 ELSE 0 END),
           MIN(CASE WHEN x.id IS NULL THEN 1 ELSE 0 END),
           MAX(COALESCE(pm.workloads, 0)),
           MAX(COALESCE(pm.workloads & au.workloads, 0))
    FROM customers_licenseassignment a
    JOIN customers_subscription s ON s.id = a.subscription_id
    JOIN customers_product pr ON pr.id = s.product_id AND pr.family IN {INSIGHT_FAMILIES}
    LEFT JOIN metrics_skusetting x ON x.partner_id = %(p)s AND x.sku = pr.sku AND x.excluded
    LEFT JOIN {PRODUCT_WORKLOADS} pm ON pm.product_id = s.product_id
    LEFT JOIN metric_active_users au ON au.user_id = a.user_id
    WHERE a.partner_id = %(p)s AND a.assigned_on <= %(d)s AND (a.removed_on IS NULL OR a.removed_on > %(w)s)
    GROUP BY s.customer_id, s.product_id, a.user_id"""

SKU_GRAIN = f"""
    INSERT INTO metrics_skusnapshot (partner_id, customer_id, product_id, as_of, sold_licenses,
        own_sold_licenses, assigned_licenses, entitled_users, active_users)
    SELECT %(p)s, customer_id, product_id, %(d)s, SUM(sold), SUM(own_sold), SUM(assigned), SUM(entitled),
           SUM(active)
    FROM (
        SELECT s.customer_id, s.product_id, s.quantity AS sold,
               CASE WHEN s.source = 'own' THEN s.quantity ELSE 0 END AS own_sold,
               0 AS assigned, 0 AS entitled, 0 AS active
        FROM customers_subscription s
        JOIN customers_product pr ON pr.id = s.product_id AND pr.family IN {INSIGHT_FAMILIES}
        WHERE s.partner_id = %(p)s AND {COUNTED}
        UNION ALL
        SELECT s.customer_id, s.product_id, 0, 0, 1, 0, 0
        FROM customers_licenseassignment a
        JOIN customers_subscription s ON s.id = a.subscription_id
        JOIN customers_product pr ON pr.id = s.product_id AND pr.family IN {INSIGHT_FAMILIES}
        WHERE a.partner_id = %(p)s AND a.state IN ('active', 'suspended') AND {CURRENT} AND {COUNTED}
        UNION ALL
        SELECT customer_id, product_id, 0, 0, 0, entitled, active FROM metric_user_facts
    ) k
    GROUP BY customer_id, product_id
    HAVING SUM(sold) + SUM(assigned) + SUM(entitled) + SUM(active) > 0"""

# Sums over the family's SKUs for licenses; distinct users over them for people. The rec_*
# columns repeat that without the SKUs the partner excluded (what recommendations read).
FAMILY_GRAIN = """
    INSERT INTO metrics_familysnapshot (partner_id, customer_id, family, as_of, sold_licenses,
        own_sold_licenses, assigned_licenses, entitled_users, active_users,
        rec_sold_licenses, rec_assigned_licenses, rec_entitled_users, rec_active_users)
    SELECT %(p)s, customer_id, family, %(d)s, SUM(sold), SUM(own_sold), SUM(assigned), SUM(entitled), SUM(active),
           SUM(rec_sold), SUM(rec_assigned), SUM(rec_entitled), SUM(rec_active)
    FROM (
        SELECT k.customer_id, pr.family, k.sold_licenses AS sold, k.own_sold_licenses AS own_sold,
               k.assigned_licenses AS assigned, 0 AS entitled, 0 AS active,
               CASE WHEN x.id IS NULL THEN k.sold_licenses ELSE 0 END AS rec_sold,
               CASE WHEN x.id IS NULL THEN k.assigned_licenses ELSE 0 END AS rec_assigned,
               0 AS rec_entitled, 0 AS rec_active
        FROM metrics_skusnapshot k JOIN customers_product pr ON pr.id = k.product_id
        LEFT JOIN metrics_skusetting x ON x.partner_id = %(p)s AND x.sku = pr.sku AND x.excluded
        WHERE k.partner_id = %(p)s AND k.as_of = %(d)s
        UNION ALL
        SELECT f.customer_id, pr.family, 0, 0, 0, MAX(f.entitled), MAX(f.active), 0, 0,
               MAX(f.entitled * f.alerted), MAX(f.active * f.alerted)
        FROM metric_user_facts f JOIN customers_product pr ON pr.id = f.product_id
        GROUP BY f.customer_id, pr.family, f.user_id
    ) k
    GROUP BY customer_id, family
    HAVING SUM(sold) + SUM(assigned) + SUM(entitled) + SUM(active) > 0"""


# Entitled and active per workload through the SKUs that include it: per user, a flag per
# workload (a user counts once however many SKUs include it), summed per customer, then a row per
# workload. Yammer is license-free, so every user of the customer with Yammer activity counts as
# active there.
def _user_flags(flags: Callable[[str, int], tuple[str, str]]) -> str:
    """SQL: the columns e_<workload>, a_<workload> (entitled, active) that `flags` gives per
    workload and its bit."""
    return ", ".join(
        f"{entitled} AS e_{w}, {active} AS a_{w}" for w in WORKLOADS for entitled, active in [flags(w, BIT[w])]
    )


def _per_workload(column: str) -> str:
    return _case("w.workload", {f"'{w}'": f"c.{column}_{w}" for w in WORKLOADS})


_LICENSED_FLAGS = _user_flags(
    lambda w, bit: (
        f"MAX(CASE WHEN f.entitled = 1 AND (f.workloads & {bit}) <> 0 THEN 1 ELSE 0 END)",
        "0" if w == Workload.YAMMER else f"MAX(CASE WHEN (f.active_workloads & {bit}) <> 0 THEN 1 ELSE 0 END)",
    )
)
_YAMMER_FLAGS = _user_flags(lambda w, _bit: ("0", "1" if w == Workload.YAMMER else "0"))
_CUSTOMER_SUMS = ", ".join(f"SUM(e_{w}) AS e_{w}, SUM(a_{w}) AS a_{w}" for w in WORKLOADS)
_WORKLOAD_LIST = " UNION ALL ".join(f"SELECT '{w}' AS workload" for w in WORKLOADS)
WORKLOAD_GRAIN = f"""
    INSERT INTO metrics_workloadsnapshot (partner_id, customer_id, workload, as_of, entitled_users, active_users)
    SELECT %(p)s, customer_id, workload, %(d)s, entitled, active
    FROM (
        SELECT c.customer_id, w.workload, {_per_workload("e")} AS entitled, {_per_workload("a")} AS active
        FROM (
            SELECT customer_id, {_CUSTOMER_SUMS}
            FROM (
                SELECT f.customer_id, {_LICENSED_FLAGS}
                FROM metric_user_facts f
                GROUP BY f.customer_id, f.user_id
                UNION ALL
                SELECT u.customer_id, {_YAMMER_FLAGS}
                FROM metric_active_users au JOIN customers_enduser u ON u.id = au.user_id
                WHERE (au.workloads & {BIT[Workload.YAMMER]}) <> 0
            ) per_user
            GROUP BY customer_id
        ) c
        CROSS JOIN ({_WORKLOAD_LIST}) w
    ) per_workload
    WHERE entitled + active > 0"""

# Inactive licensed users (SPEC §8): a user active in W(D) on a workload of their alerted SKUs is
# active for every period (the shortest is 30 days), so only the others are looked up further
# back, one probe per license through the activity primary key (user_id, activity_date, workload):
# few rows, since they are idle, kept when their workload is one of the SKU's. A user whose SKUs
# include no workload is idle with no last date. The probe is keyed by users taken from the
# partner's own rows alone: a partner_id term there made SQLite read the partner's activity by
# date for every user (minutes a date on the demo data).
IDLE_USERS = f"""
    INSERT INTO metric_idle_users (customer_id, user_id, last_date)
    SELECT idle.customer_id, idle.user_id, MAX(act.activity_date)
    FROM (
        SELECT customer_id, user_id FROM metric_user_facts WHERE entitled = 1 AND alerted = 1
        GROUP BY customer_id, user_id HAVING MAX(active) = 0
    ) idle
    JOIN metric_user_facts f ON f.user_id = idle.user_id AND f.entitled = 1 AND f.alerted = 1
    LEFT JOIN customers_activity act ON act.user_id = idle.user_id
        AND act.activity_date BETWEEN %(lookback)s AND %(d)s AND (f.workloads & {bit_of("act.workload")}) <> 0
    GROUP BY idle.customer_id, idle.user_id"""


# Per customer (each user once, no product) and per alerted SKU the users hold: how many are idle
# since D-N+1 for each period N. `last_date` is never after D-28, so users active in W(D) never
# count, and a user idle for a longer period is idle for the shorter ones: a group with nobody
# idle for the shortest has nobody idle at all.
def _idle_count(days: int) -> str:
    return f"SUM(CASE WHEN i.last_date IS NULL OR i.last_date < %(since_{days})s THEN 1 ELSE 0 END)"


_IDLE_COUNTS = ", ".join(_idle_count(days) for days in INACTIVITY_DAYS)
INACTIVE_GRAIN = f"""
    INSERT INTO metrics_inactivesnapshot (partner_id, customer_id, product_id, as_of,
        {", ".join(InactiveSnapshot.column(days) for days in INACTIVITY_DAYS)})
    SELECT %(p)s, i.customer_id, NULL, %(d)s, {_IDLE_COUNTS}
    FROM metric_idle_users i
    GROUP BY i.customer_id
    HAVING {_idle_count(INACTIVITY_DAYS[0])} > 0
    UNION ALL
    SELECT %(p)s, i.customer_id, f.product_id, %(d)s, {_IDLE_COUNTS}
    FROM metric_idle_users i
    JOIN metric_user_facts f ON f.user_id = i.user_id AND f.entitled = 1 AND f.alerted = 1
    GROUP BY i.customer_id, f.product_id
    HAVING {_idle_count(INACTIVITY_DAYS[0])} > 0"""

# Sums of the customers' family rows: percentages come from these sums, never from a mean.
PORTFOLIO_GRAIN = """
    INSERT INTO metrics_portfoliosnapshot (partner_id, family, as_of, sold_licenses, own_sold_licenses,
        assigned_licenses, entitled_users, active_users, customers)
    SELECT %(p)s, family, %(d)s, SUM(sold_licenses), SUM(own_sold_licenses), SUM(assigned_licenses),
           SUM(entitled_users), SUM(active_users), COUNT(*)
    FROM metrics_familysnapshot WHERE partner_id = %(p)s AND as_of = %(d)s
    GROUP BY family"""

SNAPSHOT_TABLES = (
    "metrics_inactivesnapshot",
    "metrics_portfoliosnapshot",
    "metrics_familysnapshot",
    "metrics_workloadsnapshot",
    "metrics_skusnapshot",
)
# The statements of a date in order, each with the temporary table it fills when that table is
# read afterwards (to be analyzed), the first one by database.
STATEMENTS: tuple[tuple[str | dict[str, str], str | None], ...] = (
    (ACTIVE_USERS, "metric_active_users"),
    (USER_FACTS, "metric_user_facts"),
    (SKU_GRAIN, None),
    (FAMILY_GRAIN, None),
    (WORKLOAD_GRAIN, None),
    (PORTFOLIO_GRAIN, None),
    (IDLE_USERS, "metric_idle_users"),
    (INACTIVE_GRAIN, None),
)


def set_work_mem(cursor: CursorWrapper) -> None:
    """Gives the rest of the current transaction METRICS_WORK_MEM for its sorts and hashes
    (PostgreSQL; SQLite has no such setting)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.METRICS_WORK_MEM])


def compute_date(*, partner_id: int, as_of: dt.date) -> None:
    """Replaces every snapshot of `partner_id` at `as_of`. Call inside a transaction."""
    params = {
        "p": partner_id,
        "d": as_of,
        "w": as_of - dt.timedelta(days=WINDOW_DAYS - 1),
        "lookback": as_of - dt.timedelta(days=LOOKBACK_DAYS - 1),
        **{f"since_{days}": as_of - dt.timedelta(days=days - 1) for days in INACTIVITY_DAYS},
    }
    with connection.cursor() as cursor:
        set_work_mem(cursor)
        for table, columns in TEMP_TABLES.items():
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"CREATE TEMPORARY TABLE {table} ({columns})")
        for table in SNAPSHOT_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE partner_id = %(p)s AND as_of = %(d)s", params)
        for statement, filled in STATEMENTS:
            cursor.execute(statement[connection.vendor] if isinstance(statement, dict) else statement, params)
            if filled and connection.vendor == "postgresql":
                # Autovacuum never analyzes temporary tables: without statistics the planner
                # guesses a few rows and joins them by nested loops.
                cursor.execute(f"ANALYZE {filled}")
        for table in TEMP_TABLES:
            cursor.execute(f"DROP TABLE {table}")

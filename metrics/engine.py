"""The metric engine: every number of SPEC §2 for one partner and one date, set-based.

A date is a fixed list of steps whatever the number of customers and users: each step is one
`INSERT … SELECT` into a work table (user-level facts) or a snapshot model (a grain). The
meaning of each number comes from `metrics.definitions`; the columns a step writes come from its
target. The caller (`metrics.services`) runs a date in one transaction after deleting it, so
readers never see a half-written day. PostgreSQL and SQLite run the same statements.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings
from django.db import connection, models

from customers.models import Workload
from metrics.definitions import (
    BIT,
    WINDOW_DAYS,
    WORKLOADS,
    assigns,
    counted,
    entitles,
    excluded_sku,
    in_window,
    overlaps_window,
    product_workloads,
    shown_family,
    window_start,
    workload_bit,
)
from metrics.models import (
    FamilySnapshot,
    InactiveSnapshot,
    InactivityDays,
    PortfolioSnapshot,
    SkuSnapshot,
    WorkloadSnapshot,
)

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

logger = structlog.get_logger(__name__)

INACTIVITY_DAYS = sorted(InactivityDays.values)  # the periods of SPEC §8, shortest first
LOOKBACK_DAYS = max(WINDOW_DAYS, INACTIVITY_DAYS[-1])  # how far back a date's snapshots read activity


@dataclass(frozen=True)
class WorkTable:
    """A temporary table that a date's steps fill and read; created and dropped around the date."""

    name: str
    columns: Mapping[str, str]  # column -> SQL type

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)


@dataclass(frozen=True)
class Step:
    """One statement of a date: the SELECT fills every column of `target` (a snapshot model, whose
    concrete columns but the automatic id are written, or a work table), each named by an alias.
    `select` maps a database vendor to its SQL when they differ. `reads` names the tables it reads."""

    name: str
    target: type[models.Model] | WorkTable
    select: str | Mapping[str, str]
    reads: tuple[str, ...]

    @property
    def table(self) -> str:
        return self.target.name if isinstance(self.target, WorkTable) else self.target._meta.db_table

    @property
    def columns(self) -> tuple[str, ...]:
        if isinstance(self.target, WorkTable):
            return self.target.column_names
        return tuple(f.column for f in self.target._meta.concrete_fields if not f.primary_key)

    def sql(self, vendor: str) -> str:
        select = self.select if isinstance(self.select, str) else self.select[vendor]
        columns = ", ".join(self.columns)
        return f"INSERT INTO {self.table} ({columns}) SELECT {columns} FROM ({select}) step"


# Users with activity in W(D), and the workloads of that activity.
ACTIVE_USERS_TABLE = WorkTable("metric_active_users", {"user_id": "bigint NOT NULL", "workloads": "integer NOT NULL"})
# Per customer, shown SKU and user with an assignment of it overlapping W(D): entitled, active,
# alerted (the SKU is not excluded), the SKU's workloads and those the user was active on.
USER_FACTS_TABLE = WorkTable(
    "metric_user_facts",
    {
        "customer_id": "bigint NOT NULL",
        "product_id": "bigint NOT NULL",
        "user_id": "bigint NOT NULL",
        "entitled": "integer NOT NULL",
        "active": "integer NOT NULL",
        "alerted": "integer NOT NULL",
        "workloads": "integer NOT NULL",
        "active_workloads": "integer NOT NULL",
    },
)
# Users entitled on alerted SKUs without activity on their workloads in W(D), with their last
# activity on those workloads in the longest inactivity period (empty: none in it).
IDLE_USERS_TABLE = WorkTable(
    "metric_idle_users", {"customer_id": "bigint NOT NULL", "user_id": "bigint NOT NULL", "last_date": "date"}
)
WORK_TABLES = (ACTIVE_USERS_TABLE, USER_FACTS_TABLE, IDLE_USERS_TABLE)

# PostgreSQL's BIT_OR takes a user's workloads in one pass over the window; SQLite has no BIT_OR,
# so there the distinct (user, workload) pairs' bits are summed.
_WINDOW_ACTIVITY = f"customers_activity act WHERE act.partner_id = %(partner_id)s AND {in_window('act')}"
ACTIVE_USERS = Step(
    "active users",
    ACTIVE_USERS_TABLE,
    {
        "postgresql": f"""SELECT act.user_id, BIT_OR({workload_bit("act.workload")}) AS workloads
            FROM {_WINDOW_ACTIVITY} GROUP BY act.user_id""",
        "sqlite": f"""SELECT pairs.user_id, SUM({workload_bit("pairs.workload")}) AS workloads
            FROM (SELECT DISTINCT act.user_id, act.workload FROM {_WINDOW_ACTIVITY}) pairs
            GROUP BY pairs.user_id""",
    },
    reads=("customers_activity",),
)

USER_FACTS = Step(
    "user facts",
    USER_FACTS_TABLE,
    f"""SELECT s.customer_id, s.product_id, a.user_id,
               MAX(CASE WHEN {entitles("a", "s")} THEN 1 ELSE 0 END) AS entitled,
               MAX(CASE WHEN (pm.workloads & au.workloads) <> 0 THEN 1 ELSE 0 END) AS active,
               MIN(CASE WHEN x.id IS NULL THEN 1 ELSE 0 END) AS alerted,
               MAX(COALESCE(pm.workloads, 0)) AS workloads,
               MAX(COALESCE(pm.workloads & au.workloads, 0)) AS active_workloads
        FROM customers_licenseassignment a
        JOIN customers_subscription s ON s.id = a.subscription_id
        JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
        LEFT JOIN metrics_skusetting x ON {excluded_sku("x", "pr")}
        LEFT JOIN {product_workloads()} pm ON pm.product_id = s.product_id
        LEFT JOIN metric_active_users au ON au.user_id = a.user_id
        WHERE a.partner_id = %(partner_id)s AND {overlaps_window("a")}
        GROUP BY s.customer_id, s.product_id, a.user_id""",
    reads=(
        "customers_licenseassignment",
        "customers_subscription",
        "customers_product",
        "metrics_skusetting",
        "customers_productworkload",
        "metric_active_users",
    ),
)

# Seats sold and assigned come from the subscriptions and assignments, people from the facts.
SKU_GRAIN = Step(
    "SKU grain",
    SkuSnapshot,
    f"""SELECT %(partner_id)s AS partner_id, customer_id, product_id, %(as_of)s AS as_of,
               SUM(sold) AS sold_licenses, SUM(own_sold) AS own_sold_licenses, SUM(assigned) AS assigned_licenses,
               SUM(entitled) AS entitled_users, SUM(active) AS active_users
        FROM (
            SELECT s.customer_id, s.product_id, s.quantity AS sold,
                   CASE WHEN s.source = 'own' THEN s.quantity ELSE 0 END AS own_sold,
                   0 AS assigned, 0 AS entitled, 0 AS active
            FROM customers_subscription s
            JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
            WHERE s.partner_id = %(partner_id)s AND {counted("s")}
            UNION ALL
            SELECT s.customer_id, s.product_id, 0, 0, 1, 0, 0
            FROM customers_licenseassignment a
            JOIN customers_subscription s ON s.id = a.subscription_id
            JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
            WHERE a.partner_id = %(partner_id)s AND {assigns("a", "s")}
            UNION ALL
            SELECT customer_id, product_id, 0, 0, 0, entitled, active FROM metric_user_facts
        ) k
        GROUP BY customer_id, product_id
        HAVING SUM(sold) + SUM(assigned) + SUM(entitled) + SUM(active) > 0""",
    reads=("customers_subscription", "customers_product", "customers_licenseassignment", "metric_user_facts"),
)

# Licenses are summed over the family's SKUs, people counted once over them (SPEC §2). The rec_*
# columns repeat that without the SKUs the partner excluded: what recommendations read.
FAMILY_GRAIN = Step(
    "family grain",
    FamilySnapshot,
    f"""SELECT %(partner_id)s AS partner_id, customer_id, family, %(as_of)s AS as_of,
               SUM(sold) AS sold_licenses, SUM(own_sold) AS own_sold_licenses, SUM(assigned) AS assigned_licenses,
               SUM(entitled) AS entitled_users, SUM(active) AS active_users,
               SUM(rec_sold) AS rec_sold_licenses, SUM(rec_assigned) AS rec_assigned_licenses,
               SUM(rec_entitled) AS rec_entitled_users, SUM(rec_active) AS rec_active_users
        FROM (
            SELECT k.customer_id, pr.family, k.sold_licenses AS sold, k.own_sold_licenses AS own_sold,
                   k.assigned_licenses AS assigned, 0 AS entitled, 0 AS active,
                   CASE WHEN x.id IS NULL THEN k.sold_licenses ELSE 0 END AS rec_sold,
                   CASE WHEN x.id IS NULL THEN k.assigned_licenses ELSE 0 END AS rec_assigned,
                   0 AS rec_entitled, 0 AS rec_active
            FROM metrics_skusnapshot k JOIN customers_product pr ON pr.id = k.product_id
            LEFT JOIN metrics_skusetting x ON {excluded_sku("x", "pr")}
            WHERE k.partner_id = %(partner_id)s AND k.as_of = %(as_of)s
            UNION ALL
            SELECT f.customer_id, pr.family, 0, 0, 0, MAX(f.entitled), MAX(f.active), 0, 0,
                   MAX(f.entitled * f.alerted), MAX(f.active * f.alerted)
            FROM metric_user_facts f JOIN customers_product pr ON pr.id = f.product_id
            GROUP BY f.customer_id, pr.family, f.user_id
        ) k
        GROUP BY customer_id, family
        HAVING SUM(sold) + SUM(assigned) + SUM(entitled) + SUM(active) > 0""",
    reads=("metrics_skusnapshot", "customers_product", "metrics_skusetting", "metric_user_facts"),
)


def _user_flags(flags: Callable[[str, int], tuple[str, str]]) -> str:
    """SQL: the columns e_<workload>, a_<workload> (entitled, active) that `flags` gives per
    workload and its bit."""
    return ", ".join(
        f"{entitled} AS e_{w}, {active} AS a_{w}" for w in WORKLOADS for entitled, active in [flags(w, BIT[w])]
    )


def _per_workload(column: str) -> str:
    cases = " ".join(f"WHEN '{w}' THEN c.{column}_{w}" for w in WORKLOADS)
    return f"CASE w.workload {cases} END"


_LICENSED_FLAGS = _user_flags(
    lambda w, bit: (
        f"MAX(CASE WHEN f.entitled = 1 AND (f.workloads & {bit}) <> 0 THEN 1 ELSE 0 END)",
        "0" if w == Workload.YAMMER else f"MAX(CASE WHEN (f.active_workloads & {bit}) <> 0 THEN 1 ELSE 0 END)",
    )
)
_YAMMER_FLAGS = _user_flags(lambda w, _bit: ("0", "1" if w == Workload.YAMMER else "0"))
_CUSTOMER_SUMS = ", ".join(f"SUM(e_{w}) AS e_{w}, SUM(a_{w}) AS a_{w}" for w in WORKLOADS)
_WORKLOAD_LIST = " UNION ALL ".join(f"SELECT '{w}' AS workload" for w in WORKLOADS)
# Per user a flag per workload (a user counts once however many SKUs include it), summed per
# customer, then a row per workload. Yammer is license-free: every user with Yammer activity counts.
WORKLOAD_GRAIN = Step(
    "workload grain",
    WorkloadSnapshot,
    f"""SELECT %(partner_id)s AS partner_id, customer_id, workload, %(as_of)s AS as_of,
               entitled AS entitled_users, active AS active_users
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
        WHERE entitled + active > 0""",
    reads=("metric_user_facts", "metric_active_users", "customers_enduser"),
)

# Sums of the customers' family rows: percentages come from these sums, never from a mean.
PORTFOLIO_GRAIN = Step(
    "portfolio grain",
    PortfolioSnapshot,
    """SELECT %(partner_id)s AS partner_id, family, %(as_of)s AS as_of,
              SUM(sold_licenses) AS sold_licenses, SUM(own_sold_licenses) AS own_sold_licenses,
              SUM(assigned_licenses) AS assigned_licenses, SUM(entitled_users) AS entitled_users,
              SUM(active_users) AS active_users, COUNT(*) AS customers
       FROM metrics_familysnapshot WHERE partner_id = %(partner_id)s AND as_of = %(as_of)s
       GROUP BY family""",
    reads=("metrics_familysnapshot",),
)

# A user active in W(D) is active for every period of SPEC §8 (the shortest is 30 days), so only
# the others are probed further back, one probe per license through the activity primary key.
IDLE_USERS = Step(
    "idle users",
    IDLE_USERS_TABLE,
    f"""SELECT idle.customer_id, idle.user_id, MAX(act.activity_date) AS last_date
        FROM (
            SELECT customer_id, user_id FROM metric_user_facts WHERE entitled = 1 AND alerted = 1
            GROUP BY customer_id, user_id HAVING MAX(active) = 0
        ) idle
        JOIN metric_user_facts f ON f.user_id = idle.user_id AND f.entitled = 1 AND f.alerted = 1
        LEFT JOIN customers_activity act ON act.user_id = idle.user_id
            AND act.activity_date BETWEEN %(lookback_start)s AND %(as_of)s
            AND (f.workloads & {workload_bit("act.workload")}) <> 0
        GROUP BY idle.customer_id, idle.user_id""",
    reads=("metric_user_facts", "customers_activity"),
)


def _idle_count(days: int) -> str:
    return f"SUM(CASE WHEN i.last_date IS NULL OR i.last_date < %(idle_since_{days})s THEN 1 ELSE 0 END)"


# Per customer (each user once, no product) and per alerted SKU the users hold: how many are idle
# for each period. A group with nobody idle for the shortest period has nobody idle at all.
_IDLE_COUNTS = ", ".join(f"{_idle_count(days)} AS {InactiveSnapshot.column(days)}" for days in INACTIVITY_DAYS)
INACTIVE_GRAIN = Step(
    "inactive users",
    InactiveSnapshot,
    f"""SELECT %(partner_id)s AS partner_id, i.customer_id, NULL AS product_id, %(as_of)s AS as_of, {_IDLE_COUNTS}
        FROM metric_idle_users i
        GROUP BY i.customer_id
        HAVING {_idle_count(INACTIVITY_DAYS[0])} > 0
        UNION ALL
        SELECT %(partner_id)s, i.customer_id, f.product_id, %(as_of)s, {_IDLE_COUNTS}
        FROM metric_idle_users i
        JOIN metric_user_facts f ON f.user_id = i.user_id AND f.entitled = 1 AND f.alerted = 1
        GROUP BY i.customer_id, f.product_id
        HAVING {_idle_count(INACTIVITY_DAYS[0])} > 0""",
    reads=("metric_idle_users", "metric_user_facts"),
)

# The steps of a date, in order.
STEPS: tuple[Step, ...] = (
    ACTIVE_USERS,
    USER_FACTS,
    SKU_GRAIN,
    FAMILY_GRAIN,
    WORKLOAD_GRAIN,
    PORTFOLIO_GRAIN,
    IDLE_USERS,
    INACTIVE_GRAIN,
)
SNAPSHOT_TABLES = tuple(step.table for step in STEPS if not isinstance(step.target, WorkTable))


def parameters(*, partner_id: int, as_of: dt.date) -> dict[str, Any]:
    """The named parameters of a date's statements."""
    return {
        "partner_id": partner_id,
        "as_of": as_of,
        "window_start": window_start(as_of),
        "lookback_start": as_of - dt.timedelta(days=LOOKBACK_DAYS - 1),
        **{f"idle_since_{days}": as_of - dt.timedelta(days=days - 1) for days in INACTIVITY_DAYS},
    }


def set_work_mem(cursor: CursorWrapper) -> None:
    """Gives the rest of the current transaction METRICS_WORK_MEM for its sorts and hashes
    (PostgreSQL; SQLite has no such setting)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.METRICS_WORK_MEM])


def compute_date(*, partner_id: int, as_of: dt.date) -> None:
    """Replaces every snapshot of `partner_id` at `as_of`. Call inside a transaction."""
    params = parameters(partner_id=partner_id, as_of=as_of)
    with connection.cursor() as cursor:
        set_work_mem(cursor)
        for work_table in WORK_TABLES:
            columns = ", ".join(f"{name} {kind}" for name, kind in work_table.columns.items())
            cursor.execute(f"DROP TABLE IF EXISTS {work_table.name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {work_table.name} ({columns})")
        started, deleted = time.monotonic(), 0
        for table in SNAPSHOT_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE partner_id = %(partner_id)s AND as_of = %(as_of)s", params)
            deleted += max(cursor.rowcount, 0)
        logger.info(
            "recompute_phase",
            phase="delete",
            partner_id=partner_id,
            as_of=as_of.isoformat(),
            rows=deleted,
            duration_ms=_ms_since(started),
        )
        for step in STEPS:
            _run(cursor, step, params, partner_id=partner_id, as_of=as_of)
        for work_table in WORK_TABLES:
            cursor.execute(f"DROP TABLE {work_table.name}")


def _run(cursor: CursorWrapper, step: Step, params: dict[str, Any], *, partner_id: int, as_of: dt.date) -> None:
    started = time.monotonic()
    cursor.execute(step.sql(connection.vendor), params)
    logger.info(
        "recompute_phase",
        phase=step.name,
        partner_id=partner_id,
        as_of=as_of.isoformat(),
        rows=cursor.rowcount,
        duration_ms=_ms_since(started),
    )
    if isinstance(step.target, WorkTable) and connection.vendor == "postgresql":
        # Autovacuum never analyzes temporary tables: without statistics the planner guesses a
        # few rows and joins them by nested loops.
        cursor.execute(f"ANALYZE {step.table}")


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)

"""What each number of SPEC §2 means, in SQL: the one home of every metric's definition.

The engine, the selectors, the >100% explanation and the benchmark build their statements from
these fragments. A fragment takes the aliases of its tables and reads the statement's named
parameters: `%(partner_id)s`, `%(as_of)s` (D) and `%(window_start)s` (D−27, the first day of W(D)).
"""

from __future__ import annotations

import datetime as dt

from customers.models import INSIGHT_FAMILIES, Workload

WINDOW_DAYS = 28
WORKLOADS: tuple[str, ...] = tuple(Workload.values)
# Sets of workloads are integers, a bit per workload: a user's or a SKU's workloads are one value,
# and "active on a workload of the SKU" is one `&` (both databases have it).
BIT: dict[str, int] = {workload: 1 << n for n, workload in enumerate(WORKLOADS)}


def window_start(as_of: dt.date) -> dt.date:
    """The first day of the window W(D) = D−27 … D (SPEC §2)."""
    return as_of - dt.timedelta(days=WINDOW_DAYS - 1)


def counted(s: str = "s") -> str:
    """SPEC §2 "counted": subscription `s` is active, not a trial, started (or its start is
    unknown) and not ended at D."""
    return (
        f"({s}.status = 'active' AND NOT {s}.is_trial"
        f" AND ({s}.start_date IS NULL OR {s}.start_date <= %(as_of)s)"
        f" AND ({s}.end_date IS NULL OR {s}.end_date >= %(as_of)s))"
    )


def current(a: str = "a") -> str:
    """SPEC §2 "current": assignment `a` was assigned on or before D and not removed by D."""
    return f"({a}.assigned_on <= %(as_of)s AND ({a}.removed_on IS NULL OR {a}.removed_on > %(as_of)s))"


def overlaps_window(a: str = "a") -> str:
    """SPEC §2 "overlaps W(D)": assignment `a` began by D and was not removed before D−27."""
    return f"({a}.assigned_on <= %(as_of)s AND ({a}.removed_on IS NULL OR {a}.removed_on > %(window_start)s))"


def entitles(a: str = "a", s: str = "s") -> str:
    """SPEC §2 entitled_users: assignment `a` is active, current, on counted subscription `s`."""
    return f"({a}.state = 'active' AND {current(a)} AND {counted(s)})"


def assigns(a: str = "a", s: str = "s") -> str:
    """SPEC §2 assigned_licenses: assignment `a` is active or suspended, current, on counted `s`."""
    return f"({a}.state IN ('active', 'suspended') AND {current(a)} AND {counted(s)})"


def in_window(act: str = "act") -> str:
    """SPEC §2 active_users: activity `act` falls in W(D)."""
    return f"({act}.activity_date BETWEEN %(window_start)s AND %(as_of)s)"


SHOWN_FAMILIES = "(" + ", ".join(f"'{family.value}'" for family in INSIGHT_FAMILIES) + ")"


def shown_family(pr: str = "pr") -> str:
    """SPEC §1: product `pr` is of a family shown in insights and exports (office365, dynamics365)."""
    return f"{pr}.family IN {SHOWN_FAMILIES}"


def workload_bit(column: str) -> str:
    """The bit (BIT) of the workload named in `column`."""
    cases = " ".join(f"WHEN '{workload}' THEN {bit}" for workload, bit in BIT.items())
    return f"CASE {column} {cases} END"


def product_workloads() -> str:
    """A derived table (product_id, workloads): each SKU's workloads as bits (ProductWorkload rows
    are unique, so their sum is their union)."""
    return (
        f"(SELECT pw.product_id, SUM({workload_bit('pw.workload')}) AS workloads"
        " FROM customers_productworkload pw GROUP BY pw.product_id)"
    )


def excluded_sku(x: str, pr: str = "pr") -> str:
    """SPEC §8 "excluded SKUs": the join condition of the partner's setting `x` that excludes
    product `pr` from recommendations and alerts (no row joined: not excluded)."""
    return f"{x}.partner_id = %(partner_id)s AND {x}.sku = {pr}.sku AND {x}.excluded"

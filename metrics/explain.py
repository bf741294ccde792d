"""Why usage passes 100% for one customer (SPEC §2): the active users who are not entitled,
counted by the cause the source document names, computed from the data.

Each active, non-entitled user of a SKU is given the first cause that fits, in the order of
CAUSES: a trial assignment, an assignment on a subscription in grace / disabled /
pre-provisioned status, a license removed from them inside the window (it moved to someone
else), or another reason (a suspended or upgraded assignment, a subscription not yet started or
already ended). Yammer is license-free: its active users without any license that includes
Yammer are counted apart, at the workload grain.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from customers.models import Customer
from metrics.definitions import entitles, in_window, overlaps_window, shown_family, window_start

CAUSES = {
    "trial": "from trial subscriptions (active, never entitled)",
    "status": "from subscriptions in grace, disabled or pre-provisioned status",
    "moved": "whose license moved to another user within the window",
    "other": "holding a suspended or upgraded license, or one on a subscription not started or ended",
}

# Per SKU and user: assignments of the customer overlapping W(D) whose user was active in W(D)
# on a workload of that SKU, with what kind of assignment made them active.
ACTIVE_USER_SOURCES = f"""
    SELECT pr.sku, a.user_id,
           MAX(CASE WHEN {entitles("a", "s")} THEN 1 ELSE 0 END),
           MAX(CASE WHEN s.is_trial THEN 1 ELSE 0 END),
           MAX(CASE WHEN s.status IN ('grace', 'disabled', 'preprovisioned') THEN 1 ELSE 0 END),
           MAX(CASE WHEN a.removed_on IS NOT NULL AND a.removed_on <= %(as_of)s THEN 1 ELSE 0 END)
    FROM customers_licenseassignment a
    JOIN customers_subscription s ON s.id = a.subscription_id
    JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
    WHERE a.partner_id = %(partner_id)s AND a.customer_id = %(customer_id)s AND {overlaps_window("a")}
      AND EXISTS (
          SELECT 1 FROM customers_activity act
          JOIN customers_productworkload pw ON pw.workload = act.workload AND pw.product_id = s.product_id
          WHERE act.user_id = a.user_id AND {in_window("act")})
    GROUP BY pr.sku, a.user_id"""

# Users of the customer active on Yammer in W(D) who hold no license including Yammer then.
UNLICENSED_YAMMER_USERS = f"""
    SELECT COUNT(DISTINCT act.user_id)
    FROM customers_activity act JOIN customers_enduser u ON u.id = act.user_id
    WHERE act.partner_id = %(partner_id)s AND u.customer_id = %(customer_id)s AND act.workload = 'yammer'
      AND {in_window("act")}
      AND NOT EXISTS (
          SELECT 1 FROM customers_licenseassignment a
          JOIN customers_subscription s ON s.id = a.subscription_id
          JOIN customers_product pr ON pr.id = s.product_id AND {shown_family("pr")}
          JOIN customers_productworkload pw ON pw.product_id = s.product_id AND pw.workload = 'yammer'
          WHERE a.user_id = act.user_id AND {overlaps_window("a")})"""


@dataclass
class Explanation:
    """Active users who are not entitled, per SKU and cause, and unlicensed Yammer users."""

    by_sku: dict[str, Counter[str]] = field(default_factory=dict)
    unlicensed_yammer: int = 0

    def sku_lines(self, sku: str) -> list[tuple[int, str]]:
        """(count, cause) for one SKU, in the order of CAUSES, leaving out zeros."""
        counts = self.by_sku.get(sku, Counter())
        return [(counts[cause], text) for cause, text in CAUSES.items() if counts[cause]]

    def __bool__(self) -> bool:
        return bool(self.by_sku) or bool(self.unlicensed_yammer)


def usage_explanation(*, customer: Customer, as_of: dt.date) -> Explanation:
    """The causes of usage above 100% for `customer` at `as_of`: two SQL statements."""
    params: dict[str, Any] = {
        "partner_id": customer.partner_id,
        "customer_id": customer.pk,
        "as_of": as_of,
        "window_start": window_start(as_of),
    }
    explanation = Explanation()
    with connection.cursor() as cursor:
        cursor.execute(ACTIVE_USER_SOURCES, params)
        for sku, _user, entitled, trial, status, moved in cursor.fetchall():
            if entitled:
                continue
            cause = "trial" if trial else "status" if status else "moved" if moved else "other"
            explanation.by_sku.setdefault(sku, Counter())[cause] += 1
        cursor.execute(UNLICENSED_YAMMER_USERS, params)
        explanation.unlicensed_yammer = cursor.fetchone()[0]
    return explanation

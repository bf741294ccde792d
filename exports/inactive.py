"""The inactive licensed users CSV (SPEC §8): the list a partner needs to reclaim seats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django_scopes import scope

from accounts.models import Partner
from customers.models import Customer
from exports.cells import CsvFile
from metrics.selectors import inactive_user_list

HEADER = (
    "as_of",
    "customer_id",
    "customer_name",
    "upn",
    "display_name",
    "licenses",
    "last_activity_date",
    "monthly_cost",
)
TEXT_COLUMNS = range(6)


def inactive_lines(*, partner: Partner, as_of: dt.date, days: int, customer: Customer | None = None) -> CsvFile:
    """BOM, header, then one line per inactive licensed user at `as_of` (idle for `days` days):
    their licenses space-separated, the last activity date (empty when never active) and the
    monthly cost of their licenses (empty when no unit price is set)."""

    def rows() -> Iterator[tuple[str, ...]]:
        with scope(partner=partner):
            for user in inactive_user_list(partner=partner, as_of=as_of, days=days, customer=customer):
                yield (
                    as_of.isoformat(),
                    user.customer_external_id,
                    user.customer_name,
                    user.upn,
                    user.display_name,
                    " ".join(user.skus),
                    user.last_activity.isoformat() if user.last_activity else "",
                    "" if user.monthly_cost is None else f"{user.monthly_cost:.2f}",
                )

    return CsvFile(HEADER, rows(), TEXT_COLUMNS)

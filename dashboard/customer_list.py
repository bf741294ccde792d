"""The customer list (`/customers/`): every customer of the partner with its latest family-grain
numbers and its recommendation badges, searched, filtered, sorted and paged."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.core.paginator import Page, Paginator

from accounts.models import Partner
from customers.models import Customer, Family
from customers.selectors import CUSTOMER_SORTS, customer_overview
from dashboard.forms import CustomerFilterForm
from metrics.recommendations import Kind
from metrics.selectors import insight_settings, latest_snapshot_date, recommendation_list

CUSTOMERS_PER_PAGE = 50
# Numbers read best largest first; names A to Z.
_DESCENDING_FIRST = set(CUSTOMER_SORTS) - {"name"}


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer  # annotated with its family numbers (customers.selectors.customer_overview)
    recommendations: list[Kind]


@dataclass(frozen=True)
class CustomerListPage:
    page: Page[Customer]
    rows: list[CustomerRow]
    filters: dict[str, str]
    form: CustomerFilterForm
    as_of: dt.date | None
    next_sort: dict[str, str]
    filtered: bool
    family_label: str


def customer_list_page(*, partner: Partner, query: CustomerFilterForm, page_number: str | None) -> CustomerListPage:
    """The page of customers the query string asks for, at the latest snapshot date."""
    filters = query.values()
    as_of = latest_snapshot_date(partner=partner)
    settings = insight_settings(partner=partner)
    # Badges and the recommendation filter follow the family shown (support load: the whole customer).
    found = recommendation_list(partner=partner, as_of=as_of, settings=settings) if as_of else []
    recommendations = [r for r in found if r.family in (filters["family"], "")]
    customers = customer_overview(
        partner=partner,
        as_of=as_of,
        family=filters["family"],
        search=filters["q"],
        usage_band=filters["usage"],
        sort=filters["sort"],
    )
    if filters["kind"]:
        customers = customers.filter(pk__in={r.customer_id for r in recommendations if r.kind == filters["kind"]})
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(page_number)
    kinds: dict[int, set[str]] = defaultdict(set)
    for recommendation in recommendations:
        kinds[recommendation.customer_id].add(recommendation.kind)
    return CustomerListPage(
        page=page,
        rows=[CustomerRow(customer, [kind for kind in Kind if kind in kinds[customer.pk]]) for customer in page],
        filters=filters,
        form=CustomerFilterForm(initial=filters),
        as_of=as_of,
        next_sort={key: _next_sort(key, filters["sort"]) for key in CUSTOMER_SORTS},
        filtered=any(filters[key] for key in ("q", "usage", "kind")),
        family_label=Family(filters["family"]).label,
    )


def _next_sort(key: str, current: str) -> str:
    """A column header's link: the other direction when it sorts already, else its first one."""
    if current.removeprefix("-") == key:
        return key if current.startswith("-") else f"-{key}"
    return f"-{key}" if key in _DESCENDING_FIRST else key

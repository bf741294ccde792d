from collections import defaultdict

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.roles import Action, require_action
from customers import selectors
from customers.forms import CustomerFilterForm
from customers.insights import TREND_DAYS, insights_context
from customers.models import Family
from customers.selectors import CUSTOMER_SORTS
from metrics.models import InactivityDays
from metrics.recommendations import Kind, recommendation_list
from metrics.selectors import as_of_choice, insight_settings, latest_snapshot_date, sku_setting_map

CUSTOMERS_PER_PAGE = 50
# Numbers read best largest first; names A to Z.
_DESCENDING_FIRST = set(CUSTOMER_SORTS) - {"name"}


@require_action(Action.VIEW_INSIGHTS)
def customer_list(request: HttpRequest) -> HttpResponse:
    partner = request.partner
    filters = CustomerFilterForm(request.GET).values()
    as_of = latest_snapshot_date(partner=partner)
    settings = insight_settings(partner=partner)
    # Badges and the recommendation filter follow the family shown (support load: the whole customer).
    recommendations = [
        r
        for r in (recommendation_list(partner=partner, as_of=as_of, settings=settings) if as_of else [])
        if r.family in (filters["family"], "")
    ]
    customers = selectors.customer_overview(
        partner=partner,
        as_of=as_of,
        family=filters["family"],
        search=filters["q"],
        usage_band=filters["usage"],
        sort=filters["sort"],
    )
    if filters["kind"]:
        customers = customers.filter(pk__in={r.customer_id for r in recommendations if r.kind == filters["kind"]})
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    kinds = defaultdict(set)
    for recommendation in recommendations:
        kinds[recommendation.customer_id].add(recommendation.kind)
    for customer in page.object_list:
        customer.recommendations = [kind for kind in Kind if kind in kinds[customer.pk]]
    context = {
        "page": page,
        "filters": filters,
        "form": CustomerFilterForm(initial=filters),
        "as_of": as_of,
        "next_sort": {key: _next_sort(key, filters["sort"]) for key in CUSTOMER_SORTS},
        "filtered": any(filters[key] for key in ("q", "usage", "kind")),
        "family_label": Family(filters["family"]).label,
    }
    return render(request, "customers/customer_list.html", context)


def _next_sort(key: str, current: str) -> str:
    """A column header's link: the other direction when it sorts already, else its first one."""
    if current.removeprefix("-") == key:
        return key if current.startswith("-") else f"-{key}"
    return f"-{key}" if key in _DESCENDING_FIRST else key


@require_action(Action.VIEW_INSIGHTS)
def own_subscriptions(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = selectors.customer_get(partner=request.partner, customer_id=customer_id)
    subscriptions = selectors.own_subscription_list(partner=request.partner, customer=customer)
    return render(request, "customers/subscription_list.html", {"customer": customer, "subscriptions": subscriptions})


@require_action(Action.VIEW_INSIGHTS)
def customer_insights(request: HttpRequest, customer_id: int) -> HttpResponse:
    partner = request.partner
    customer = selectors.customer_get(partner=partner, customer_id=customer_id)
    as_of = as_of_choice(partner=partner, requested=request.GET.get("as_of"))
    settings = insight_settings(partner=partner)
    trend_days = _choice(request.GET.get("trend"), TREND_DAYS, default=90)
    inactive_days = _choice(request.GET.get("inactive_days"), InactivityDays.values, default=settings.inactivity_days)
    context = {
        "customer": customer,
        "as_of": as_of,
        "settings": settings,
        "trend_days": trend_days,
        "trend_choices": TREND_DAYS,
        "inactive_days": inactive_days,
        "inactive_choices": InactivityDays.values,
    }
    if as_of.date is not None:
        context |= insights_context(
            partner=partner,
            customer=customer,
            as_of=as_of.date,
            settings=settings,
            sku_settings=sku_setting_map(partner=partner),
            trend_days=trend_days,
            inactive_days=inactive_days,
        )
    return render(request, "customers/insights.html", context)


def _choice(value: str | None, allowed: tuple[int, ...] | list[int], *, default: int) -> int:
    """A whole number from the query string if it is one of `allowed`, else `default`."""
    return int(value) if value and value.isdigit() and int(value) in allowed else default

"""The dashboard's pages: the customer list, a customer's insights and own subscriptions, the
portfolio analytics and the partner's settings. Scoped lookup, then a selector or presenter,
then the template."""

from collections import defaultdict
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.roles import Action, require_action
from customers import selectors
from customers.models import Family
from customers.selectors import CUSTOMER_SORTS, product_list, sku_choices
from dashboard.analytics import analytics_context
from dashboard.forms import CustomerFilterForm, InsightSettingsForm, SkuSettingFormSet
from dashboard.insights import TREND_DAYS, insights_context
from metrics import services
from metrics.filters import AnalyticsFilterForm, PortfolioFilters
from metrics.models import InactivityDays, Trigger
from metrics.recommendations import Kind
from metrics.selectors import as_of_choice, insight_settings, latest_snapshot_date, recommendation_list, sku_setting_map
from metrics.tasks import recompute_enqueue

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
    return render(request, "dashboard/customer_list.html", context)


def _next_sort(key: str, current: str) -> str:
    """A column header's link: the other direction when it sorts already, else its first one."""
    if current.removeprefix("-") == key:
        return key if current.startswith("-") else f"-{key}"
    return f"-{key}" if key in _DESCENDING_FIRST else key


@require_action(Action.VIEW_INSIGHTS)
def own_subscriptions(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = selectors.customer_get(partner=request.partner, customer_id=customer_id)
    subscriptions = selectors.own_subscription_list(partner=request.partner, customer=customer)
    return render(request, "dashboard/subscription_list.html", {"customer": customer, "subscriptions": subscriptions})


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
    return render(request, "dashboard/insights.html", context)


def _choice(value: str | None, allowed: tuple[int, ...] | list[int], *, default: int) -> int:
    """A whole number from the query string if it is one of `allowed`, else `default`."""
    return int(value) if value and value.isdigit() and int(value) in allowed else default


@require_action(Action.VIEW_INSIGHTS)
def analytics(request: HttpRequest) -> HttpResponse:
    """The portfolio at a glance (`/analytics/`), with the filters its CSV export shares."""
    partner = request.partner
    form = AnalyticsFilterForm(request.GET or None, skus=sku_choices(partner=partner))
    as_of = as_of_choice(partner=partner, requested=request.GET.get("as_of"))
    settings = insight_settings(partner=partner)
    trend = request.GET.get("trend", "")
    trend_days = int(trend) if trend.isdigit() and int(trend) in TREND_DAYS else 90
    filters = form.filters() if form.is_bound and form.is_valid() else PortfolioFilters()
    context = {
        "form": form,
        "as_of": as_of,
        "filters": filters,
        "settings": settings,
        "trend_days": trend_days,
        "trend_choices": TREND_DAYS,
        "export_query": urlencode(filters.as_query()),
        "grains": (
            ("sku", "customer and SKU"),
            ("workload", "customer and workload"),
            ("family", "customer and family"),
        ),
    }
    if as_of.date is not None:
        context |= analytics_context(
            partner=partner,
            as_of=as_of.date,
            filters=filters,
            settings=settings,
            trend_days=trend_days,
            page_number=request.GET.get("page"),
        )
    return render(request, "dashboard/analytics.html", context)


@require_action(Action.EDIT_SETTINGS)
def settings_edit(request: HttpRequest) -> HttpResponse:
    partner = request.partner
    products = list(product_list(partner=partner))
    stored = sku_setting_map(partner=partner)
    initial = [
        {
            "sku": p.sku,
            "monthly_price": getattr(stored.get(p.sku), "monthly_price", None),
            "excluded": getattr(stored.get(p.sku), "excluded", False),
        }
        for p in products
    ]
    data = request.POST if request.method == "POST" else None
    form = InsightSettingsForm(data, instance=insight_settings(partner=partner))
    skus = SkuSettingFormSet(data, initial=initial, prefix="sku")
    if data is not None and form.is_valid() and skus.is_valid():
        allowed = {p.sku for p in products}  # a posted sku of another partner's catalog is ignored
        rows = [row for row in skus.cleaned_data if row.get("sku") in allowed]
        stale = services.insight_settings_save(partner=partner, settings=form.save(commit=False), sku_rows=rows)
        if stale:
            recompute_enqueue(partner=partner, dates=stale, trigger=Trigger.SETTINGS)
        messages.success(request, "Settings saved.")
        return redirect("settings")
    names = {p.sku: p for p in products}
    rows = [(sku_form, names.get(sku_form.initial.get("sku"))) for sku_form in skus]
    return render(request, "dashboard/settings.html", {"form": form, "skus": skus, "rows": rows})

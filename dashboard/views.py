"""The dashboard's pages: the customer list, a customer's insights and own subscriptions, the
portfolio analytics and the partner's settings. Scoped lookup, then a selector or presenter,
then the template."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db.models import QuerySet
from django.forms import BaseFormSet
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.http import PartnerRequest
from accounts.roles import Action, require_action
from core.pages import as_context
from customers import selectors
from customers.models import Customer, Product, Subscription
from customers.selectors import product_list, sku_choices
from dashboard.analytics import analytics_page
from dashboard.customer_list import customer_list_page
from dashboard.forms import CustomerFilterForm, InsightSettingsForm, SkuSettingForm, SkuSettingFormSet
from dashboard.insights import insights_page
from metrics import services
from metrics.filters import AnalyticsFilterForm
from metrics.models import Trigger
from metrics.selectors import insight_settings, sku_setting_map
from metrics.tasks import recompute_enqueue


@require_action(Action.VIEW_INSIGHTS)
def customer_list(request: PartnerRequest) -> HttpResponse:
    page = customer_list_page(
        partner=request.partner, query=CustomerFilterForm(request.GET), page_number=request.GET.get("page")
    )
    return render(request, "dashboard/customer_list.html", as_context(page))


@dataclass(frozen=True)
class SubscriptionsPage:
    customer: Customer
    subscriptions: QuerySet[Subscription]


@require_action(Action.VIEW_INSIGHTS)
def own_subscriptions(request: PartnerRequest, customer_id: int) -> HttpResponse:
    customer = selectors.customer_get(partner=request.partner, customer_id=customer_id)
    subscriptions = selectors.own_subscription_list(partner=request.partner, customer=customer)
    return render(request, "dashboard/subscription_list.html", as_context(SubscriptionsPage(customer, subscriptions)))


@require_action(Action.VIEW_INSIGHTS)
def customer_insights(request: PartnerRequest, customer_id: int) -> HttpResponse:
    customer = selectors.customer_get(partner=request.partner, customer_id=customer_id)
    page = insights_page(
        partner=request.partner,
        customer=customer,
        requested=request.GET.get("as_of"),
        trend=request.GET.get("trend"),
        inactive=request.GET.get("inactive_days"),
    )
    return render(request, "dashboard/insights.html", as_context(page))


@require_action(Action.VIEW_INSIGHTS)
def analytics(request: PartnerRequest) -> HttpResponse:
    """The portfolio at a glance (`/analytics/`), with the filters its CSV export shares."""
    partner = request.partner
    page = analytics_page(
        partner=partner,
        form=AnalyticsFilterForm(request.GET or None, skus=sku_choices(partner=partner)),
        requested=request.GET.get("as_of"),
        trend=request.GET.get("trend", ""),
        page_number=request.GET.get("page"),
    )
    return render(request, "dashboard/analytics.html", as_context(page))


@require_action(Action.EDIT_SETTINGS)
def settings_edit(request: PartnerRequest) -> HttpResponse:
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
    lines = [(sku_form, names.get(sku_form.initial.get("sku", ""))) for sku_form in skus]
    return render(request, "dashboard/settings.html", as_context(SettingsPage(form, skus, lines)))


@dataclass(frozen=True)
class SettingsPage:
    form: InsightSettingsForm
    skus: BaseFormSet[SkuSettingForm]
    rows: list[tuple[SkuSettingForm, Product | None]]

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import Action, require_action
from customers.insights import TREND_DAYS
from customers.models import INSIGHT_FAMILIES, ImportRun, Product
from customers.selectors import import_run_list
from metrics import selectors, services
from metrics.analytics import analytics_context
from metrics.filters import PortfolioFilters, sku_choices
from metrics.forms import AnalyticsFilterForm, InsightSettingsForm, SkuSettingFormSet
from metrics.models import RecomputeRun

RECENT_RUNS = 30


@require_action(Action.VIEW_INSIGHTS)
def analytics(request: HttpRequest) -> HttpResponse:
    """The portfolio at a glance (`/analytics/`), with the filters its CSV export shares."""
    partner = request.partner
    form = AnalyticsFilterForm(request.GET or None, skus=sku_choices(partner=partner))
    as_of = selectors.as_of_choice(partner=partner, requested=request.GET.get("as_of"))
    settings = selectors.insight_settings(partner=partner)
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
    return render(request, "metrics/analytics.html", context)


@require_action(Action.TRIGGER_RECOMPUTE)
def data_status(request: HttpRequest) -> HttpResponse:
    partner = request.partner
    runs = list(selectors.recompute_run_list(partner=partner)[:RECENT_RUNS])
    latest = selectors.latest_snapshot_date(partner=partner)
    last_import = import_run_list(partner=partner).filter(status=ImportRun.Status.SUCCEEDED).first()
    last_refused = import_run_list(partner=partner).filter(status=ImportRun.Status.FAILED).first()
    last_run = runs[0] if runs else None
    context = {
        "runs": runs,
        "latest": latest,
        "expected": services.yesterday(),
        "days_behind": (services.yesterday() - latest).days if latest else None,
        "last_import": last_import,
        "refused_since": last_refused
        if last_refused and (last_import is None or last_refused.started_at > last_import.started_at)
        else None,
        "failures": [run for run in runs if run.status == RecomputeRun.Status.FAILED],
        # An import newer than every recompute: its numbers are not in the metrics yet.
        "recompute_pending": bool(last_import and (last_run is None or last_run.started_at < last_import.finished_at)),
        "recompute_not_queued": bool(last_import and services.RECOMPUTE_NOT_QUEUED in last_import.warnings),
    }
    return render(request, "metrics/data_status.html", context)


@require_POST
@require_action(Action.TRIGGER_RECOMPUTE)
def recompute_now(request: HttpRequest) -> HttpResponse:
    as_of = services.yesterday()
    not_queued: list[bool] = []
    services.recompute_enqueue(
        partner=request.partner, dates=[as_of], trigger="manual", on_failure=lambda: not_queued.append(True)
    )
    if not_queued:
        messages.error(
            request,
            f"The recompute of {as_of:%Y-%m-%d} could not be queued: the task queue is unreachable. "
            "The nightly run recomputes it; try again later.",
        )
    else:
        messages.success(request, f"Recompute of {as_of:%Y-%m-%d} queued.")
    return redirect("metrics:status")


@require_action(Action.EDIT_SETTINGS)
def settings_edit(request: HttpRequest) -> HttpResponse:
    partner = request.partner
    products = list(Product.objects.visible_to(partner).filter(family__in=INSIGHT_FAMILIES).order_by("family", "name"))
    stored = selectors.sku_setting_map(partner=partner)
    initial = [
        {
            "sku": p.sku,
            "monthly_price": getattr(stored.get(p.sku), "monthly_price", None),
            "excluded": getattr(stored.get(p.sku), "excluded", False),
        }
        for p in products
    ]
    data = request.POST if request.method == "POST" else None
    form = InsightSettingsForm(data, instance=selectors.insight_settings(partner=partner))
    skus = SkuSettingFormSet(data, initial=initial, prefix="sku")
    if data is not None and form.is_valid() and skus.is_valid():
        allowed = {p.sku for p in products}  # a posted sku of another partner's catalog is ignored
        rows = [row for row in skus.cleaned_data if row.get("sku") in allowed]
        services.insight_settings_save(partner=partner, settings=form.save(commit=False), sku_rows=rows)
        messages.success(request, "Settings saved.")
        return redirect("settings")
    names = {p.sku: p for p in products}
    rows = [(sku_form, names.get(sku_form.initial.get("sku"))) for sku_form in skus]
    return render(request, "metrics/settings.html", {"form": form, "skus": skus, "rows": rows})

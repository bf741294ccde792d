"""CSV downloads (SPEC §7, §8): the portfolio at any grain with the analytics page's filters, one
customer's numbers, and inactive licensed users. Every download streams. And the page where a
partner schedules its emailed reports (SPEC §8)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render

from accounts.http import PartnerRequest
from accounts.roles import Action, require_action
from core.pages import as_context
from customers.selectors import customer_get, sku_choices
from exports.forms import ReportScheduleForm
from exports.inactive import inactive_lines
from exports.models import ReportDelivery
from exports.portfolio import ExportError, export_date, export_filename, grain_of, portfolio_lines
from exports.selectors import report_delivery_list, report_schedule_get
from metrics.filters import AnalyticsFilterForm
from metrics.models import InactivityDays
from metrics.selectors import insight_settings, matching_customer_ids


def csv_response(lines: Iterator[bytes], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # tenant data: never kept by a shared cache
    return response


class Refused(Exception):
    """A download that cannot be made: the message names the parameter or the missing snapshot."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def refusing(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Answers a `Refused` download with its message as plain text (400, or 404 without snapshot)."""

    @wraps(view)
    def wrapper(request: PartnerRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except Refused as refused:
            return HttpResponse(str(refused), status=refused.status, content_type="text/plain; charset=utf-8")

    return wrapper


def _grain(request: PartnerRequest) -> str:
    try:
        return grain_of(request.GET.get("grain"))
    except ValueError as error:
        raise Refused(str(error)) from None


def _day(request: PartnerRequest) -> dt.date:
    """`?as_of=` if it has a snapshot, else the partner's latest snapshot date (SPEC §5)."""
    value = request.GET.get("as_of")
    try:
        requested = dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise Refused(f"as_of: '{value}' is not a date in YYYY-MM-DD form.") from None
    try:
        return export_date(partner=request.partner, requested=requested)
    except ExportError as error:
        raise Refused(str(error), status=404) from None


@require_action(Action.DOWNLOAD_EXPORTS)
@refusing
def portfolio_csv(request: PartnerRequest) -> HttpResponseBase:
    """`/analytics/export.csv?grain=&as_of=` with the analytics page's filters."""
    partner = request.partner
    grain, as_of = _grain(request), _day(request)
    form = AnalyticsFilterForm(request.GET, skus=sku_choices(partner=partner))
    if not form.is_valid():
        raise Refused(f"Invalid filters: {form.error_text()}")
    filters = form.filters()
    ids = matching_customer_ids(
        partner=partner, as_of=as_of, filters=filters, settings=insight_settings(partner=partner)
    )
    lines = portfolio_lines(partner=partner, as_of=as_of, grain=grain, filters=filters, customer_ids=ids)
    return csv_response(lines, export_filename(partner=partner, as_of=as_of, grain=grain))


@require_action(Action.DOWNLOAD_EXPORTS)
@refusing
def customer_csv(request: PartnerRequest, customer_id: int) -> HttpResponseBase:
    """One customer's rows of the portfolio export (`?grain=`, `?as_of=`)."""
    partner = request.partner
    customer = customer_get(partner=partner, customer_id=customer_id)
    grain, as_of = _grain(request), _day(request)
    lines = portfolio_lines(partner=partner, as_of=as_of, grain=grain, customer_ids=[customer.pk])
    return csv_response(lines, export_filename(partner=partner, as_of=as_of, grain=grain, customer=customer))


@require_action(Action.DOWNLOAD_EXPORTS)
@refusing
def inactive_csv(request: PartnerRequest, customer_id: int | None = None) -> HttpResponseBase:
    """Inactive licensed users (SPEC §8) of the portfolio or one customer (`?as_of=`, `?days=`)."""
    partner = request.partner
    customer = customer_get(partner=partner, customer_id=customer_id) if customer_id is not None else None
    days_text = request.GET.get("days") or str(insight_settings(partner=partner).inactivity_days)
    if not days_text.isdigit() or int(days_text) not in InactivityDays.values:
        raise Refused(f"days: '{days_text}' is not one of {', '.join(map(str, InactivityDays.values))}.")
    days, as_of = int(days_text), _day(request)
    lines = inactive_lines(partner=partner, as_of=as_of, days=days, customer=customer)
    filename = export_filename(partner=partner, as_of=as_of, grain=f"inactive-{days}d", customer=customer)
    return csv_response(lines, filename)


RECENT_DELIVERIES = 20


@require_action(Action.EDIT_SETTINGS)
def report_schedule(request: PartnerRequest) -> HttpResponse:
    """`/settings/reports/`: whether, how often and to whom the portfolio report is emailed."""
    partner = request.partner
    data = request.POST if request.method == "POST" else None
    form = ReportScheduleForm(data, instance=report_schedule_get(partner=partner), partner=partner)
    if data is not None and form.is_valid():
        form.save()
        messages.success(request, "Report schedule saved.")
        return redirect("report_schedule")
    deliveries = list(report_delivery_list(partner=partner)[:RECENT_DELIVERIES])
    return render(request, "exports/report_schedule.html", as_context(ReportSchedulePage(form, deliveries)))


@dataclass(frozen=True)
class ReportSchedulePage:
    form: ReportScheduleForm
    deliveries: list[ReportDelivery]

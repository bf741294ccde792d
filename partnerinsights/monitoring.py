"""The Prometheus endpoint: `/metrics`, for the operator's scraper only.

Disabled unless METRICS_TOKEN is set; then it asks `Authorization: Bearer <METRICS_TOKEN>` (401
otherwise). Like the probes it stands before host validation and the HTTPS redirect, so a
scraper reaches it by the pod's address; the token is what guards it.

Every figure is read from the run ledgers at scrape time, so several gunicorn workers give one
consistent answer (per-process counters would not), in one query whatever the number of partners.
It lives here, on top of the layers, because it reads both ledgers: metrics' and imports'.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Max, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_scopes import scopes_disabled
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from accounts.models import Partner
from imports.models import ImportRun
from metrics.models import RecomputeRun, RunStatus
from metrics.services import yesterday

RECENT = dt.timedelta(days=7)  # the window of the failure counts and the longest durations


def _per_partner(rows: QuerySet[Any, Any], aggregate: Aggregate) -> Subquery:
    """One aggregate of `rows` (correlated with the outer partner) as a subquery."""
    grouped = rows.filter(partner=OuterRef("pk")).order_by().values("partner").annotate(value=aggregate)
    return Subquery(grouped.values("value"))


def _latest(rows: QuerySet[Any, Any], field: str) -> Subquery:
    return Subquery(rows.filter(partner=OuterRef("pk")).order_by("-finished_at", "-pk").values(field)[:1])


def partner_run_figures(*, now: dt.datetime) -> list[dict[str, Any]]:
    """Per partner (by slug): its latest published date, failed runs and run durations over
    the last RECENT, and the latest durations: one query of correlated subqueries, all partners."""
    since = now - RECENT
    with scopes_disabled():
        recomputes = RecomputeRun.objects.all()
        timed = recomputes.filter(duration_ms__isnull=False)
        imports = ImportRun.objects.filter(finished_at__isnull=False).annotate(
            took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
        return list(
            Partner.objects.order_by("slug")
            .values("slug")
            .annotate(
                published=_per_partner(recomputes.filter(published_at__isnull=False), Max("as_of")),
                recompute_failed=_per_partner(
                    recomputes.filter(status=RunStatus.FAILED, started_at__gte=since), Count("pk")
                ),
                recompute_last_ms=_latest(timed, "duration_ms"),
                recompute_max_ms=_per_partner(timed.filter(started_at__gte=since), Max("duration_ms")),
                import_failed=_per_partner(
                    ImportRun.objects.filter(status=RunStatus.FAILED, started_at__gte=since), Count("pk")
                ),
                import_last=_latest(imports, "took"),
                import_max=_per_partner(imports.filter(started_at__gte=since), Max("took")),
            )
        )


def _seconds(value: dt.timedelta | int | None, *, ms: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value / 1000 if ms else float(value)


class PartnerRunsCollector(Collector):
    """The ledgers' figures as gauges labelled by partner slug."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = partner_run_figures(now=timezone.now())
        end = yesterday()
        families: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
            "snapshot_days_behind": (
                "Days from the latest published metrics date to yesterday (+Inf: none published yet).",
                lambda row: float((end - row["published"]).days) if row["published"] else math.inf,
            ),
            "recompute_failed_runs": (
                f"Recompute runs (one per partner and date) failed, started in the last {RECENT.days} days.",
                lambda row: float(row["recompute_failed"] or 0),
            ),
            "import_failed_runs": (
                f"Import runs failed, started in the last {RECENT.days} days.",
                lambda row: float(row["import_failed"] or 0),
            ),
            "recompute_last_duration_seconds": (
                "Duration of the latest successful recompute of a date.",
                lambda row: _seconds(row["recompute_last_ms"], ms=True),
            ),
            "recompute_max_duration_seconds": (
                f"Longest successful recompute of a date started in the last {RECENT.days} days.",
                lambda row: _seconds(row["recompute_max_ms"], ms=True),
            ),
            "import_last_duration_seconds": (
                "Duration of the latest finished import (succeeded or failed).",
                lambda row: _seconds(row["import_last"]),
            ),
            "import_max_duration_seconds": (
                f"Longest finished import started in the last {RECENT.days} days.",
                lambda row: _seconds(row["import_max"]),
            ),
        }
        for name, (documentation, value_of) in families.items():
            gauge = GaugeMetricFamily(f"partnerinsights_{name}", documentation, labels=["partner"])
            for row in rows:
                value = value_of(row)
                if value is not None:
                    gauge.add_metric([row["slug"]], value)
            yield gauge
        yield GaugeMetricFamily("partnerinsights_partners", "Partners (tenants).", value=len(rows))


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PartnerRunsCollector())
    return generate_latest(registry)


class MetricsMiddleware:
    """Answers `/metrics` (when METRICS_TOKEN is set) before any other middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = settings.METRICS_TOKEN
        if request.path_info != "/metrics" or not token or request.method not in {"GET", "HEAD"}:
            return self.get_response(request)
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, f"Bearer {token}".encode()):
            refused = HttpResponse("A metrics token is required.\n", status=401, content_type="text/plain")
            refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        response = HttpResponse(
            exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4
        )  # what Prometheus 2 and 3 both read
        response["Cache-Control"] = "no-store"
        return response

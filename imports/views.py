"""The import pages (upload, history, a run's progress and result, starting it again) and the
Data status page: how the data arrives and whether the metrics are current.

An upload is stored and queued, never read here: the page redirects to the run's page, which a
static script (static/js/import_run.js) keeps current from the run's API until it ends."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_POST

from accounts.http import PartnerRequest
from accounts.roles import Action, can, require_action
from core.pages import as_context
from imports import selectors, services
from imports.forms import ImportForm
from imports.models import ImportRun
from imports.pipeline.sources import declared_upload_size
from imports.progress import Live, live
from imports.tasks import import_enqueue
from metrics import services as metrics_services
from metrics.models import RecomputeRun, Trigger
from metrics.selectors import latest_snapshot_date, recompute_run_list
from metrics.tasks import RECOMPUTE_NOT_QUEUED, recompute_enqueue

HISTORY_LENGTH = 50


@require_action(Action.IMPORT_DATA)
def import_page(request: PartnerRequest) -> HttpResponse:
    refused = _upload_too_large(request)
    form = ImportForm(None if refused else request.POST or None, None if refused else request.FILES or None)
    if request.method == "POST" and not refused and form.is_valid():
        run = services.import_upload(
            partner=request.partner,
            files=form.cleaned_data["files"],
            origin=ImportRun.Origin.UPLOAD,
            started_by=request.user,
        )
        import_enqueue(run)
        return redirect("imports:detail", run_id=run.pk)
    history = list(selectors.import_run_list(partner=request.partner)[:HISTORY_LENGTH])
    return render(request, "imports/import_page.html", as_context(ImportPage(form, history, refused)))


@dataclass(frozen=True)
class ImportPage:
    form: ImportForm
    history: list[ImportRun]
    refused: str  # why an upload was refused before it was read; empty otherwise


@require_action(Action.VIEW_INSIGHTS)
def import_detail(request: PartnerRequest, run_id: int) -> HttpResponse:
    run = selectors.import_run_get(partner=request.partner, run_id=run_id)
    if not can(request.user, Action.IMPORT_DATA):
        raise PermissionDenied
    page = ImportRunPage(run, live(run), services.import_restartable(run), settings.IMPORT_UPLOAD_RETENTION_DAYS)
    return render(request, "imports/import_detail.html", as_context(page))


@dataclass(frozen=True)
class ImportRunPage:
    run: ImportRun
    live: Live  # its phase, progress and last sign of life (from the worker while it runs)
    restartable: bool  # may be started again from its stored upload
    retention_days: int  # how long uploads are kept


@require_action(Action.IMPORT_DATA)
def import_restart(request: PartnerRequest, run_id: int) -> HttpResponse:
    # The partner's own runs first (anybody else's id is a 404), then the method.
    run = selectors.import_run_get(partner=request.partner, run_id=run_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        run = services.import_restart(run=run)
    except ValueError:
        messages.error(request, "This import cannot be started again: it runs, it succeeded, or its upload is gone.")
    else:
        import_enqueue(run)
        messages.success(request, "Import queued again.")
    return redirect("imports:detail", run_id=run.pk)


def _upload_too_large(request: HttpRequest) -> str:
    """Refuses by the declared size before Django reads the body (it does not cap uploads)."""
    size = declared_upload_size(request.META)
    if request.method != "POST" or size <= settings.IMPORT_MAX_UPLOAD_BYTES:
        return ""
    limit = filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)
    return (
        f"The upload ({filesizeformat(size)}) is larger than the limit of {limit}; nothing was imported. "
        "Import larger files with the import_data command or the API."
    )


RECENT_RUNS = 30


@require_action(Action.TRIGGER_RECOMPUTE)
def data_status(request: PartnerRequest) -> HttpResponse:
    partner = request.partner
    runs = list(recompute_run_list(partner=partner)[:RECENT_RUNS])
    latest = latest_snapshot_date(partner=partner)
    last_import = selectors.import_run_list(partner=partner).filter(status=ImportRun.Status.SUCCEEDED).first()
    last_refused = selectors.import_run_list(partner=partner).filter(status=ImportRun.Status.FAILED).first()
    last_run = runs[0] if runs else None
    expected = metrics_services.yesterday()
    page = DataStatusPage(
        runs=runs,
        latest=latest,
        expected=expected,
        days_behind=(expected - latest).days if latest else None,
        last_import=last_import,
        refused_since=last_refused
        if last_refused and (last_import is None or last_refused.started_at > last_import.started_at)
        else None,
        failures=[run for run in runs if run.status == RecomputeRun.Status.FAILED],
        # An import newer than every recompute is not in the metrics yet (a succeeded run has its end).
        recompute_pending=bool(
            last_import
            and (
                last_run is None
                or (last_import.finished_at is not None and last_run.started_at < last_import.finished_at)
            )
        ),
        recompute_not_queued=bool(last_import and RECOMPUTE_NOT_QUEUED in last_import.warnings),
    )
    return render(request, "imports/data_status.html", as_context(page))


@dataclass(frozen=True)
class DataStatusPage:
    """How current the partner's metrics are, and what the last imports and recomputes did."""

    runs: list[RecomputeRun]
    latest: dt.date | None
    expected: dt.date
    days_behind: int | None
    last_import: ImportRun | None
    refused_since: ImportRun | None  # a refused import newer than the last one that succeeded
    failures: list[RecomputeRun]
    recompute_pending: bool
    recompute_not_queued: bool


@require_POST
@require_action(Action.TRIGGER_RECOMPUTE)
def recompute_now(request: PartnerRequest) -> HttpResponse:
    as_of = metrics_services.yesterday()
    not_queued: list[bool] = []
    recompute_enqueue(
        partner=request.partner, dates=[as_of], trigger=Trigger.MANUAL, on_failure=lambda: not_queued.append(True)
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

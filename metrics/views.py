from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import Action, require_action
from customers.models import ImportRun
from customers.selectors import import_run_list
from metrics import selectors, services
from metrics.models import RecomputeRun

RECENT_RUNS = 30


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
    }
    return render(request, "metrics/data_status.html", context)


@require_POST
@require_action(Action.TRIGGER_RECOMPUTE)
def recompute_now(request: HttpRequest) -> HttpResponse:
    services.recompute_enqueue(partner=request.partner, dates=[services.yesterday()], trigger="manual")
    messages.success(request, f"Recompute of {services.yesterday():%Y-%m-%d} queued.")
    return redirect("metrics:status")

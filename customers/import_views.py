from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat

from accounts.roles import Action, can, require_action
from customers import selectors
from customers.forms import ImportForm
from customers.importing.service import data_import
from customers.importing.sources import declared_upload_size, source_from_uploads
from customers.models import ImportRun

HISTORY_LENGTH = 50


@require_action(Action.IMPORT_DATA)
def import_page(request: HttpRequest) -> HttpResponse:
    refused = _upload_too_large(request)
    form = ImportForm(None if refused else request.POST or None, None if refused else request.FILES or None)
    if request.method == "POST" and not refused and form.is_valid():
        run = data_import(
            partner=request.partner,
            source=source_from_uploads(form.cleaned_data["files"]),
            origin=ImportRun.Origin.UPLOAD,
            started_by=request.user,
        )
        if run.status == ImportRun.Status.SUCCEEDED:
            messages.success(request, "Import succeeded.")
        else:
            messages.error(request, f"Import refused: {run.error_count} problem(s); nothing was written.")
        return redirect("imports:detail", run_id=run.pk)
    history = selectors.import_run_list(partner=request.partner)[:HISTORY_LENGTH]
    context = {"form": form, "history": history, "refused": refused}
    return render(request, "customers/import_page.html", context)


@require_action(Action.VIEW_INSIGHTS)
def import_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.import_run_get(partner=request.partner, run_id=run_id)
    if not can(request.user, Action.IMPORT_DATA):
        raise PermissionDenied
    return render(request, "customers/import_detail.html", {"run": run})


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

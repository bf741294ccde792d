"""The connection's settings page (Global admins only: SPEC §9) and the sync status page (roles
that may import): where each customer's collection stands, and "Pull now"."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.http import PartnerRequest
from accounts.roles import Action, can, require_action
from collection import selectors, services
from collection.forms import ConnectionForm
from collection.models import CustomerSync, PullRun, PullTrigger, VendorConnection
from collection.tasks import pull_enqueue
from core.pages import as_context

CUSTOMERS_PER_PAGE = 100


@dataclass(frozen=True)
class ConnectionPage:
    form: ConnectionForm
    connection: VendorConnection | None  # its secret deferred: never read, never shown


@require_action(Action.MANAGE_CONNECTION)
def connection_settings(request: PartnerRequest) -> HttpResponse:
    partner = request.partner
    connection = selectors.connection_get(partner=partner)
    initial = {"tenant_id": connection.tenant_id, "client_id": connection.client_id} if connection else None
    data = request.POST if request.method == "POST" else None
    form = ConnectionForm(data, initial=initial, has_secret=connection is not None)
    if data is not None and form.is_valid():
        services.connection_save(
            partner=partner,
            tenant_id=form.cleaned_data["tenant_id"],
            client_id=form.cleaned_data["client_id"],
            secret=form.cleaned_data["client_secret"] or None,
            by=request.user,
        )
        messages.success(request, "Connection saved. Test it to see what works.")
        return redirect("collection:connection")
    return render(request, "collection/connection.html", as_context(ConnectionPage(form, connection)))


@require_POST
@require_action(Action.MANAGE_CONNECTION)
def connection_test(request: PartnerRequest) -> HttpResponse:
    checks = services.connection_test(partner=request.partner)
    if all(check.ok for check in checks):
        messages.success(request, "The connection works.")
    else:
        messages.error(request, "The connection does not work yet: see below.")
    return redirect("collection:connection")


@require_POST
@require_action(Action.MANAGE_CONNECTION)
def connection_remove(request: PartnerRequest) -> HttpResponse:
    services.connection_delete(partner=request.partner)
    messages.success(request, "Connection removed: nothing is pulled any more. Stored data stays as it is.")
    return redirect("collection:connection")


@dataclass(frozen=True)
class SyncStatusPage:
    connected: bool
    may_manage_connection: bool
    latest_pull: PullRun | None
    page: Page[CustomerSync]
    failing: int  # customers whose last pull failed
    concealed: int  # customers whose user names are concealed


@require_action(Action.IMPORT_DATA)
def sync_status(request: PartnerRequest) -> HttpResponse:
    partner = request.partner
    customers = selectors.customer_sync_list(partner=partner)
    page = SyncStatusPage(
        connected=selectors.connection_get(partner=partner) is not None,
        may_manage_connection=can(request.user, Action.MANAGE_CONNECTION),
        latest_pull=selectors.latest_pull(partner=partner),
        page=Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page")),
        failing=customers.exclude(error="").count(),
        concealed=customers.filter(concealed_names=True).count(),
    )
    return render(request, "collection/sync_status.html", as_context(page))


@require_POST
@require_action(Action.IMPORT_DATA)
def pull_now(request: PartnerRequest) -> HttpResponse:
    if selectors.connection_get(partner=request.partner) is None:
        messages.error(request, "There is no connection to the vendor's APIs yet: a Global admin sets it up.")
        return redirect("collection:status")
    run = services.pull_start(partner=request.partner, trigger=PullTrigger.MANUAL)
    if run is None:
        messages.info(request, "A pull is running already: this page shows each customer as it is done.")
        return redirect("collection:status")
    not_queued: list[bool] = []
    pull_enqueue(run=run, on_failure=lambda: not_queued.append(True))
    if not_queued:
        messages.error(request, "The pull could not be queued: the task queue is unreachable. Try again later.")
    else:
        messages.success(request, "Pull queued: this page shows each customer as it is done.")
    return redirect("collection:status")

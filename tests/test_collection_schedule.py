"""When pulls run (SPEC §9): the days a pull asks for, the report pace's setting, one nightly pull
per partner and night, one running pull per partner, and a pull whose worker stopped."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_scopes import scope

from accounts.roles import Role
from collection import encryption, services, tasks
from collection.models import PullRun, PullStatus, PullTrigger, VendorConnection
from collection.vendor import ErrorKind, Rate
from tests.conftest import client_for

D = dt.date


@pytest.mark.parametrize(("text", "rate"), [("14/600", Rate(14, 600.0)), (" 3/1.5 ", Rate(3, 1.5))])
def test_the_report_pace_reads_requests_per_seconds(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["14", "abc/600", "0/600", "14/0", "14/-1", ""])
def test_a_bad_report_pace_names_the_expected_form(text):
    with pytest.raises(ValueError, match=r"expected requests/seconds, e\.g\. 14/600"):
        Rate.parse(text)


def test_a_first_pull_asks_for_the_whole_window_and_later_ones_for_the_days_since():
    until = D(2026, 12, 7)
    first = services.days_to_pull(None, until=until)
    assert (len(first), first[0], first[-1]) == (28, D(2026, 11, 10), until)
    assert services.days_to_pull(D(2026, 12, 4), until=until) == [D(2026, 12, 5), D(2026, 12, 6), until]
    assert services.days_to_pull(until, until=until) == []
    assert services.days_to_pull(D(2026, 1, 1), until=until) == first  # the API keeps no older days


@pytest.fixture
def connected(partner) -> VendorConnection:
    """A connection whose endpoints are a closed local port (conftest): every pull fails at once."""
    return VendorConnection.objects.create(
        partner=partner, tenant_id="t", client_id="c", encrypted_secret=encryption.encrypt("s")
    )


def test_the_nightly_pull_runs_once_per_partner_and_night(connected, partner, other_partner):
    with scope():  # as on a worker: scoping on, no partner (the eager pull runs inside it too)
        assert tasks.nightly_pull() == 1  # partner B has no connection
        assert tasks.nightly_pull() == 0  # a second beat, or a redelivered task
    nightly = PullRun.objects.get(partner=partner, trigger=PullTrigger.NIGHTLY)
    assert nightly.night == services.yesterday_utc()
    assert (nightly.status, nightly.error_kind) == (PullStatus.FAILED, ErrorKind.UNAVAILABLE)
    assert (
        "Could not get the customer list: the login service could not be reached (connection refused)" in nightly.error
    )
    assert not PullRun.objects.filter(partner=other_partner).exists()
    with scope():
        assert tasks.pull(run_id=nightly.pk) == "skipped"  # a redelivered task of an ended pull


def test_a_partner_has_one_running_pull_at_a_time(connected, partner, staff):
    running = PullRun.objects.create(partner=partner, trigger=PullTrigger.MANUAL)
    with pytest.raises(CommandError, match="A pull of this partner is running already"):
        call_command("pull_vendor_data", "--partner", partner.slug)
    page = client_for(staff[Role.ADMIN_AGENT]).post("/sync/pull/", follow=True).content.decode()
    assert "A pull is running already" in page
    assert PullRun.objects.filter(partner=partner).count() == 1
    # its worker stopped: no heartbeat for half an hour ends it, and the next pull starts
    PullRun.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=31))
    with pytest.raises(CommandError, match="Nothing could be pulled"):  # the closed port
        call_command("pull_vendor_data", "--partner", partner.slug)
    running.refresh_from_db()
    assert running.status == PullStatus.FAILED
    assert "The worker running this pull stopped" in running.error
    assert PullRun.objects.filter(partner=partner).count() == 2


def test_without_a_connection_nothing_is_pulled_and_the_command_exits_1(partner, staff):
    with pytest.raises(CommandError, match="No connection to the vendor's APIs is set up"):
        call_command("pull_vendor_data", "--partner", partner.slug)
    page = client_for(staff[Role.ADMIN_AGENT]).post("/sync/pull/", follow=True).content.decode()
    assert "There is no connection to the vendor&#x27;s APIs yet" in page


def test_a_queued_pull_is_taken_by_one_worker_only(connected, partner):
    run = services.pull_start(partner=partner, trigger=PullTrigger.MANUAL)
    first, second = services.pull_claim(run_id=run.pk), services.pull_claim(run_id=run.pk)
    assert first is not None
    assert first.pk == run.pk
    assert second is None  # a redelivered copy of the task, or a second worker
    with scope():
        assert tasks.pull(run_id=run.pk) == "skipped"


def test_a_pull_ended_by_the_sweeper_stays_ended(connected, partner):
    run = services.pull_start(partner=partner, trigger=PullTrigger.MANUAL)
    PullRun.objects.filter(pk=run.pk).update(status=PullStatus.FAILED, error="swept")
    services.vendor_pull(run=run)  # fails at the closed port, after the sweeper ended it
    run.refresh_from_db()
    assert (run.status, run.error) == (PullStatus.FAILED, "swept")

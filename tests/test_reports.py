"""Scheduled reports (SPEC §8): due weekly on Mondays and monthly on the 1st, one mail per active
recipient with the exact portfolio CSV and summary, sent once per period however often the
beat fires; the schedule page (roles in test_roles, other partners' ids here)."""

from __future__ import annotations

import datetime as dt
import email
from email.message import Message

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import StaffUser
from accounts.roles import Role
from exports import tasks
from exports.models import ReportDelivery, ReportSchedule
from exports.portfolio import portfolio_lines
from exports.services import reports_send_due
from tests.conftest import MARKER, PASSWORD, client_for
from tests.test_exports import portfolio  # noqa: F401 (a fixture: three customers with snapshots)
from tests.test_metrics import D

MONDAY = dt.date(2024, 7, 8)  # not the 1st: only weekly schedules are due
TUESDAY = dt.date(2024, 7, 9)
FIRST = dt.date(2024, 8, 1)  # a Thursday: only monthly schedules are due

SUMMARY = """Portfolio of Alpha Partners on 2024-06-30 (report 2024-W28, sent 2024-07-08).

Portfolio by product family:
- Dynamics 365: customers 1, sold 3, assigned 2, entitled 2, active 2, deployment 66.7%, usage 100.0%
- Office 365: customers 2, sold 17, assigned 4, entitled 4, active 5, deployment 23.5%, usage 125.0%

Customers per recommendation:
- Low adoption: 1
- Support load: 0
- Growth opportunity: 0

Most unused licenses (sold − assigned):
- Beta GmbH (C2): 11 of 15 unused
- alpha lower (C0): 2 of 2 unused
- Alpha AG (C1): 1 of 3 unused

The attached CSV has every customer's numbers at the family grain.
"""


@pytest.fixture
def schedule(partner, staff, portfolio):
    """A weekly family-grain schedule for a Global admin, a Sales agent and someone deactivated."""
    gone = StaffUser.objects.create_user("gone@alpha.example", PASSWORD, partner=partner, role=Role.SALES_AGENT)
    gone.is_active = False
    gone.save()
    schedule = ReportSchedule.objects.create(partner=partner, cadence="weekly", grain="family")
    schedule.recipients.set([staff[Role.GLOBAL_ADMIN], staff[Role.SALES_AGENT], gone])
    return schedule


def attachments_of(message) -> list[Message]:
    """The attachments as a mail client reads them: parsed from the bytes that are sent."""
    parsed = email.message_from_bytes(message.message().as_bytes())
    return [part for part in parsed.walk() if part.get_filename()]


def ledger() -> list[tuple]:
    return list(ReportDelivery.objects.values_list("partner__slug", "period", "as_of", "recipients"))


class TestSending:
    def test_due_weekly_on_a_monday_mails_each_active_recipient_the_csv_and_summary(self, partner, schedule):
        reports_send_due(today=MONDAY)
        assert sorted(message.to[0] for message in mail.outbox) == [
            "global_admin@alpha.example",
            "sales_agent@alpha.example",
        ]
        csv = b"".join(portfolio_lines(partner=partner, as_of=D, grain="family"))
        for message in mail.outbox:
            assert len(message.to) == 1
            assert (message.cc, message.bcc) == ([], [])
            assert message.subject == "Partner Insights · Alpha Partners · portfolio 2024-06-30"
            assert message.body == SUMMARY
            (attachment,) = attachments_of(message)
            assert attachment.get_filename() == "partner-insights_alpha_family_2024-06-30.csv"
            assert attachment.get_content_type() == "text/csv"
            assert attachment.get_payload(decode=True) == csv
        assert ledger() == [("alpha", "2024-W28", D, 2)]

    def test_the_schedules_grain_is_attached(self, partner, schedule):
        schedule.grain = "sku"
        schedule.save()
        reports_send_due(today=MONDAY)
        (attachment,) = attachments_of(mail.outbox[0])
        assert attachment.get_filename() == "partner-insights_alpha_sku_2024-06-30.csv"
        assert attachment.get_payload(decode=True) == b"".join(portfolio_lines(partner=partner, as_of=D, grain="sku"))

    @pytest.mark.parametrize("today", [TUESDAY, FIRST])
    def test_weekly_is_not_due_on_other_days(self, schedule, today):
        assert reports_send_due(today=today) == []
        assert (mail.outbox, ledger()) == ([], [])

    @pytest.mark.parametrize("today", [MONDAY, TUESDAY, dt.date(2024, 8, 2)])
    def test_monthly_is_due_only_on_the_first(self, schedule, today):
        schedule.cadence = "monthly"
        schedule.save()
        reports_send_due(today=today)
        assert (mail.outbox, ledger()) == ([], [])
        reports_send_due(today=FIRST)
        assert len(mail.outbox) == 2
        assert ledger() == [("alpha", "2024-08", D, 2)]

    def test_cadence_off_sends_nothing(self, schedule):
        schedule.cadence = "off"
        schedule.save()
        for today in (MONDAY, FIRST):
            reports_send_due(today=today)
        assert (mail.outbox, ledger()) == ([], [])

    def test_running_twice_for_one_day_sends_once(self, schedule):
        assert len(reports_send_due(today=MONDAY)) == 1
        assert reports_send_due(today=MONDAY) == []
        assert len(mail.outbox) == 2
        assert ledger() == [("alpha", "2024-W28", D, 2)]

    def test_the_task_fired_twice_sends_once_for_today(self, schedule, monkeypatch):
        monkeypatch.setattr(timezone, "localdate", lambda *args: MONDAY)
        assert tasks.send_scheduled_reports.delay().get() == 1
        assert tasks.send_scheduled_reports.delay().get() == 0
        assert len(mail.outbox) == 2
        assert ledger() == [("alpha", "2024-W28", D, 2)]

    def test_the_next_week_is_a_new_period(self, schedule):
        reports_send_due(today=MONDAY)
        reports_send_due(today=MONDAY + dt.timedelta(days=7))
        assert len(mail.outbox) == 4
        assert sorted(period for _, period, *_ in ledger()) == ["2024-W28", "2024-W29"]

    def test_a_partner_without_snapshot_is_skipped_without_a_claim(self, other_partner):
        member = StaffUser.objects.create_user(
            "a@bravo.example", PASSWORD, partner=other_partner, role=Role.SALES_AGENT
        )
        ReportSchedule.objects.create(partner=other_partner, cadence="weekly").recipients.set([member])
        assert reports_send_due(today=MONDAY) == []
        assert (mail.outbox, ledger()) == ([], [])

    def test_a_failed_send_claims_nothing_and_a_retry_sends(self, schedule, monkeypatch):
        def refuse(self, messages):
            raise OSError("SMTP down")

        monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
        with pytest.raises(Exception, match="alpha"):
            reports_send_due(today=MONDAY)
        assert ledger() == []
        monkeypatch.undo()
        reports_send_due(today=MONDAY)
        assert len(mail.outbox) == 2


def test_the_beat_sends_the_reports_due_at_six(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["scheduled-reports"]
    assert entry["task"] == "exports.send_scheduled_reports"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({6}, {0})


class TestSchedulePage:
    def test_shows_the_form_and_the_last_deliveries(self, admin_client, schedule):
        reports_send_due(today=MONDAY)
        response = admin_client.get("/settings/reports/")
        assert response.status_code == 200
        page = response.content.decode()
        assert "2024-W28" in page
        assert "gone@alpha.example" not in page  # only active staff can be chosen
        assert 'href="/settings/reports/"' in admin_client.get("/settings/").content.decode()

    @pytest.mark.parametrize("role", [Role.GLOBAL_ADMIN, Role.ADMIN_AGENT])
    def test_saving_works(self, partner, staff, role):
        chosen = [staff[Role.USER_ADMIN].pk, staff[Role.SALES_AGENT].pk]
        response = client_for(staff[role]).post(
            "/settings/reports/", {"cadence": "monthly", "grain": "sku", "recipients": chosen}
        )
        assert response.status_code == 302
        saved = ReportSchedule.objects.get(partner=partner)
        assert (saved.cadence, saved.grain) == ("monthly", "sku")
        assert sorted(saved.recipients.values_list("pk", flat=True)) == sorted(chosen)

    def test_another_partners_staff_is_an_invalid_choice(self, admin_client, partner, staff, bravo):
        response = admin_client.post(
            "/settings/reports/",
            {"cadence": "weekly", "grain": "family", "recipients": [staff[Role.SALES_AGENT].pk, bravo["staff"].pk]},
        )
        assert response.status_code == 200
        assert response.context["form"].errors["recipients"]
        assert MARKER not in response.content.decode()
        assert bravo["staff"].email not in response.content.decode()
        assert not ReportSchedule.objects.exists()

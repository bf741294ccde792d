"""Sending the scheduled reports (SPEC §8): the portfolio CSV and a short summary, emailed to the partner's
chosen staff weekly (Mondays) or monthly (the 1st), in the configured time zone.

Safe to run twice or at once: each partner's period is claimed by inserting its ledger row
(unique per partner and period) in the transaction that sends the mails, so a second beat or a
redelivered task finds the row and sends nothing; a failed send rolls the claim back.
"""

from __future__ import annotations

import datetime as dt
import logging
from email import encoders
from email.mime.base import MIMEBase

from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import F
from django_scopes import scope

from accounts.models import Partner, StaffUser
from customers.models import INSIGHT_FAMILIES, Family
from exports.models import Cadence, ReportDelivery, ReportSchedule
from exports.portfolio import export_filename, portfolio_lines
from exports.selectors import report_schedule_get
from metrics.numbers import pct
from metrics.recommendations import Kind
from metrics.selectors import (
    insight_settings,
    latest_snapshot_date,
    most_unused_customers,
    portfolio_snapshot_list,
    recommendation_list,
)

logger = logging.getLogger(__name__)

TOP_UNUSED = 5


class ReportsFailed(Exception):
    """Some partners' reports could not be sent; the others were. A retry sends only the missing."""


def due_periods(*, today: dt.date) -> dict[str, str]:
    """The cadences due `today`, with the period each one reports: `2026-W49` on a Monday,
    `2026-12` on the 1st."""
    due: dict[str, str] = {}
    if today.weekday() == 0:
        year, week, _ = today.isocalendar()
        due[Cadence.WEEKLY] = f"{year}-W{week:02d}"
    if today.day == 1:
        due[Cadence.MONTHLY] = f"{today:%Y-%m}"
    return due


def reports_send_due(*, today: dt.date) -> list[ReportDelivery]:
    """Sends every report due `today`, partner by partner; returns the deliveries made now.
    One partner's failure does not stop the others: it is logged, and ReportsFailed is raised
    at the end so the task retries."""
    due = due_periods(today=today)
    partners = Partner.objects.filter(report_schedule__cadence__in=list(due)).annotate(
        cadence=F("report_schedule__cadence")
    )
    sent, failed = [], []
    for partner in partners.order_by("pk"):
        try:
            delivery = report_send(partner=partner, period=due[partner.cadence], today=today)
        except Exception:
            logger.exception("Could not send the %s report of %s", partner.cadence, partner.slug)
            failed.append(partner.slug)
            continue
        if delivery is not None:
            sent.append(delivery)
    if failed:
        raise ReportsFailed(f"Reports not sent for {', '.join(failed)}")
    return sent


def report_send(*, partner: Partner, period: str, today: dt.date) -> ReportDelivery | None:
    """Emails the partner's report of `period` (its latest snapshot) to each recipient, once.
    None when it was sent before or the partner has no snapshot yet (nothing is claimed then,
    so a later run can still send it)."""
    with scope(partner=partner):
        as_of = latest_snapshot_date(partner=partner)
        if as_of is None:
            logger.warning("%s has no metric snapshot yet: its report of %s is not sent", partner.slug, period)
            return None
        schedule = report_schedule_get(partner=partner)
        recipients = _recipients(partner, schedule)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    delivery = ReportDelivery.objects.create(
                        partner=partner, period=period, as_of=as_of, recipients=len(recipients)
                    )
            except IntegrityError:
                logger.info("The report of %s for %s was sent already; skipped", partner.slug, period)
                return None
            messages = _messages(partner, schedule, recipients, as_of=as_of, period=period, today=today)
            get_connection().send_messages(messages)
    logger.info("Report of %s for %s sent to %d recipients", partner.slug, period, len(recipients))
    return delivery


def _recipients(partner: Partner, schedule: ReportSchedule) -> list[StaffUser]:
    """The chosen staff who are still active members of the partner."""
    if schedule.pk is None:
        return []
    return list(schedule.recipients.filter(partner=partner, is_active=True).order_by("email"))


def _messages(
    partner: Partner,
    schedule: ReportSchedule,
    recipients: list[StaffUser],
    *,
    as_of: dt.date,
    period: str,
    today: dt.date,
) -> list[EmailMessage]:
    """One message per recipient, addressed to that recipient only."""
    subject = f"Partner Insights · {partner.name} · portfolio {as_of:%Y-%m-%d}"
    body = report_summary(partner=partner, as_of=as_of, period=period, today=today, grain=schedule.grain)
    csv = b"".join(portfolio_lines(partner=partner, as_of=as_of, grain=schedule.grain))
    filename = export_filename(partner=partner, as_of=as_of, grain=schedule.grain)
    messages = []
    for recipient in recipients:
        message = EmailMessage(subject=subject, body=body, to=[recipient.email])
        message.attach(_csv_attachment(filename, csv))
        messages.append(message)
    return messages


def _csv_attachment(filename: str, content: bytes) -> MIMEBase:
    """The CSV as a base64 text/csv part: Django would send bytes of a text type as 8bit text,
    whose line ends the mail generator rewrites, so the file would lose its CRLFs (SPEC §7)."""
    part = MIMEBase("text", "csv", charset="utf-8")
    part.set_payload(content)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def report_summary(*, partner: Partner, as_of: dt.date, period: str, today: dt.date, grain: str) -> str:
    """The plain-text body: the portfolio per family, customers per recommendation kind, and
    the customers with the most unused licenses."""
    lines = [
        f"Portfolio of {partner.name} on {as_of:%Y-%m-%d} (report {period}, sent {today:%Y-%m-%d}).",
        "",
        "Portfolio by product family:",
        *_family_lines(partner, as_of),
        "",
        "Customers per recommendation:",
        *_recommendation_lines(partner, as_of),
        "",
        "Most unused licenses (sold − assigned):",
        *_most_unused_lines(partner, as_of),
        "",
        f"The attached CSV has every customer's numbers at the {grain} grain.",
    ]
    return "\n".join(lines) + "\n"


def _family_lines(partner: Partner, as_of: dt.date) -> list[str]:
    rows = portfolio_snapshot_list(partner=partner, span=(as_of, as_of)).filter(family__in=INSIGHT_FAMILIES)
    return [
        f"- {Family(row.family).label}: customers {row.customers}, sold {row.sold_licenses}, "
        f"assigned {row.assigned_licenses}, entitled {row.entitled_users}, active {row.active_users}, "
        f"deployment {_percent(row.assigned_licenses, row.sold_licenses)}, "
        f"usage {_percent(row.active_users, row.entitled_users)}"
        for row in rows.order_by("family")
    ]


def _recommendation_lines(partner: Partner, as_of: dt.date) -> list[str]:
    found = recommendation_list(partner=partner, as_of=as_of, settings=insight_settings(partner=partner))
    return [f"- {kind.label}: {len({r.customer_id for r in found if r.kind == kind})}" for kind in Kind]


def _percent(numerator: int, denominator: int) -> str:
    value = pct(numerator, denominator)
    return f"{value}%" if value else "no data"


def _most_unused_lines(partner: Partner, as_of: dt.date) -> list[str]:
    """The TOP_UNUSED customers with the most unused licenses over their families."""
    return [
        f"- {row['customer__name']} ({row['customer__external_id']}): {row['unused']} of {row['sold']} unused"
        for row in most_unused_customers(partner=partner, as_of=as_of, limit=TOP_UNUSED)
    ]

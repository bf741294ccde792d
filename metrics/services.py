"""Recomputing metric snapshots: one date in one transaction, recorded in the run ledger.

Safe to run twice or at once: a per-partner lock serialises runs of one partner, a run that
finds its date recomputed by a concurrent run while it waited skips it, and every date is
published (snapshots and its ledger row) in one transaction, so readers never see half a day.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable

import structlog
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Partner
from core.db import partner_lock, partner_try_lock
from metrics import engine
from metrics.models import InsightSettings, RecomputeRun, SkuSetting, Trigger

logger = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5  # a date that failed this often stops being retried (a poison task)
# Who may start a fresh series of attempts on a date that gave up: a person (the command line,
# the Recompute now button), never a retry, a redelivery or the nightly run.
PERSON_TRIGGERS = frozenset({Trigger.COMMAND, Trigger.MANUAL})
CATCH_UP_DAYS = 7  # the nightly run also redoes the nights of the last week that did not succeed


class GaveUp(Exception):
    """The date failed MAX_ATTEMPTS times; it needs a person, not another retry."""


def yesterday() -> dt.date:
    """The day before today in the configured time zone (SPEC §5)."""
    return timezone.localdate() - dt.timedelta(days=1)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from `start` to `end`, both included."""
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def metrics_recompute(*, partner: Partner, as_of: dt.date, trigger: Trigger) -> RecomputeRun:
    """Recomputes every grain of `partner` at `as_of` and records the run.

    Raises what the database raised (the run is then recorded as failed) and GaveUp when the
    date already failed MAX_ATTEMPTS times (the run then says it gave up), unless a person asks.
    """
    requested_at = timezone.now()
    attempts = _count_attempt(partner, as_of, trigger)
    if attempts > MAX_ATTEMPTS:
        raise GaveUp(f"{partner.slug} {as_of}: gave up after {MAX_ATTEMPTS} failed attempts")
    started = time.monotonic()
    try:
        with transaction.atomic():
            if not partner_try_lock("metrics", partner.pk):
                logger.info("Recompute of %s is running elsewhere; waiting for it", partner.slug)
                partner_lock("metrics", partner.pk)
            run = RecomputeRun.objects.select_for_update().get(partner=partner, as_of=as_of)
            if run.status == RecomputeRun.Status.SUCCEEDED and run.finished_at and run.finished_at > requested_at:
                logger.info("%s %s was recomputed by a concurrent run; skipped", partner.slug, as_of)
                return run
            engine.compute_date(partner_id=partner.pk, as_of=as_of)
            run.status, run.error, run.trigger = RecomputeRun.Status.SUCCEEDED, "", trigger
            run.finished_at = run.published_at = timezone.now()
            run.duration_ms = int((time.monotonic() - started) * 1000)
            run.save()
            logger.info(
                "recompute_finished",
                partner_id=partner.pk,
                as_of=as_of.isoformat(),
                trigger=str(trigger),
                attempt=attempts,
                duration_ms=run.duration_ms,
            )
            return run
    except Exception as error:
        _record_failure(partner, as_of, error)
        raise


def metrics_recompute_dates(
    *,
    partner: Partner,
    dates: Iterable[dt.date],
    trigger: Trigger,
    progress: Callable[[RecomputeRun], None] | None = None,
) -> list[RecomputeRun]:
    """Recomputes several dates, each in its own transaction: memory stays flat, and every
    finished date is visible at once."""
    runs = []
    for as_of in dates:
        run = metrics_recompute(partner=partner, as_of=as_of, trigger=trigger)
        if progress:
            progress(run)
        runs.append(run)
    return runs


def _count_attempt(partner: Partner, as_of: dt.date, trigger: Trigger) -> int:
    """Claims the ledger row and counts this attempt, committed before the work starts, so a
    worker killed mid-run still leaves its attempt counted. Past MAX_ATTEMPTS the row is marked
    failed for good instead (and MAX_ATTEMPTS + 1 returned)."""
    with transaction.atomic():
        run, created = RecomputeRun.objects.select_for_update().get_or_create(
            partner=partner, as_of=as_of, defaults={"trigger": trigger, "attempts": 1}
        )
        if created:
            return 1
        # A date that succeeded before, or a person's request, starts a fresh series of attempts.
        fresh = run.status == RecomputeRun.Status.SUCCEEDED or trigger in PERSON_TRIGGERS
        if not fresh and run.attempts >= MAX_ATTEMPTS:
            RecomputeRun.objects.filter(pk=run.pk).update(
                status=RecomputeRun.Status.FAILED, error=_gave_up(run), finished_at=timezone.now()
            )
            return MAX_ATTEMPTS + 1
        attempts = 1 if fresh else run.attempts + 1
        RecomputeRun.objects.filter(pk=run.pk).update(
            attempts=attempts, status=RecomputeRun.Status.RUNNING, trigger=trigger, started_at=timezone.now()
        )
        return attempts


def _gave_up(run: RecomputeRun) -> str:
    if run.error.startswith("Gave up"):
        return run.error
    # No error recorded: the attempt ended with its process (killed, out of memory).
    last = run.error or "none recorded, the worker running it was lost"
    message = f"Gave up after {run.attempts} attempts; recompute it by hand once the cause is fixed. Last error: {last}"
    return message[:2000]


def _record_failure(partner: Partner, as_of: dt.date, error: Exception) -> None:
    logger.warning("recompute_failed", partner_id=partner.pk, as_of=as_of.isoformat(), error=type(error).__name__)
    if connection.needs_rollback or not connection.is_usable():
        connection.close()  # a broken connection: the next query opens a new one
    try:
        RecomputeRun.objects.filter(partner=partner, as_of=as_of).update(
            status=RecomputeRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=timezone.now(),
        )
    except Exception:
        logger.exception("Could not record the failed recompute of %s %s", partner.slug, as_of)


def dates_to_refresh(*, partner: Partner, affected_from: dt.date | None, affected_to: dt.date | None) -> list[dt.date]:
    """What an import makes stale: yesterday, plus every published date that reads a date the
    import touched: its 28-day window, or its inactive users' 180-day lookback."""
    dates = {yesterday()}
    if affected_from and affected_to:
        window_end = min(affected_to + dt.timedelta(days=engine.LOOKBACK_DAYS - 1), yesterday())
        published = RecomputeRun.objects.filter(
            partner=partner, published_at__isnull=False, as_of__gte=affected_from, as_of__lte=window_end
        )
        dates.update(published.values_list("as_of", flat=True))
    return sorted(dates)


def nightly_dates(*, partner: Partner) -> list[dt.date]:
    """What the nightly run recomputes: yesterday first, then each earlier night of the last
    CATCH_UP_DAYS whose recompute did not succeed, newest first — its retries ran out while the
    database was down, or it was never queued (the broker was down when beat fired). A date that
    gave up waits for a person; nights before the partner's first published one are not missing."""
    end = yesterday()
    start = end - dt.timedelta(days=CATCH_UP_DAYS - 1)
    runs = {run.as_of: run for run in RecomputeRun.objects.filter(partner=partner, as_of__gte=start, as_of__lte=end)}
    published = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False)
    first_published = published.aggregate(first=Min("as_of"))["first"]

    def missed(as_of: dt.date) -> bool:
        run = runs.get(as_of)
        if run is None:  # never queued, or its message was lost
            return first_published is not None and as_of > first_published
        return run.status != RecomputeRun.Status.SUCCEEDED and run.attempts < MAX_ATTEMPTS

    earlier = reversed(date_range(start, end - dt.timedelta(days=1)))
    return [end, *(as_of for as_of in earlier if missed(as_of))]


@transaction.atomic
def insight_settings_save(
    *, partner: Partner, settings: InsightSettings, sku_rows: list[dict[str, object]]
) -> list[dt.date]:
    """Saves the partner's thresholds and per-SKU prices and exclusions; returns the dates to
    recompute: exclusions change the numbers recommendations read (FamilySnapshot.rec_*), so
    changing them makes the latest date stale."""
    settings.partner = partner
    settings.save()
    before = set(SkuSetting.objects.filter(partner=partner, excluded=True).values_list("sku", flat=True))
    for row in sku_rows:
        price, excluded = row.get("monthly_price"), bool(row.get("excluded"))
        if price is None and not excluded:
            SkuSetting.objects.filter(partner=partner, sku=row["sku"]).delete()
        else:
            SkuSetting.objects.update_or_create(
                partner=partner, sku=row["sku"], defaults={"monthly_price": price, "excluded": excluded}
            )
    after = set(SkuSetting.objects.filter(partner=partner, excluded=True).values_list("sku", flat=True))
    latest = RecomputeRun.objects.filter(partner=partner, published_at__isnull=False).order_by("-as_of").first()
    return [latest.as_of] if before != after and latest is not None else []

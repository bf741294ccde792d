"""A client of the vendor's APIs (SPEC §9): the partner portal (Partner Center REST) and the
directory (Microsoft Graph), with app-only tokens from the login service through MSAL.

Every answer is written to a file as it streams in, never held whole in memory; the files have the
shapes of vendor-formats.md, so the import pipeline reads them as it reads uploaded exports.
A failure raises VendorError with its kind and a sentence a partner can act on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from django.db import models


class ErrorKind(models.TextChoices):
    """Why a call failed, as the sync status page says it."""

    CREDENTIALS_REFUSED = "credentials_refused", "Credentials refused"
    CONSENT_REVOKED = "consent_revoked", "Consent revoked or never given"
    PERMISSION_MISSING = "permission_missing", "Permission missing"
    TENANT_GONE = "tenant_gone", "Tenant gone"
    THROTTLED = "throttled", "Throttled beyond the budget"
    MALFORMED = "malformed", "Malformed answer"
    UNAVAILABLE = "unavailable", "Service unavailable"


class VendorError(Exception):
    """A call that failed for good (after the retries its kind allows). `message` is plain words
    for a partner: what failed, for which tenant, and what to do; never a secret or a token."""

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.status, self.code = kind, message, status, code


@dataclass(frozen=True)
class Credentials:
    """The partner's app registration: its directory tenant, the app's client id and secret."""

    tenant_id: str
    client_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Endpoints:
    """Where the vendor's services are (settings VENDOR_*: national clouds, tests)."""

    login: str
    partner_center: str
    graph: str
    ca_bundle: str | None = None  # a file of CA certificates trusted for these hosts


@dataclass(frozen=True)
class Rate:
    """At most `requests` report calls per `seconds`, per customer tenant (VENDOR_REPORT_RATE)."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`14/600` → 14 requests per 600 seconds; ValueError naming the expected form otherwise."""
        raise NotImplementedError


@dataclass
class Stats:
    """What a client did: for the pull's record and logs."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers honoured
    token_refreshes: int = 0  # tokens fetched again after an expired-token answer
    bytes: int = 0


@dataclass(frozen=True)
class Report:
    """One day's active-user detail report, written to `path`."""

    day: dt.date
    path: Path
    rows: int  # 0: the day has no data yet (ask again at the next pull)


class VendorClient:
    """One partner's client for one pull. Not thread-safe per tenant: the puller gives each
    worker thread its own customers; tokens are shared (MSAL's cache is locked).

    `retry_budget` caps the retries of 5xx and network errors over the whole pull; `report_rate`
    paces the report calls per customer tenant; a 429 waits its Retry-After (up to `max_wait`
    seconds, else THROTTLED)."""

    def __init__(
        self,
        credentials: Credentials,
        endpoints: Endpoints,
        *,
        report_rate: Rate,
        retry_budget: int = 50,
        max_wait: float = 120.0,
        timeout: tuple[float, float] = (5.0, 60.0),
    ) -> None:
        raise NotImplementedError

    stats: Stats

    def check_partner_token(self) -> None:
        """Gets the partner portal's token (raises VendorError: CREDENTIALS_REFUSED, …)."""
        raise NotImplementedError

    def write_customers(self, path: Path) -> list[str]:
        """Writes the partner's customer list (every page, `links.next` followed with its
        continuation header) to `path` as one `{"totalCount": n, "items": [...]}` collection, and
        returns the customers' tenant ids in the portal's order."""
        raise NotImplementedError

    def write_subscriptions(self, tenant_id: str, path: Path) -> int:
        """Writes a customer's own subscriptions (one collection) to `path`; returns how many."""
        raise NotImplementedError

    def write_subscribed_skus(self, tenant_id: str, path: Path) -> int:
        """Writes a customer tenant's subscribed SKUs (every `@odata.nextLink` page) to `path` as one
        `{"value": [...]}`; returns how many."""
        raise NotImplementedError

    def write_activity_report(self, tenant_id: str, day: dt.date, path: Path) -> Report:
        """Writes the tenant's active-user detail report of `day` (the 302's download, fetched
        without the bearer token) to `path`, paced by `report_rate`."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

"""A client of the vendor's APIs (SPEC §9): the partner portal (Partner Center REST) and the
directory (Microsoft Graph), with app-only tokens from the login service through MSAL.

Every answer is written to a file as it streams in, never held whole in memory; the files have the
shapes of vendor-formats.md, so the import pipeline reads them as it reads uploaded exports.
A failure raises VendorError with its kind and a sentence a partner can act on.

The documented behaviour each piece follows (Microsoft Learn, learn.microsoft.com):
- tokens: the client credentials grant, one token per tenant and resource `<resource>/.default`
  (/entra/identity-platform/v2-oauth2-client-creds-grant-flow); MSAL's acquire_token_for_client
  keeps it until it expires (/entra/msal/python/); vendor-formats.md §5 for what was verified here;
- partner portal: GET /v1/customers pages with `links.next` whose `headers` carry
  MS-ContinuationToken (/partner-center/developer/get-a-list-of-customers); a customer's
  subscriptions (/partner-center/developer/get-all-of-a-customer-s-subscriptions); the
  MS-RequestId and MS-CorrelationId headers (/partner-center/developer/headers);
- directory: `@odata.nextLink` followed as given (/graph/paging); subscribedSkus
  (/graph/api/subscribedsku-list); the active-user detail report answers 302 Found with a
  short-lived, pre-authenticated download address in Location
  (/graph/api/reportroot-getoffice365activeuserdetail), fetched here without the token;
- throttling: 429 with Retry-After, to be waited before asking again (/graph/throttling); the
  reports service allows 14 requests per 10 minutes per app and tenant
  (/graph/throttling-limits#reports-service-limits);
- roles and concealment: which roles may read reports (/graph/reportroot-authorization); concealed
  user names and how an admin turns it off
  (/microsoft-365/admin/activity-reports/activity-reports#show-user-details-in-the-reports).
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import msal
import requests
from django.db import models

USER_AGENT = "PartnerInsights/1.0"
REPORT = "/v1.0/reports/getOffice365ActiveUserDetail(date={day})"
CHUNK = 64 * 1024
BACKOFF = 0.25  # seconds before the first retry; doubling up to 8 s
# AADSTS codes of a customer tenant without the app's consent: not found there, consent required,
# disabled there, service principal missing.
CONSENT_CODES = {700016, 65001, 7000112, 500011}


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
        count, _, seconds = text.strip().partition("/")
        try:
            rate = cls(int(count), float(seconds))
        except ValueError:
            rate = cls(0, 0.0)
        if rate.requests < 1 or rate.seconds <= 0:
            raise ValueError(f"VENDOR_REPORT_RATE is {text!r}; expected requests/seconds, e.g. 14/600.")
        return rate


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


@dataclass(frozen=True)
class _Call:
    """One API call as the error messages name it: what was asked, of which customer, and the
    delegated role (or the partner portal's) that a 403 means is missing."""

    what: str
    tenant: str  # the tenant the token is for
    scope: str
    service: str  # "the partner portal", "the directory": who answers
    customer: str = ""  # the customer the answer is about ("" for the partner's own calls)
    role: str = ""

    @property
    def object(self) -> str:
        """What was asked: "the subscribed SKUs of customer …"."""
        return self.what + (f" of customer {self.customer}" if self.customer else "")

    @property
    def subject(self) -> str:
        """The same, as a sentence starts."""
        return self.object[0].upper() + self.object[1:]


class _Pace:
    """A sliding window of a tenant's report calls: waits until one more is allowed. A call is
    stamped when its answer came (`answered`), so that the vendor, which counts a call when it
    arrives, never sees more than the rate in any window."""

    def __init__(self, rate: Rate) -> None:
        self.rate, self.calls, self.lock = rate, deque[float](), threading.Lock()

    def wait(self) -> None:
        with self.lock:
            while len(self.calls) >= self.rate.requests:
                pause = self.calls[0] + self.rate.seconds - time.monotonic()
                if pause <= 0:
                    self.calls.popleft()
                    continue
                time.sleep(pause)
            self.calls.append(time.monotonic())

    def answered(self) -> None:
        with self.lock:
            if self.calls:
                self.calls[-1] = time.monotonic()


class VendorClient:
    """One partner's client for one pull. Not thread-safe per tenant: the puller gives each
    worker thread its own customers; tokens are shared (MSAL's cache is locked).

    `retry_budget` caps the retries of 5xx and network errors per customer (and for the partner's
    own calls), so a customer whose answers keep breaking gives up alone; `report_rate`
    paces the report calls per customer tenant; a 429 waits its Retry-After (up to `max_wait`
    seconds, else THROTTLED), at most `throttle_retries` times per call."""

    def __init__(
        self,
        credentials: Credentials,
        endpoints: Endpoints,
        *,
        report_rate: Rate,
        retry_budget: int = 8,
        max_wait: float = 120.0,
        throttle_retries: int = 5,
        timeout: tuple[float, float] = (5.0, 60.0),
    ) -> None:
        self.credentials, self.endpoints, self.report_rate = credentials, endpoints, report_rate
        self.max_wait, self.throttle_retries, self.timeout = max_wait, throttle_retries, timeout
        self.stats = Stats()
        self.more_customers = False  # the portal had more than the first page (write_customers)
        self.retry_budget = retry_budget
        self._spent: dict[str, int] = {}  # retries spent per customer ("" for the partner's own calls)
        self._lock = threading.Lock()
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._app_locks: dict[str, threading.Lock] = {}
        self._paces: dict[str, _Pace] = {}
        self._correlation = str(uuid.uuid4())  # one per pull: the vendor's support can follow it
        # MSAL and requests would prefer REQUESTS_CA_BUNDLE to `verify` (vendor-formats §5): the
        # session ignores the environment, and the same session serves tokens and calls.
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = endpoints.ca_bundle or True
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    # --- what a pull reads --------------------------------------------------------------------

    def check_partner_token(self) -> None:
        """Gets the partner portal's token (raises VendorError: CREDENTIALS_REFUSED, …)."""
        self._token(self._partner_call("the partner portal's token"))

    def write_customers(self, path: Path, *, first_page_only: bool = False) -> list[str]:
        """Writes the partner's customer list (every page, `links.next` followed with its
        continuation header; or its first page) to `path` as one `{"totalCount": n, "items": [...]}`
        collection, and returns the customers' tenant ids in the portal's order. After a first
        page only, `more_customers` says whether the portal has more."""
        call = self._partner_call("the customer list")
        tenants: list[str] = []
        url = f"{self.endpoints.partner_center}/v1/customers"
        with _Collection(path, "items") as out:
            pages = self._portal_pages(call, url, first_page_only=first_page_only)
            for item in pages:
                out.add(item)
                if tenant := tenant_of(item):
                    tenants.append(tenant)
        return tenants

    def write_subscriptions(self, tenant_id: str, path: Path) -> int:
        """Writes a customer's own subscriptions (one collection) to `path`; returns how many."""
        call = self._partner_call(
            "the subscriptions",
            customer=tenant_id,
            role="to be added in Partner Center (App management) with a delegated admin relationship to this customer",
        )
        url = f"{self.endpoints.partner_center}/v1/customers/{tenant_id}/subscriptions"
        with _Collection(path, "items") as out:
            for item in self._portal_pages(call, url):
                out.add(item)
        return out.count

    def write_subscribed_skus(self, tenant_id: str, path: Path) -> int:
        """Writes a customer tenant's subscribed SKUs (every `@odata.nextLink` page) to `path` as one
        `{"value": [...]}`; returns how many."""
        call = self._graph_call(
            "the subscribed SKUs",
            tenant_id,
            role="the application permission Organization.Read.All consented in this customer's tenant (a person "
            "would need the delegated role Directory Readers or Global Reader)",
        )
        url: str | None = f"{self.endpoints.graph}/v1.0/subscribedSkus"
        with _Collection(path, "value", total=False) as out:
            while url:
                page = self._json(call, self._get(call, url))
                for item in _list(call, page, "value"):
                    out.add(item)
                url = page.get("@odata.nextLink") or None
                if url and not _same_origin(str(url), self.endpoints.graph):  # never our token elsewhere
                    raise VendorError(ErrorKind.MALFORMED, f"{call.subject} pointed its next page at another host.")
        return out.count

    def write_activity_report(self, tenant_id: str, day: dt.date, path: Path) -> Report:
        """Writes the tenant's active-user detail report of `day` (the 302's download, fetched
        without the bearer token) to `path`, paced by `report_rate`."""
        call = self._graph_call(
            f"the activity report of {day.isoformat()}",
            tenant_id,
            role="the application permission Reports.Read.All consented in this customer's tenant (a person "
            "would need the delegated role Reports Reader)",
        )
        url = f"{self.endpoints.graph}{REPORT.format(day=day.isoformat())}"
        while True:
            with self._lock:
                pace = self._paces.setdefault(tenant_id, _Pace(self.report_rate))
            pace.wait()
            try:
                answer = self._get(call, url, stream=True)
            finally:
                pace.answered()
            try:
                if answer.status_code in (301, 302, 303, 307, 308):
                    location = urljoin(url, answer.headers.get("Location", ""))
                    answer.close()
                    written = self._download(call, location, path)
                else:
                    written = self._save(call, answer, path)
            except _Retry:
                continue  # the download broke off: ask for a new address (within the retry budget)
            finally:
                answer.close()
            return Report(day, path, _report_rows(call, path, written))

    def forget(self, tenant_id: str) -> None:
        """Drops what the client keeps of a customer tenant once its downloads are done (its
        token, its pace), so a pull of thousands of customers stays small."""
        with self._lock:
            self._apps.pop(tenant_id, None)
            self._app_locks.pop(tenant_id, None)
            self._paces.pop(tenant_id, None)
            self._spent.pop(tenant_id, None)

    def close(self) -> None:
        self.session.close()
        with self._lock:
            self._apps.clear()

    # --- calls ----------------------------------------------------------------------------------

    def _partner_call(self, what: str, *, customer: str = "", role: str = "") -> _Call:
        scope = f"{self.endpoints.partner_center}/.default"
        return _Call(
            what, self.credentials.tenant_id, scope, "the partner portal", customer, role or "the Admin agent role"
        )

    def _graph_call(self, what: str, tenant_id: str, *, role: str) -> _Call:
        return _Call(what, tenant_id, f"{self.endpoints.graph}/.default", "the directory", tenant_id, role)

    def _portal_pages(self, call: _Call, url: str, *, first_page_only: bool = False) -> Iterator[Any]:
        """The items of a partner portal collection, page by page (`links.next` with its headers)."""
        headers: dict[str, str] = {}
        while True:
            page = self._json(call, self._get(call, url, headers=headers))
            yield from _list(call, page, "items")
            links = page.get("links") if isinstance(page, dict) else None
            following = links.get("next") if isinstance(links, dict) else None
            if not isinstance(following, dict) or not following.get("uri"):
                return
            if first_page_only:
                self.more_customers = True
                return
            # the portal writes it relative to its API root ("/v1/customers?…"), under our base URL
            url = urljoin(f"{self.endpoints.partner_center}/v1/", str(following["uri"]).lstrip("/").removeprefix("v1/"))
            pairs = following.get("headers")
            pairs = pairs if isinstance(pairs, list) else []
            headers = {str(h.get("key")): str(h.get("value")) for h in pairs if isinstance(h, dict) and h.get("key")}

    def _get(
        self, call: _Call, url: str, *, headers: dict[str, str] | None = None, stream: bool = False
    ) -> requests.Response:
        """A GET with the call's token, retried as its answer allows; returns a 2xx or 3xx answer."""
        refreshed, throttled = False, 0
        while True:
            token = self._token(call)
            request_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "MS-CorrelationId": self._correlation,
                "MS-RequestId": str(uuid.uuid4()),
                **(headers or {}),
            }
            try:
                answer = self.session.get(
                    url, headers=request_headers, timeout=self.timeout, allow_redirects=False, stream=stream
                )
            except requests.RequestException as error:
                self._retry_or_fail(call, f"{call.service} could not be reached ({_reason(error)})")
                continue
            self._count(requests=1)
            status = answer.status_code
            if status < 400:
                return answer
            detail = _vendor_message(answer)
            answer.close()
            if status == 401 and not refreshed:  # an expired or revoked token: one new token
                refreshed = True
                self._drop_token(call)
                self._count(token_refreshes=1)
                continue
            if status == 429:
                throttled += 1
                wait = _retry_after(answer) or min(2.0**throttled, self.max_wait)
                if throttled > self.throttle_retries or wait > self.max_wait:
                    raise VendorError(
                        ErrorKind.THROTTLED,
                        f"{call.subject} kept being throttled by the vendor ({_times(throttled)}); "
                        "it is asked again at the next pull.",
                        status=429,
                    )
                self._count(throttled=1)
                time.sleep(wait)
                continue
            if status >= 500:
                self._retry_or_fail(call, f"{call.service} answered {status} ({detail})", wait=_retry_after(answer))
                continue
            raise self._refused(call, status, detail)

    def _download(self, call: _Call, location: str, path: Path) -> int:
        """The report's download address is short-lived and on another host: fetched with no
        token (a fresh request, never the session's headers with Authorization)."""
        try:
            answer = self.session.get(location, timeout=self.timeout, stream=True, headers={"Accept": "text/csv"})
        except requests.RequestException as error:
            self._retry_or_fail(call, f"the download could not be reached ({_reason(error)})")
            raise _Retry from None
        self._count(requests=1)
        if answer.status_code >= 400:
            detail = _vendor_message(answer)
            answer.close()
            if answer.status_code >= 500 or answer.status_code in (401, 403, 404, 410):  # expired address: ask again
                self._retry_or_fail(call, f"the download answered {answer.status_code} ({detail})")
                raise _Retry
            raise self._refused(call, answer.status_code, detail)
        with answer:
            return self._save(call, answer, path)

    def _save(self, call: _Call, answer: requests.Response, path: Path) -> int:
        """Streams an answer's body to `path`; a body cut off on the way is retried (budget)."""
        written = 0
        try:
            with path.open("wb") as file:
                for chunk in answer.iter_content(CHUNK):
                    file.write(chunk)
                    written += len(chunk)
        except requests.RequestException as error:
            self._count(bytes=written)
            self._retry_or_fail(call, f"the download broke off after {written} bytes ({_reason(error)})")
            raise _Retry from None
        self._count(bytes=written)
        return written

    def _json(self, call: _Call, answer: requests.Response) -> Any:
        with answer:
            body = answer.content
        self._count(bytes=len(body))
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise VendorError(
                ErrorKind.MALFORMED,
                f"{call.subject} came back as something that is not valid JSON ({error.msg}, byte "
                f"{error.pos} of {len(body)}); it is asked again at the next pull.",
            ) from None
        except UnicodeDecodeError:
            raise VendorError(
                ErrorKind.MALFORMED,
                f"{call.subject} came back as text that is not UTF-8; asked again at the next pull.",
            ) from None

    def _retry_or_fail(self, call: _Call, problem: str, *, wait: float | None = None) -> None:
        """Spends one retry of the customer's budget and waits before it (backoff, or the answer's
        Retry-After); UNAVAILABLE when none is left."""
        with self._lock:
            spent = self._spent.get(call.customer, 0)
            allowed = spent < self.retry_budget
            if allowed:
                self._spent[call.customer] = spent + 1
                self.stats.retries += 1
        if not allowed:
            raise VendorError(
                ErrorKind.UNAVAILABLE,
                f"Could not get {call.object}: {problem}. It was tried {_times(spent + 1)}; it is asked again at the "
                "next pull.",
            )
        time.sleep(min(wait if wait is not None else BACKOFF * 2 ** min(spent, 5), self.max_wait))

    def _refused(self, call: _Call, status: int, detail: str) -> VendorError:
        service = call.service[0].upper() + call.service[1:]
        if status == 401:
            if call.customer:
                return VendorError(
                    ErrorKind.CONSENT_REVOKED,
                    f"{service} refused the app {call.object} (401: {detail}): its access to this customer was "
                    "revoked.",
                    status=status,
                )
            return VendorError(
                ErrorKind.CREDENTIALS_REFUSED,
                f"The partner portal refused the app's token (401: {detail}).",
                status=status,
            )
        if status == 403:
            return VendorError(
                ErrorKind.PERMISSION_MISSING,
                f"{service} refused the app {call.object} (403: {detail}): the app needs {call.role}.",
                status=status,
            )
        if status == 404 and call.customer:
            return VendorError(
                ErrorKind.TENANT_GONE,
                f"{service} answered 404 for {call.object} ({detail}): the customer's tenant is gone or no "
                "longer the partner's customer.",
                status=status,
            )
        return VendorError(
            ErrorKind.UNAVAILABLE, f"{service} refused the app {call.object} ({status}: {detail}).", status=status
        )

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    # --- tokens ---------------------------------------------------------------------------------

    def _token(self, call: _Call) -> str:
        """The tenant's token for the call's service, reused until it expires (MSAL's cache)."""
        app = self._app(call)
        while True:
            try:
                result = app.acquire_token_for_client(scopes=[call.scope])
            except requests.RequestException as error:
                self._retry_or_fail(call, f"the login service could not be reached ({_reason(error)})")
                continue
            if "access_token" in result:
                return str(result["access_token"])
            raise self._token_refused(call, result)

    def _app(self, call: _Call) -> msal.ConfidentialClientApplication:
        with self._lock:
            app = self._apps.get(call.tenant)
            lock = self._app_locks.setdefault(call.tenant, threading.Lock())
        if app is not None:
            return app
        with lock:
            with self._lock:
                app = self._apps.get(call.tenant)
            while app is None:
                try:
                    # instance_discovery off: MSAL would ask the public cloud about any other host.
                    app = msal.ConfidentialClientApplication(
                        self.credentials.client_id,
                        client_credential=self.credentials.secret,
                        authority=f"{self.endpoints.login}/{call.tenant}",
                        instance_discovery=False,
                        http_client=self.session,
                        timeout=self.timeout[1],
                    )
                except requests.RequestException as error:
                    self._retry_or_fail(call, f"the login service could not be reached ({_reason(error)})")
                except ValueError as error:  # MSAL could not read the tenant's configuration
                    # (the login service's own answer, e.g. AADSTS90002 for a tenant that is gone,
                    # is the context of MSAL's "Unable to get authority configuration")
                    answer = f"{error.__context__}\n" if error.__context__ else ""
                    raise self._token_refused(call, {"error_description": f"{answer}{error}"}) from None
            with self._lock:
                self._apps[call.tenant] = app
        return app

    def _drop_token(self, call: _Call) -> None:
        with self._lock:
            app = self._apps.get(call.tenant)
        if app is not None:
            app.remove_tokens_for_client()

    def _token_refused(self, call: _Call, result: dict[str, Any]) -> VendorError:
        description = str(result.get("error_description") or result.get("error") or "no reason given")
        codes = {int(code) for code in result.get("error_codes") or [] if str(code).isdigit()}
        codes |= {int(code) for code in _aadsts(description)}
        # the service's first sentence (its later ones and the "Trace ID: … Correlation ID: …"
        # tail are for the vendor's support)
        reason = description.splitlines()[0].split(" Trace ID:")[0].split(". ")[0].strip().rstrip(".")[:300]
        if 90002 in codes:
            if call.customer:
                return VendorError(
                    ErrorKind.TENANT_GONE,
                    f"The tenant of customer {call.customer} no longer exists ({reason}).",
                    code="90002",
                )
            return VendorError(
                ErrorKind.CREDENTIALS_REFUSED,
                f"The partner's tenant {call.tenant} does not exist ({reason}). Check the tenant id.",
                code="90002",
            )
        if call.customer and codes & CONSENT_CODES:
            return VendorError(
                ErrorKind.CONSENT_REVOKED,
                f"Customer {call.customer} has not consented to the app, or revoked it ({reason}). A Global "
                "admin of the customer grants it again through the partner's delegated admin access.",
                code=str(min(codes & CONSENT_CODES)),
            )
        if not call.customer or codes & {7000215, 7000222, 700016}:
            return VendorError(
                ErrorKind.CREDENTIALS_REFUSED,
                f"The login service refused the app's credentials ({reason}). Check the client id and secret "
                "on the connection page.",
                code=",".join(str(code) for code in sorted(codes)),
            )
        return VendorError(
            ErrorKind.UNAVAILABLE,
            f"No token for {call.object} ({reason}).",
            code=",".join(str(code) for code in sorted(codes)),
        )


class _Retry(Exception):
    """A download broke off and a retry was granted: the caller asks again."""


class _Collection:
    """Writes `{"totalCount": n, "<key>": [...]}` item by item (`{"value": [...]}` without total)."""

    def __init__(self, path: Path, key: str, *, total: bool = True) -> None:
        self.key, self.total, self.count = key, total, 0
        self.file: IO[str] = path.open("w", encoding="utf-8")

    def __enter__(self) -> _Collection:
        self.file.write(f'{{"{self.key}": [')
        return self

    def add(self, item: Any) -> None:
        self.file.write(("," if self.count else "") + json.dumps(item, ensure_ascii=False))
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.file.write("]" + (f', "totalCount": {self.count}' if self.total else "") + "}")
        self.file.close()


def tenant_of(customer: Any) -> str:
    """A partner portal customer's directory tenant id (`companyProfile.tenantId`), or ""."""
    profile = customer.get("companyProfile") if isinstance(customer, dict) else None
    return str(profile.get("tenantId") or "") if isinstance(profile, dict) else ""


def _list(call: _Call, page: Any, key: str) -> list[Any]:
    items = page.get(key) if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise VendorError(
            ErrorKind.MALFORMED,
            f"{call.subject} came back without its list of {key!r}; it is asked again at the next pull.",
        )
    return items


def _report_rows(call: _Call, path: Path, written: int) -> int:
    """The report's user rows; a body that ends in the middle of a row is MALFORMED."""
    if not written:
        return 0
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        rows = 0
        for row in reader:
            if len(row) != len(header):
                raise VendorError(
                    ErrorKind.MALFORMED,
                    f"The activity report of customer {call.customer} for {call.what.rsplit(' ', 1)[-1]} has "
                    f"{len(row)} cells on line {reader.line_num} where its header has {len(header)} (cut short?); "
                    "it is asked again at the next pull.",
                )
            rows += 1
    return rows


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _same_origin(url: str, base: str) -> bool:
    return urlsplit(url)[:2] == urlsplit(base)[:2]


def _retry_after(answer: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), else None."""
    value = answer.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        when = email.utils.parsedate_to_datetime(value) if "," in value else None
        if when is not None:
            return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    return None


def _vendor_message(answer: requests.Response) -> str:
    """The vendor's own words of an error answer (Graph's error.message, the portal's description),
    short; never a header (no token can appear)."""
    try:
        body = answer.json() if answer.content else {}
    except ValueError:
        return answer.reason or "no explanation"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    elif isinstance(body, dict):
        text = str(body.get("description") or body.get("error_description") or error or answer.reason)
    else:
        text = answer.reason
    return " ".join(str(text).split())[:300] or "no explanation"


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.exceptions.SSLError):
        return "its certificate is not trusted (VENDOR_CA_BUNDLE?)"
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        text = str(error)
        return "connection refused" if "refused" in text.lower() else "the connection failed"
    return type(error).__name__


def _aadsts(text: str) -> list[str]:
    return re.findall(r"AADSTS(\d+)", text)

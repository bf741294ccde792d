"""A replay of the vendor's APIs over HTTPS on loopback (SPEC §9, vendor-formats.md), for the tests
of the vendor client and the nightly pull.

`make_world()` builds a deterministic partner with customer tenants (subscriptions, subscribed SKUs,
users with activity); `VendorReplay(world)` serves it:

- login (`login_url`, the origin's root, so that the tenant is the first path segment as on
  login.microsoftonline.com; MSAL takes its cache "realm" from that segment):
  `GET /<tenant>/v2.0/.well-known/openid-configuration`, `POST /<tenant>/oauth2/v2.0/token`
  (client credentials, client_secret_post or client_secret_basic);
- Partner Center (`partner_center_url` = `/pc`): `GET /v1/customers` (paged: `links.next.uri` is
  relative to the API root, as the real service writes it: "/v1/customers?size=2&seekOperation=Next",
  with the `MS-ContinuationToken` header the next page needs), `GET /v1/customers/<id>/subscriptions`;
- Graph (`graph_url` = `/graph`): `GET /v1.0/subscribedSkus` (paged by an absolute
  `@odata.nextLink`), `GET /v1.0/reports/getOffice365ActiveUserDetail(date=YYYY-MM-DD)` (302 to the
  download origin, another port: `GET /reports/<signed>`, refused with 400 when it carries an
  Authorization header, 403 when the address expired or was never given). Days last_day − 28 …
  last_day have data; later days a header-only CSV; earlier days answer 400.

Faults (`World.faults[tenant_id]`): see FAULTS. What MSAL 1.39 does with them (checked by the tests):
- `tenant_gone`: the openid-configuration answers 400 AADSTS90002, so
  `ConfidentialClientApplication(...)` itself raises ValueError ("Unable to get authority
  configuration for …"; the 400's text is in its `__context__`);
- `consent_revoked` (and a wrong client id): `acquire_token_for_client()` returns
  `{"error": "unauthorized_client", "error_codes": [700016], …}`, as the real service answers;
- a wrong secret: it returns `{"error": "invalid_client", "error_codes": [7000215], …}` (HTTP 401).
MSAL answers a token request from its HTTP cache for 60 seconds after a 400 of the token endpoint
(per application object), without asking the service again.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import hmac
import io
import json
import math
import random
import re
import secrets
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
import uuid
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

from customers.catalog import CATALOG

HEADER = (
    "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    "Has Exchange License", "Has OneDrive License", "Has SharePoint License", "Has Skype For Business License",
    "Has Yammer License", "Has Teams License", "Exchange Last Activity Date", "OneDrive Last Activity Date",
    "SharePoint Last Activity Date", "Skype For Business Last Activity Date", "Yammer Last Activity Date",
    "Teams Last Activity Date", "Exchange License Assign Date", "OneDrive License Assign Date",
    "SharePoint License Assign Date", "Skype For Business License Assign Date", "Yammer License Assign Date",
    "Teams License Assign Date", "Assigned Products",
)  # fmt: skip
REFRESH = "Report Refresh Date"
# The report's name of each workload, and the catalog workload giving its license (Skype: Teams).
LABELS = {
    "Exchange": "exchange",
    "OneDrive": "onedrive",
    "SharePoint": "sharepoint",
    "Skype For Business": "teams",
    "Yammer": "yammer",
    "Teams": "teams",
}
ACTIVE_LABELS = ("Exchange", "OneDrive", "SharePoint", "Yammer", "Teams")  # Skype for Business is retired
REPORT_DAYS = 28  # days before last_day the report API still serves

FAULTS = {
    "consent_revoked": "customer token: 400 unauthorized_client AADSTS700016",
    "tenant_gone": "openid-configuration and token: 400 invalid_tenant AADSTS90002; PC subscriptions: 404",
    "permission_missing": "subscribedSkus and reports: 403 Authorization_RequestDenied",
    "throttled_once": "the tenant's first report request: 429 Retry-After: 1",
    "throttled_forever": "every report request: 429 Retry-After: 1",
    "server_error_once": "the tenant's first subscribedSkus request: 503",
    "expired_token_once": "the tenant's second Graph request: 401 InvalidAuthenticationToken (token expired)",
    "malformed_json": "subscribedSkus: 200 with truncated JSON",
    "truncated_csv": "report download: the CSV cut in the middle of a row (Content-Length as sent)",
    "drop_connection": "report download: the socket closed after half of the promised Content-Length",
    "empty": "no subscriptions, no SKUs, no users",
    "customers_unavailable": "(partner tenant) GET /v1/customers: 503",
}

# skuPartNumber -> the real skuId of the public cloud.
SKU_IDS = {
    "STANDARDPACK": "18181a46-0d4e-45cd-891e-60aabd171b4e",
    "ENTERPRISEPACK": "6fd2c87f-b296-42f0-b197-1e91e994b900",
    "ENTERPRISEPREMIUM": "c7df2760-2c81-4ef7-b578-5b5392b571df",
    "O365_BUSINESS_ESSENTIALS": "3b555118-da6a-4418-894f-7df1e2096870",
    "O365_BUSINESS_PREMIUM": "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
    "SPB": "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",
    "EXCHANGESTANDARD": "4b9405b0-7788-4568-add1-99614e613b69",
    "DYN365_ENTERPRISE_SALES": "1e1a282c-9c54-43a2-9310-98ef728faace",
    "DYN365_ENTERPRISE_CUSTOMER_SERVICE": "749742bf-0d37-4158-a120-33567104deeb",
    "POWER_BI_PRO": "f8a1db68-be16-40ed-86d5-cb42ce701560",
}
SERVICE_PLANS = {
    "exchange": "EXCHANGE_S_ENTERPRISE",
    "sharepoint": "SHAREPOINTENTERPRISE",
    "teams": "TEAMS1",
    "yammer": "YAMMER_ENTERPRISE",
    "office_apps": "OFFICESUBSCRIPTION",
    "dynamics365": "DYN365_ENTERPRISE_P1",
}
CATALOG_BY_SKU = {sku: (name, set(workloads)) for sku, name, _family, workloads in CATALOG}
SUITES = ("STANDARDPACK", "ENTERPRISEPACK", "ENTERPRISEPREMIUM", "O365_BUSINESS_ESSENTIALS", "O365_BUSINESS_PREMIUM")
ADD_ONS = ("EXCHANGESTANDARD", "POWER_BI_PRO", "DYN365_ENTERPRISE_SALES", "DYN365_ENTERPRISE_CUSTOMER_SERVICE")
COMPANIES = (
    "Contoso", "Fabrikam", "Northwind Traders", "Adatum", "Tailspin Toys", "Woodgrove Bank", "Litware",
    "Proseware", "Wingtip Toys", "Alpine Ski House", "Coho Winery", "Fourth Coffee", "Lucerne Publishing",
    "Trey Research", "Wide World Importers", "Humongous Insurance", "Blue Yonder Airlines", "Relecloud",
    "Lamna Healthcare", "Müller Holzbau", "Café Élan", "Bellows College", "Consolidated Messenger", "VanArsdel",
)  # fmt: skip
SUFFIXES = ("Ltd", "Inc", "GmbH", "LLC", "S.A.", "BV", "AG", "Pty Ltd")
FIRST_NAMES = (
    "Ann", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Hiro", "Inès", "José", "Kai", "Lena", "Marta",
    "Nils", "Olu", "Priya", "Quinn", "Renée", "Sam", "Tomás", "Uma", "Vik", "Wen", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Lee", "Ray", "Diaz", "Kim", "Wu", "Novak", "Okafor", "Silva", "Berg", "Khan", "Rossi", "Dubois", "Smith",
    "Tanaka", "Ivanova", "Müller", "O'Neil", "Haddad", "Nguyen", "Larsen",
)  # fmt: skip


# --- the world: what the vendor holds --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activity:
    """A user's active days in one workload: `start`, then every `period` days (the days whose
    ordinal ≡ `phase`), up to `stop` (ordinals; stop None: still active)."""

    start: int
    period: int
    phase: int
    stop: int | None = None

    def last(self, day: date) -> date | None:
        """The last active day on or before `day`."""
        end = day.toordinal() if self.stop is None else min(day.toordinal(), self.stop)
        if end < self.start:
            return None
        return date.fromordinal(max(end - (end - self.phase) % self.period, self.start))


@dataclass
class Tenant:
    """A customer tenant. `users` are its report rows as of the world's last_day (the 23 columns
    after "Report Refresh Date"); `activity` (per user, report workload name → Activity) gives
    earlier days; without it, a row's dates are the user's only active days."""

    tenant_id: str
    name: str
    domain: str
    subscriptions: list[dict[str, Any]]  # Partner Center subscription items (vendor-formats §3)
    skus: list[dict[str, Any]]  # Graph subscribedSku items (§2)
    users: list[dict[str, str]]
    concealed: bool = False  # report UPN and Display Name as 32-hex uppercase hashes, stable per user
    activity: list[dict[str, Activity]] = field(default_factory=list, repr=False)


@dataclass
class World:
    """A partner, its app registration and its customer tenants (in the portal's order)."""

    partner_tenant: str
    client_id: str
    secret: str
    tenants: list[Tenant]
    last_day: date  # the last day the report API has data for
    faults: dict[str, set[str]] = field(default_factory=dict)  # tenant id -> names of FAULTS
    customers_page_size: int = 2
    skus_page_size: int = 2
    report_rate: tuple[int, float] = (14, 600.0)  # per tenant: requests per seconds

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.tenant_id.lower() == tenant_id.lower()), None)

    def has(self, tenant_id: str, fault: str) -> bool:
        return any(fault in names for key, names in self.faults.items() if key.lower() == tenant_id.lower())

    def first_day(self) -> date:
        """The earliest day the report API serves."""
        return self.last_day - timedelta(days=REPORT_DAYS)

    def subscriptions_of(self, tenant: Tenant) -> list[dict[str, Any]]:
        return [] if self.has(tenant.tenant_id, "empty") else tenant.subscriptions

    def skus_of(self, tenant: Tenant) -> list[dict[str, Any]]:
        return [] if self.has(tenant.tenant_id, "empty") else tenant.skus

    def report_rows(self, tenant: Tenant | str, day: date) -> list[dict[str, str]]:
        """The active-user detail report of `day` (every column; names concealed if the tenant
        conceals them); no rows after last_day."""
        found = self.tenant(tenant) if isinstance(tenant, str) else tenant
        if found is None:
            raise KeyError(tenant)
        if day > self.last_day or self.has(found.tenant_id, "empty"):
            return []
        return [_report_row(found, index, user, day) for index, user in enumerate(found.users)]

    def report_csv(self, tenant: Tenant | str, day: date) -> bytes:
        """The download of `day`'s report: UTF-8 with a BOM, CRLF line ends."""
        out = io.StringIO()
        writer = csv.DictWriter(out, HEADER, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(self.report_rows(tenant, day))
        return ("\ufeff" + out.getvalue()).encode()

    def customer_items(self) -> list[dict[str, Any]]:
        return [_customer_item(tenant) for tenant in self.tenants]

    def subscriptions_body(self, tenant: Tenant) -> dict[str, Any]:
        """Partner Center's answer to a customer's subscriptions (one page)."""
        items = self.subscriptions_of(tenant)
        return {
            "totalCount": len(items),
            "items": items,
            "links": {"self": _link(f"/v1/customers/{tenant.tenant_id}/subscriptions")},
            "attributes": {"objectType": "Collection"},
        }

    def export(self, folder: Path, days: Iterable[date]) -> None:
        """Writes the files of a pull of `days` in the layout of vendor-formats §0, every call
        succeeding (faults other than `empty` are ignored). A day after last_day, or a tenant
        without users, gives no report file: the API has no rows for it yet."""
        days = sorted(set(days))
        if days and days[0] < self.first_day():
            raise ValueError(f"the report API keeps no day before {self.first_day()}")
        folder.mkdir(parents=True, exist_ok=True)
        items = self.customer_items()
        _write_json(folder / "customers.json", {"totalCount": len(items), "items": items})
        for tenant in self.tenants:
            own = folder / tenant.tenant_id
            own.mkdir(exist_ok=True)
            _write_json(own / "subscriptions.json", self.subscriptions_body(tenant))
            _write_json(own / "subscribedSkus.json", {"value": self.skus_of(tenant)})
            for day in days:
                if self.report_rows(tenant, day):
                    (own / f"ActiveUserDetail_{day.isoformat()}.csv").write_bytes(self.report_csv(tenant, day))


def _report_row(tenant: Tenant, index: int, user: dict[str, str], day: date) -> dict[str, str]:
    iso = day.isoformat()
    row = {REFRESH: iso, **user}
    if row["Is Deleted"] == "True" and row["Deleted Date"] > iso:
        row["Is Deleted"], row["Deleted Date"] = "False", ""
    if tenant.activity:
        activity = tenant.activity[index]
        for label in ACTIVE_LABELS:
            last = activity[label].last(day) if label in activity else None
            row[f"{label} Last Activity Date"] = last.isoformat() if last else ""
    else:
        for label in LABELS:
            column = f"{label} Last Activity Date"
            row[column] = row[column] if row[column] <= iso else ""
    if tenant.concealed:
        upn = row["User Principal Name"]
        row["User Principal Name"] = _hash32(f"{tenant.tenant_id}/upn/{upn}")
        row["Display Name"] = _hash32(f"{tenant.tenant_id}/name/{upn}")
    return row


def _hash32(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest().upper()


def _link(uri: str, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": headers or []}


def _customer_item(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.tenant_id,
        "commerceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"commerce/{tenant.tenant_id}")),
        "companyProfile": {
            "tenantId": tenant.tenant_id,
            "domain": tenant.domain,
            "companyName": tenant.name,
            "links": {"self": _link(f"/customers/{tenant.tenant_id}/profiles/company")},
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "relationshipToPartner": "reseller",
        "attributes": {"objectType": "Customer"},
    }


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


def make_world(
    customers: int = 3,
    users: int = 6,
    seed: int = 1,
    last_day: date | None = None,
    concealed: Collection[int] = frozenset(),
) -> World:
    """A deterministic partner with `customers` tenants of `users` users each; the tenants whose
    index is in `concealed` conceal user names. last_day defaults to yesterday (UTC)."""
    last_day = last_day or datetime.now(UTC).date() - timedelta(days=1)
    rng = random.Random(f"world/{seed}")  # noqa: S311 - test data, not secrets
    world = World(
        partner_tenant=_uuid(rng),
        client_id=_uuid(rng),
        secret=f"{rng.randrange(36**3):03x}8Q~{rng.getrandbits(180):045x}"[:40],  # a client secret value's shape
        tenants=[],
        last_day=last_day,
    )
    world.tenants = [
        _make_tenant(random.Random(f"tenant/{seed}/{index}"), index, users, last_day, index in concealed)  # noqa: S311
        for index in range(customers)
    ]
    return world


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _company(index: int) -> tuple[str, str]:
    base = COMPANIES[index % len(COMPANIES)]
    round_ = index // len(COMPANIES)
    name = f"{base}{f' {round_ + 1}' if round_ else ''} {SUFFIXES[index % len(SUFFIXES)]}"
    slug = re.sub(r"[^a-z0-9]", "", _ascii(base).lower())
    return name, f"{slug}{round_ + 1 if round_ else ''}.onmicrosoft.com"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _make_tenant(rng: random.Random, index: int, count: int, last_day: date, concealed: bool) -> Tenant:
    name, domain = _company(index)
    tenant = Tenant(_uuid(rng), name, domain, [], [], [], concealed)
    skus = [rng.choice((*SUITES, "SPB")), *rng.sample(ADD_ONS, rng.choice((0, 0, 1, 1, 2)))]
    deleted = rng.randrange(count) if count > 1 and rng.random() < 0.35 else None
    consumed = dict.fromkeys(skus, 0)
    upns: set[str] = set()
    for number in range(count):
        products = _products(rng, skus)
        deleted_on = last_day - timedelta(days=rng.randint(1, 20)) if number == deleted else None
        user, activity = _make_user(rng, domain, upns, products, last_day, deleted_on)
        tenant.users.append(user)
        tenant.activity.append(activity)
        for sku in products if deleted_on is None else ():
            consumed[sku] += 1
    _make_subscriptions(rng, tenant, skus, consumed, last_day)
    return tenant


def _products(rng: random.Random, skus: list[str]) -> list[str]:
    """A user's SKUs: mostly the tenant's suite, some with add-ons, a few none (guests, shared
    mailboxes), some frontline workers with Exchange only."""
    if rng.random() < 0.1:
        return []
    main = skus[0]
    if "EXCHANGESTANDARD" in skus and rng.random() < 0.25:
        main = "EXCHANGESTANDARD"
    return [main, *(sku for sku in skus[1:] if sku != "EXCHANGESTANDARD" and rng.random() < 0.4)]


def _make_user(
    rng: random.Random, domain: str, upns: set[str], products: list[str], last_day: date, deleted_on: date | None
) -> tuple[dict[str, str], dict[str, Activity]]:
    """A user's report row as of last_day, and their activity."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = re.sub(r"[^a-z.]", "", _ascii(f"{first}.{last}").lower())
    while f"{name}@{domain}" in upns:
        name += str(rng.randint(1, 9))
    upns.add(f"{name}@{domain}")
    workloads = set().union(*(CATALOG_BY_SKU[sku][1] for sku in products))
    assigned = last_day - timedelta(days=rng.randint(45, 900))
    activity: dict[str, Activity] = {}
    for label in ACTIVE_LABELS:
        licensed = LABELS[label] in workloads
        if licensed or (label in ("Yammer", "Teams") and rng.random() < 0.3):  # Yammer is free; guests use Teams
            start = assigned if licensed else last_day - timedelta(days=rng.randint(30, 400))
            if found := _activity(rng, start, last_day, deleted_on):
                activity[label] = found
    cells = {
        "User Principal Name": f"{name}@{domain}",
        "Display Name": f"{first} {last}",
        "Is Deleted": str(deleted_on is not None),
        "Deleted Date": deleted_on.isoformat() if deleted_on else "",
        "Assigned Products": "+".join(CATALOG_BY_SKU[sku][0].upper() for sku in products),
    }
    for label, workload in LABELS.items():
        last_active = activity[label].last(last_day) if label in activity else None
        cells[f"Has {label} License"] = str(workload in workloads)
        cells[f"{label} Last Activity Date"] = last_active.isoformat() if last_active else ""
        cells[f"{label} License Assign Date"] = assigned.isoformat() if workload in workloads else ""
    return {column: cells[column] for column in HEADER[1:]}, activity


def _activity(rng: random.Random, start: date, last_day: date, deleted_on: date | None) -> Activity | None:
    """Some users never use a workload, some stopped using it, most use it every few days."""
    draw = rng.random()
    if draw < 0.1:
        return None
    first = start.toordinal() + rng.randint(0, 20)
    stop = last_day.toordinal() - rng.randint(10, 120) if draw < 0.3 else None
    if deleted_on:
        stop = min(stop or deleted_on.toordinal(), deleted_on.toordinal() - 1)
    period = rng.choice((1, 2, 3, 5, 7, 10, 14, 21, 30, 45))
    if stop is not None and stop < first:
        return None
    return Activity(first, period, rng.randrange(period), stop)


def _make_subscriptions(
    rng: random.Random, tenant: Tenant, skus: list[str], consumed: dict[str, int], last_day: date
) -> None:
    """One active own subscription per SKU (the suite's sometimes split in two), now and then
    units from another seller, a suspended or an expired subscription, or a trial."""
    units: dict[str, dict[str, int]] = {sku: _no_units() for sku in skus}
    ids: dict[str, list[str]] = {sku: [] for sku in skus}

    def add(sku: str, quantity: int, status: str = "active", *, trial: bool = False, ended: bool = False) -> None:
        item = _subscription(rng, sku, quantity, status, trial, ended, last_day)
        tenant.subscriptions.append(item)
        ids[sku].append(item["id"])
        if status.lower() == "active":
            units[sku]["enabled"] += quantity
        elif status == "suspended":
            units[sku]["suspended"] += quantity

    for sku in skus:
        quantity = consumed[sku] + rng.randint(0, 5) or 1
        if sku == skus[0] and quantity > 3 and rng.random() < 0.25:
            split = rng.randint(1, quantity - 1)
            add(sku, split)
            add(sku, quantity - split, "Active")
        else:
            add(sku, quantity)
    if rng.random() < 0.2:
        units[skus[0]]["enabled"] += rng.randint(1, 5)
        ids[skus[0]].append(_uuid(rng))  # another seller's subscription
    if rng.random() < 0.15:
        add(rng.choice(skus), rng.randint(1, 5), "suspended")
    if rng.random() < 0.1:
        add(skus[0], rng.randint(1, 10), "expired", ended=True)
    if "SPB" not in skus and len(skus) < 3 and rng.random() < 0.15:
        skus.append("SPB")
        units["SPB"] = _no_units()
        ids["SPB"] = []
        consumed["SPB"] = 0
        add("SPB", 25, trial=True)
    tenant.skus = [_subscribed_sku(tenant, sku, consumed[sku], units[sku], ids[sku]) for sku in skus]


def _no_units() -> dict[str, int]:
    return {"enabled": 0, "lockedOut": 0, "suspended": 0, "warning": 0}


def _subscription(
    rng: random.Random, sku: str, quantity: int, status: str, trial: bool, ended: bool, last_day: date
) -> dict[str, Any]:
    """A Partner Center subscription item; an active one's term runs past last_day (it renewed)."""
    name = CATALOG_BY_SKU[sku][0] + (" Trial" if trial else "")
    term, cycle = ("P1M", "none") if trial else rng.choice((("P1Y", "monthly"), ("P1Y", "annual"), ("P1M", "monthly")))
    months = 1 if term == "P1M" else 12
    if ended:
        start = last_day - timedelta(days=rng.randint(400, 900))
        end = _add_months(start, months)
    else:
        start = last_day - timedelta(days=rng.randint(5, 25) if trial else rng.randint(60, 900))
        end = _add_months(start, months)
        while end <= last_day:
            end = _add_months(end, months)
    return {
        "id": _uuid(rng),
        "offerId": f"CFQ7TTC0{_hash32(sku)[:4]}:{'0002' if trial else '0001'}",
        "offerName": name,
        "friendlyName": name,
        "quantity": quantity,
        "unitType": "Licenses",
        "parentSubscriptionId": None,
        "creationDate": f"{start}T00:00:00Z",
        "effectiveStartDate": f"{start}T00:00:00Z",
        "commitmentEndDate": f"{end - timedelta(days=1)}T00:00:00Z",
        "status": status,
        "autoRenewEnabled": not trial and not ended and rng.random() < 0.8,
        "billingType": "license",
        "billingCycle": cycle,
        "isTrial": trial,
        "termDuration": term,
        "partnerId": "4125993",
        "suspensionReasons": ["CustomerCancellation"] if status == "suspended" else [],
        "attributes": {"objectType": "Subscription"},
    }


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def _subscribed_sku(tenant: Tenant, sku: str, consumed: int, units: dict[str, int], ids: list[str]) -> dict[str, Any]:
    workloads = CATALOG_BY_SKU[sku][1]
    status = "Enabled" if units["enabled"] else "Suspended" if units["suspended"] else "Warning"
    return {
        "accountId": tenant.tenant_id,
        "accountName": tenant.name.split(" ")[0],
        "appliesTo": "User",
        "capabilityStatus": status,
        "consumedUnits": consumed,
        "id": f"{tenant.tenant_id}_{SKU_IDS[sku]}",
        "prepaidUnits": units,
        "servicePlans": [
            {
                "servicePlanId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"plan/{plan}")),
                "servicePlanName": plan,
                "provisioningStatus": "Success",
                "appliesTo": "User",
            }
            for workload, plan in SERVICE_PLANS.items()
            if workload in workloads
        ],
        "skuId": SKU_IDS[sku],
        "skuPartNumber": sku,
        "subscriptionIds": ids,
    }


# --- the servers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the replay saw it (the Authorization header's value never kept)."""

    host_port: str
    method: str
    path: str  # percent-decoded, without the query
    query: str
    tenant: str | None  # from the token, the URL or the signed download address
    status: int
    had_authorization: bool
    at: float  # time.monotonic()
    headers: dict[str, str]  # lower-case names; authorization "[redacted]"


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send: int | None = None  # bytes of the body actually sent, then the connection closes
    tenant: str | None = None


@dataclass
class _Token:
    tenant: str
    audience: str  # "pc" or "graph"
    expires_at: float
    expired: bool = False


def _json(status: int, document: Any, **headers: str) -> _Answer:
    body = json.dumps(document, ensure_ascii=False).encode()
    return _Answer(status, body, {"Content-Type": "application/json; charset=utf-8", **headers})


def _graph_error(status: int, code: str, message: str, **headers: str) -> _Answer:
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}
    inner["client-request-id"] = inner["request-id"]
    return _json(status, {"error": {"code": code, "message": message, "innerError": inner}}, **headers)


def _portal_error(status: int, code: int, description: str) -> _Answer:
    return _json(status, {"code": code, "description": description, "data": [], "source": "PartnerFD"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replay: VendorReplay, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replay = replay
        # The handshake happens in the connection's thread, so a slow client never blocks accept().
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.connections: set[Any] = set()

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are no news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.do_handshake()

    def do_GET(self) -> None:
        self.server.replay._serve(self, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.replay._serve(self, self.rfile.read(min(length, 1 << 20)))

    def log_message(self, format: str, *args: Any) -> None:
        pass


class VendorReplay:
    """Serves a World over HTTPS on loopback: `with VendorReplay(world) as replay: ...`.

    Two servers: login, Partner Center and Graph on one port, the report downloads on another.
    Every request is recorded in `requests` before it is answered."""

    def __init__(self, world: World, *, token_lifetime: int = 3599, download_ttl: float = 300.0) -> None:
        unknown = {name for names in world.faults.values() for name in names} - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.world, self.token_lifetime, self.download_ttl = world, token_lifetime, download_ttl
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._pages: dict[str, int] = {}  # continuation or skip token -> offset of the page it opens
        self._key = secrets.token_bytes(32)
        self._report_times: dict[str, deque[float]] = {}
        self._counts: dict[tuple[str, str], int] = {}  # (tenant, what) -> requests so far
        self._folder = tempfile.TemporaryDirectory(prefix="vendor-replay-")
        self._servers: list[_Server] = []

    # --- lifecycle

    def __enter__(self) -> VendorReplay:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.ca_path = str(Path(self._folder.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        self._api, self._download = _Server(self, context), _Server(self, context)
        self._servers = [self._api, self._download]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.login_url = self._api.origin
        self.partner_center_url = f"{self._api.origin}/pc"
        self.graph_url = f"{self._api.origin}/graph"
        self.download_url = f"{self._download.origin}/reports"
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
            for connection in list(server.connections):  # wakes the threads of idle keep-alive connections
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._folder.cleanup()

    def count(self, path_contains: str, tenant: str | None = None) -> int:
        """How many requests had `path_contains` in their path (and were of `tenant`)."""
        with self._lock:
            return sum(
                1
                for seen in self.requests
                if path_contains in seen.path and (tenant is None or (seen.tenant or "").lower() == tenant.lower())
            )

    # --- one request

    def _serve(self, handler: _Handler, body: bytes) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "[redacted]"
        try:
            if handler.server is self._download:
                answer = self._download_report(path, "authorization" in headers)
            else:
                answer = self._route(handler, path, parse_qs(url.query), body)
        except Exception:  # a bug of the replay: say so to the client instead of hanging up
            traceback.print_exc()
            answer = _json(500, {"error": "replay bug"})
        port = handler.server.server_address[1]
        seen = Seen(
            f"127.0.0.1:{port}",
            handler.command,
            path,
            unquote(url.query),
            answer.tenant,
            answer.status,
            "authorization" in headers,
            time.monotonic(),
            headers,
        )
        with self._lock:
            self.requests.append(seen)
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body if answer.send is None else answer.body[: answer.send])
        handler.wfile.flush()
        if answer.send is not None:
            handler.close_connection = True

    def _route(self, handler: _Handler, path: str, query: dict[str, list[str]], body: bytes) -> _Answer:
        parts = path.strip("/").split("/")
        if parts[0] == "pc":
            return self._partner_center(handler, parts[1:], query)
        if parts[0] == "graph":
            return self._graph(handler, "/".join(parts[1:]), query)
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._openid_configuration(parts[0])
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and handler.command == "POST":
            return self._token(parts[0], handler, body)
        return _json(404, {"error": "not_found", "error_description": f"No replay of {handler.command} {path}"})

    # --- login

    def _aad_error(self, status: int, error: str, code: int, text: str, tenant: str | None = None) -> _Answer:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = uuid.uuid4(), uuid.uuid4()
        answer = _json(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {now}",
                "error_codes": [code],
                "timestamp": now,
                "trace_id": str(trace),
                "correlation_id": str(correlation),
                "error_uri": f"{self.login_url}/error?code={code}",
            },
        )
        answer.tenant = tenant
        return answer

    def _tenant_missing(self, tenant: str) -> _Answer | None:
        known = tenant.lower() == self.world.partner_tenant.lower() or self.world.tenant(tenant) is not None
        if known and not self.world.has(tenant, "tenant_gone"):
            return None
        text = (
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
            "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
            "subscriptions for the tenant."
        )
        return self._aad_error(400, "invalid_tenant", 90002, text, tenant)

    def _openid_configuration(self, tenant: str) -> _Answer:
        if missing := self._tenant_missing(tenant):
            return missing
        base = f"{self.login_url}/{tenant}"
        answer = _json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "jwks_uri": f"{self.login_url}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )
        answer.tenant = tenant
        return answer

    def _token(self, tenant: str, handler: _Handler, body: bytes) -> _Answer:
        if missing := self._tenant_missing(tenant):
            return missing
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = handler.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        world, is_partner = self.world, tenant.lower() == self.world.partner_tenant.lower()
        if form.get("grant_type") != "client_credentials":
            text = f"The app requested an unsupported grant type '{form.get('grant_type', '')}'."
            return self._aad_error(400, "unsupported_grant_type", 70003, text, tenant)
        if client_id != world.client_id or (not is_partner and world.has(tenant, "consent_revoked")):
            text = (
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented "
                "to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            )
            return self._aad_error(400, "unauthorized_client", 700016, text, tenant)
        if not hmac.compare_digest(secret.encode(), world.secret.encode()):
            text = (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{client_id}'."
            )
            return self._aad_error(401, "invalid_client", 7000215, text, tenant)
        scopes = form.get("scope", "").split()
        audiences = {f"{self.partner_center_url}/.default": "pc", f"{self.graph_url}/.default": "graph"}
        if len(scopes) != 1 or scopes[0] not in audiences:
            text = (
                f"The resource principal named {form.get('scope', '')} was not found in the tenant named {tenant}. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You might have sent your authentication request to the "
                "wrong tenant."
            )
            return self._aad_error(400, "invalid_resource", 500011, text, tenant)
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Token(tenant.lower(), audiences[scopes[0]], time.monotonic() + self.token_lifetime)
        life = self.token_lifetime
        answer = _json(
            200,
            {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token},
            **{"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )
        answer.tenant = tenant
        return answer

    def _bearer(self, handler: _Handler, audience: str) -> tuple[str | None, _Token | None]:
        """The request's token, if it is one the replay gave for `audience` (expired or not)."""
        value = handler.headers.get("Authorization", "")
        token = value[7:].strip() if value.startswith("Bearer ") else ""
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found.audience != audience:
            return None, None
        if found.expires_at < time.monotonic():
            found.expired = True
        return token, found

    def _bump(self, tenant: str, what: str) -> int:
        """Counts a tenant's request of one kind; returns its number (1 for the first)."""
        with self._lock:
            self._counts[tenant, what] = self._counts.get((tenant, what), 0) + 1
            return self._counts[tenant, what]

    # --- Partner Center

    def _partner_center(self, handler: _Handler, parts: list[str], query: dict[str, list[str]]) -> _Answer:
        _, token = self._bearer(handler, "pc")
        if token is None or token.expired or token.tenant != self.world.partner_tenant.lower():
            answer = _portal_error(401, 401, "Authentication failed: the access token is missing, expired or not for "
                                   "Partner Center.")  # fmt: skip
            answer.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return answer
        if parts == ["v1", "customers"]:
            answer = self._customers(handler, query)
        elif len(parts) == 4 and parts[:2] == ["v1", "customers"] and parts[3] == "subscriptions":
            answer = self._subscriptions(parts[2])
        else:
            answer = _portal_error(404, 3000, f"No replay of /{'/'.join(parts)}")
        answer.tenant = answer.tenant or token.tenant
        return answer

    def _customers(self, handler: _Handler, query: dict[str, list[str]]) -> _Answer:
        world = self.world
        if world.has(world.partner_tenant, "customers_unavailable"):
            return _portal_error(503, 5000, "The service is temporarily unavailable. Please try again later.")
        asked, size = query.get("size", [""])[0], world.customers_page_size
        if asked.isdigit() and 0 < int(asked) < size:
            size = int(asked)
        offset = 0
        if query.get("seekOperation", [""])[0].lower() == "next":
            continuation = handler.headers.get("MS-ContinuationToken", "")
            with self._lock:
                found = self._pages.pop(f"pc/{continuation}", None)
            if found is None:
                return _portal_error(400, 2000, "The continuation token is missing or not valid.")
            offset = found
        items = world.customer_items()
        body: dict[str, Any] = {"totalCount": len(items), "items": items[offset : offset + size]}
        body["links"] = {"self": _link(f"/v1/customers?size={size}")}
        if offset + size < len(items):
            continuation = base64.b64encode(secrets.token_bytes(24)).decode()
            with self._lock:
                self._pages[f"pc/{continuation}"] = offset + size
            headers = [{"key": "MS-ContinuationToken", "value": continuation}]
            body["links"]["next"] = _link(f"/v1/customers?size={size}&seekOperation=Next", headers)
        body["attributes"] = {"objectType": "Collection"}
        return _json(200, body)

    def _subscriptions(self, tenant_id: str) -> _Answer:
        tenant = self.world.tenant(tenant_id)
        if tenant is None or self.world.has(tenant.tenant_id, "tenant_gone"):
            answer = _portal_error(404, 3000, f"Customer with tenant id {tenant_id} could not be found")
        else:
            answer = _json(200, self.world.subscriptions_body(tenant))
        answer.tenant = tenant_id
        return answer

    # --- Graph

    def _graph(self, handler: _Handler, path: str, query: dict[str, list[str]]) -> _Answer:
        token_text, token = self._bearer(handler, "graph")
        if token is None or token.expired:
            message = "Lifetime validation failed, the token is expired." if token else "Access token is empty."
            if token is None and handler.headers.get("Authorization"):
                message = "Invalid JWT token. The token is not valid for this resource."
            answer = _graph_error(401, "InvalidAuthenticationToken", message, **{"WWW-Authenticate": "Bearer"})
            answer.tenant = token.tenant if token else None
            return answer
        tenant = self.world.tenant(token.tenant)
        answer = self._graph_call(handler, path, query, token_text or "", token, tenant)
        answer.tenant = token.tenant
        return answer

    def _graph_call(
        self, handler: _Handler, path: str, query: dict[str, list[str]], text: str, token: _Token, tenant: Tenant | None
    ) -> _Answer:
        world, tenant_id = self.world, token.tenant
        if self._bump(tenant_id, "graph") == 2 and world.has(tenant_id, "expired_token_once"):
            token.expired = True
            message = "Lifetime validation failed, the token is expired."
            return _graph_error(401, "InvalidAuthenticationToken", message, **{"WWW-Authenticate": "Bearer"})
        report = re.fullmatch(r"v1\.0/reports/getOffice365ActiveUserDetail\((.*)\)", path)
        if path != "v1.0/subscribedSkus" and report is None:
            return _graph_error(400, "BadRequest", f"Resource not found for the segment '{path.split('/')[-1]}'.")
        if tenant is None or world.has(tenant_id, "permission_missing"):
            message = "Insufficient privileges to complete the operation."
            return _graph_error(403, "Authorization_RequestDenied", message)
        return self._subscribed_skus(tenant, query) if report is None else self._report(tenant, report.group(1))

    def _subscribed_skus(self, tenant: Tenant, query: dict[str, list[str]]) -> _Answer:
        world, tenant_id = self.world, tenant.tenant_id.lower()
        if self._bump(tenant_id, "skus") == 1 and world.has(tenant_id, "server_error_once"):
            return _graph_error(503, "serviceNotAvailable", "Service is temporarily unavailable. Please try again.")
        offset = 0
        if "$skiptoken" in query:
            with self._lock:
                found = self._pages.pop(f"graph/{tenant_id}/{query['$skiptoken'][0]}", None)
            if found is None:
                return _graph_error(400, "Request_BadRequest", "Invalid paging token.")
            offset = found
        skus, size = world.skus_of(tenant), world.skus_page_size
        body: dict[str, Any] = {"@odata.context": f"{self.graph_url}/v1.0/$metadata#subscribedSkus"}
        body["value"] = skus[offset : offset + size]
        if offset + size < len(skus):
            skip = secrets.token_hex(16)
            with self._lock:
                self._pages[f"graph/{tenant_id}/{skip}"] = offset + size
            body["@odata.nextLink"] = f"{self.graph_url}/v1.0/subscribedSkus?$skiptoken={skip}"
        answer = _json(200, body)
        if world.has(tenant_id, "malformed_json"):
            answer.body = answer.body[: len(answer.body) // 2]
        return answer

    def _report(self, tenant: Tenant, argument: str) -> _Answer:
        world, tenant_id = self.world, tenant.tenant_id.lower()
        if world.has(tenant_id, "throttled_forever") or (
            world.has(tenant_id, "throttled_once") and self._bump(tenant_id, "throttled") == 1
        ):
            return _graph_error(429, "TooManyRequests", "Too many requests.", **{"Retry-After": "1"})
        if wait := self._over_rate(tenant_id):
            return _graph_error(429, "TooManyRequests", "Too many requests.", **{"Retry-After": str(wait)})
        found = re.fullmatch(r"date='?(\d{4}-\d{2}-\d{2})'?", argument)
        try:
            day = date.fromisoformat(found.group(1)) if found else None
        except ValueError:
            day = None
        if day is None:
            return _graph_error(400, "BadRequest", f"Invalid parameter: expected date=YYYY-MM-DD, got '{argument}'.")
        if day < world.first_day():
            message = f"Invalid value '{day}' for parameter 'date': it must be within the last {REPORT_DAYS} days."
            return _graph_error(400, "BadRequest", message)
        expires = time.time() + self.download_ttl
        payload = base64.urlsafe_b64encode(f"{tenant.tenant_id}|{day}|{expires:.3f}".encode()).decode().rstrip("=")
        location = f"{self.download_url}/{payload}.{self._sign(payload)}"
        return _Answer(302, b"", {"Location": location, "Cache-Control": "no-cache"})

    def _over_rate(self, tenant_id: str) -> int:
        """Seconds until the tenant may ask again (0: counted now, within the rate)."""
        limit, seconds = self.world.report_rate
        now = time.monotonic()
        with self._lock:
            times = self._report_times.setdefault(tenant_id, deque())
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) >= limit:
                return max(1, math.ceil(times[0] + seconds - now))
            times.append(now)
            return 0

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    # --- the download origin

    def _download_report(self, path: str, authorized: bool) -> _Answer:
        found = re.fullmatch(r"/reports/([A-Za-z0-9_-]+)\.([0-9a-f]{32})", path)
        tenant_id, day, expires = None, None, 0.0
        if found and hmac.compare_digest(self._sign(found.group(1)), found.group(2)):
            payload = found.group(1) + "=" * (-len(found.group(1)) % 4)
            tenant_id, day_text, expires_text = base64.urlsafe_b64decode(payload).decode().split("|")
            day, expires = date.fromisoformat(day_text), float(expires_text)
        if authorized:
            message = "Authentication information is not given in the correct format: this address takes no token."
            answer = _graph_error(400, "InvalidAuthenticationInfo", message)
        elif day is None or expires < time.time():
            answer = _graph_error(403, "AuthenticationFailed", "The download address is not valid or has expired.")
        else:
            answer = self._csv(self.world.tenant(tenant_id), day)  # type: ignore[arg-type]
        answer.tenant = tenant_id
        return answer

    def _csv(self, tenant: Tenant, day: date) -> _Answer:
        body = self.world.report_csv(tenant, day)
        answer = _Answer(200, body, {"Content-Type": "application/octet-stream"})
        if self.world.has(tenant.tenant_id, "truncated_csv"):  # inside a date of the last row's middle column
            last_row = body.rstrip(b"\r\n").rfind(b"\n") + 1
            commas = [at for at, byte in enumerate(body[last_row:]) if byte == ord(",")]
            answer.body = body[: last_row + commas[len(commas) // 2] + 4]
        elif self.world.has(tenant.tenant_id, "drop_connection"):
            answer.send = len(body) // 2
        return answer

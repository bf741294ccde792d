"""The vendor's JSON exports (vendor-formats.md §2, §3), turned into rows for staging.

These files are small (one partner's customers, one customer's subscriptions or SKUs), so each
is parsed whole. A problem is reported as FILE:ITEM:PATH: the item counted from 1 and its JSON
path (`items[2].quantity`); a file that is not JSON at all gives its text line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from customers.models import BillingCycle, SubscriptionStatus
from imports.pipeline import files
from imports.pipeline.files import CellError
from imports.pipeline.issues import ImportIssue, IssueList

MAX_JSON_BYTES = 64 * 1024 * 1024  # far above any real export; a bigger file is not one

JsonParser = Callable[[Any], Any]


class Shape(StrEnum):
    CUSTOMERS = "partner portal customers"
    SUBSCRIPTIONS = "partner portal subscriptions"
    SKUS = "tenant subscribed SKUs"


# These belong to one customer: they sit in the customer's folder, named by its tenant id.
PER_CUSTOMER = frozenset({Shape.SUBSCRIPTIONS, Shape.SKUS})

# vendor-formats.md §0: the portal's subscription status, compared ignoring case.
STATUSES = {
    "active": SubscriptionStatus.ACTIVE,
    "pending": SubscriptionStatus.PREPROVISIONED,
    "none": SubscriptionStatus.PREPROVISIONED,
    "suspended": SubscriptionStatus.SUSPENDED,
    "disabled": SubscriptionStatus.DISABLED,
    "expired": SubscriptionStatus.EXPIRED,
    "deleted": SubscriptionStatus.CANCELLED,
}
BILLING_CYCLES = {cycle.value: cycle for cycle in BillingCycle}

# ISO 8601: a date, optionally with a time and a zone ("2024-01-15T00:00:00Z").
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


def parse_document(file: str, stream: IO[bytes], issues: IssueList) -> Any:
    """The parsed JSON of a file, or None when it is not JSON (the problem recorded)."""
    raw = stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        issues.add(ImportIssue(file, 0, "-", f"larger than {MAX_JSON_BYTES} bytes: not a vendor JSON export"))
        return None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        issues.add(ImportIssue(file, 0, "-", f"not valid UTF-8 text at byte {error.start}"))
    except json.JSONDecodeError as error:
        text = error.doc.split("\n")[error.lineno - 1].strip()  # lineno counts "\n" only (not splitlines')
        issues.add(ImportIssue(file, error.lineno, str(error.colno), f"not valid JSON: {error.msg}", text))
    except ValueError:  # Python refuses to read a number of more than 4,300 digits
        issues.add(ImportIssue(file, 0, "-", "not valid JSON: a number has too many digits"))
    except RecursionError:
        issues.add(ImportIssue(file, 0, "-", "not valid JSON: nested too deeply"))
    return None


def shape(document: Any, file: str) -> Shape | None:
    """Which export a parsed document is, by its shape; None when it is none of them."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("value"), list):
        return Shape.SKUS
    items = document.get("items")
    if not isinstance(items, list):
        return None
    first = next((item for item in items if isinstance(item, dict)), None)
    if first is None:  # an empty collection: only its name can tell
        return Shape.SUBSCRIPTIONS if "subscription" in file.lower() else Shape.CUSTOMERS
    return Shape.CUSTOMERS if "companyProfile" in first else Shape.SUBSCRIPTIONS


SHAPE_EXPECTED = (
    'not a vendor export this import reads: expected {"value": [...]} (tenant subscribed SKUs) or '
    '{"totalCount": N, "items": [...]} (partner portal customers or subscriptions)'
)


def paging_warning(document: dict[str, Any], file: str) -> str | None:
    """A collection whose totalCount exceeds its items is one page of a longer list."""
    total, items = document.get("totalCount"), document.get("items", [])
    if isinstance(total, int) and total > len(items):
        return f"{file}: totalCount is {total} but the file holds {len(items)} items; only those were imported."
    return None


@dataclass(frozen=True)
class Item:
    """One object of a collection, read field by field; problems name its JSON path."""

    file: str
    number: int  # from 1
    path: str  # "items[0]"
    data: dict[str, Any]
    issues: IssueList

    def get(self, key: str, parse: JsonParser, *, required: bool = True, default: Any = None) -> Any:
        value: Any = self.data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        where = f"{self.path}.{key}"
        if value is None or value == "":
            if required:
                self.issues.add(ImportIssue(self.file, self.number, where, "required value is missing or empty"))
            return default
        try:
            return parse(value)
        except CellError as error:
            shown = value if isinstance(value, str) else json.dumps(value)
            self.issues.add(ImportIssue(self.file, self.number, where, str(error), shown))
            return None


def items(document: dict[str, Any], key: str, file: str, issues: IssueList) -> Iterator[Item]:
    for index, data in enumerate(document[key]):
        path = f"{key}[{index}]"
        if isinstance(data, dict):
            yield Item(file, index + 1, path, data, issues)
        else:
            issues.add(ImportIssue(file, index + 1, path, "not a JSON object", json.dumps(data)[:200]))


def json_text(max_length: int) -> JsonParser:
    check = files.text(max_length)

    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise CellError("not a text value")
        return check(files.valid_text(value.strip()))

    return parse


def json_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CellError("not a whole number")
    return files.quantity(str(value))


def json_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CellError("not a boolean, expected true or false")
    return value


def json_date(value: Any) -> Any:
    """The date of an ISO 8601 date-time, as written (`2024-01-15T00:00:00Z` → 2024-01-15)."""
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise CellError("not an ISO 8601 date-time")
    return files.iso_date(value[:10])


def json_choice(mapping: Mapping[str, str], normalise: Callable[[str], str] = str.lower) -> JsonParser:
    expected = ", ".join(mapping)

    def parse(value: Any) -> str:
        if not isinstance(value, str) or normalise(value) not in mapping:
            raise CellError(f"unknown value, expected one of {expected}")
        return str(mapping[normalise(value)])

    return parse


def _cycle_key(value: str) -> str:
    """ "oneTime", "one_time" and "OneTime" are one cycle."""
    return re.sub(r"[\s_-]", "", value).lower()


ID = json_text(200)


def customer_rows(document: dict[str, Any], file: str, issues: IssueList) -> list[tuple[Any, ...]]:
    """Rows of the canonical customers table: (line, customer_id, name, domain)."""
    return [
        (
            item.number,
            item.get("companyProfile.tenantId", ID),
            item.get("companyProfile.companyName", json_text(300)),
            item.get("companyProfile.domain", json_text(255), required=False, default=""),
        )
        for item in items(document, "items", file, issues)
    ]


def subscription_rows(
    document: dict[str, Any], file: str, customer_id: str, issues: IssueList
) -> list[tuple[Any, ...]]:
    """Rows of the vendor subscriptions table (see `vendor_sql.SUBSCRIPTIONS`)."""
    rows = []
    for item in items(document, "items", file, issues):
        offer = item.get("offerName", json_text(300), required=False)
        rows.append(
            (
                item.number,
                customer_id,
                item.get("id", ID),
                offer,
                offer.upper() if offer else None,
                item.get("quantity", json_count),
                item.get("status", json_choice(STATUSES)),
                item.get("isTrial", json_boolean, required=False, default=False),
                item.get("effectiveStartDate", json_date, required=False),
                item.get("commitmentEndDate", json_date, required=False),
                item.get("autoRenewEnabled", json_boolean, required=False),
                item.get("billingCycle", json_choice(BILLING_CYCLES, _cycle_key), required=False, default=""),
            )
        )
    return rows


def sku_rows(
    document: dict[str, Any], file: str, customer_id: str, issues: IssueList
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of the vendor SKU table and of its subscription ids (see `vendor_sql.SKUS`)."""
    skus: list[tuple[Any, ...]] = []
    subscription_ids: list[tuple[Any, ...]] = []
    for item in items(document, "value", file, issues):
        sku = item.get("skuPartNumber", json_text(100))
        units = [
            item.get(f"prepaidUnits.{name}", json_count, required=name == "enabled", default=0)
            for name in ("enabled", "warning", "suspended", "lockedOut")
        ]
        skus.append((item.number, customer_id, sku, *units))
        listed = item.get("subscriptionIds", _id_list, required=False) or []
        subscription_ids.extend((item.number, customer_id, sku, subscription_id) for subscription_id in listed)
    return skus, subscription_ids


def _id_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CellError("not a list of ids")
    return [ID(v) for v in value if v.strip()]

"""The vendor's JSON exports (vendor-formats.md §2, §3), turned into rows for staging.

Memory stays flat whatever the file: a file is read as a stream, item by item. Its top level is
walked here (an object whose arrays are read one element at a time); each element, and each other
value of the top level, is parsed on its own by Python's json module and refused when its text is
larger than MAX_VALUE_CHARS. A first reading (`scan`) checks the whole file and says which export it
is; a second one (`elements`) hands the collection's items to the row builders, one at a time.
A problem is reported as FILE:ITEM:PATH: the item counted from 1 and its JSON path
(`items[2].quantity`); a file that is not JSON at all gives its text line and column.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from customers.models import BillingCycle, SubscriptionStatus
from imports.pipeline import files
from imports.pipeline.files import CellError
from imports.pipeline.issues import ImportIssue, IssueList

MAX_JSON_BYTES = 64 * 1024 * 1024  # far above any real export; a bigger file is not one
# One item (a customer, a subscription, a SKU) is a few kB; parsed, JSON text can take ~30x its
# size in memory, so this bounds what one item costs.
MAX_VALUE_CHARS = 1024 * 1024
CHUNK_BYTES = 64 * 1024

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
_WHITE_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()

SHAPE_EXPECTED = (
    'not a vendor export this import reads: expected {"value": [...]} (tenant subscribed SKUs) or '
    '{"totalCount": N, "items": [...]} (partner portal customers or subscriptions)'
)


@dataclass
class Document:
    """What the first reading of a JSON file found: which export it is and its collection."""

    shape: Shape | None = None
    key: str = ""  # the collection's key: "items" or "value"
    occurrence: int = 0  # which array of that key holds it (the last, as a parsed document keeps)
    items: int = 0
    total_count: Any = None
    # Top-level key -> (how many times it appeared, whether its last value is an array, its
    # array's length, its array's first object's keys).
    keys: dict[str, tuple[int, bool, int, frozenset[str] | None]] = field(default_factory=dict)


class _Invalid(Exception):
    def __init__(self, issue: ImportIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


class _Reader:
    """The file's text, decoded chunk by chunk; `text[pos:]` is what is not read yet, and
    (line, column) counts where `text` starts, so problems say where they are in the file."""

    def __init__(self, file: str, stream: IO[bytes]) -> None:
        self.file, self._stream = file, stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.eof = "", 0, False
        self._line, self._column, self._bytes = 1, 1, 0

    def _more(self) -> bool:
        """Reads another chunk; False when the file has ended."""
        if self.eof:
            return False
        chunk = self._stream.read(CHUNK_BYTES)
        pending = len(self._decoder.getstate()[0])
        try:
            decoded = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            at = self._bytes - pending + error.start
            raise self.whole(f"not valid UTF-8 text at byte {at}") from error
        if self._bytes == 0:
            decoded = decoded.removeprefix("\ufeff")
        self._bytes += len(chunk)
        if self._bytes > MAX_JSON_BYTES:
            raise self.whole(f"larger than {MAX_JSON_BYTES} bytes: not a vendor JSON export")
        self.eof = not chunk
        self._forget()
        self.text += decoded
        return bool(chunk)

    def _forget(self) -> None:
        """Drops the text read already but the start of its last line (a problem shows its
        line), keeping count of the lines dropped."""
        cut = max(self.text.rfind("\n", 0, self.pos) + 1, self.pos - 200)
        done = self.text[:cut]
        breaks = done.count("\n")
        self._line += breaks
        self._column = len(done) - done.rfind("\n") if breaks else self._column + len(done)
        self.text, self.pos = self.text[cut:], self.pos - cut

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            self.pos = _WHITE_SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self._more():
                return self.text[self.pos : self.pos + 1]

    def take(self, expected: str, message: str) -> None:
        if self.peek() != expected:
            raise self.invalid(message, self.pos)
        self.pos += 1

    def value(self) -> Any:
        """The JSON value that starts here, parsed on its own; more text is read until it is
        whole (a number needs the character after it), up to MAX_VALUE_CHARS."""
        self.peek()
        last: tuple[str, int] | None = None
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
                if end < len(self.text) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError as error:
                # An error that stays where it is with more text read is real (a string may go on).
                found = (error.msg, error.pos - self.pos)  # reading more moves the text, not the value
                if self.eof or (found == last and not error.msg.startswith("Unterminated string")):
                    raise self.invalid(error.msg, error.pos) from error
                last = found
            except ValueError as error:  # Python refuses to read a number of more than 4,300 digits
                raise self.whole("not valid JSON: a number has too many digits") from error
            except RecursionError as error:
                raise self.whole("not valid JSON: nested too deeply") from error
            if len(self.text) - self.pos > MAX_VALUE_CHARS:
                where = self.location(self.pos)
                reason = f"a value larger than {MAX_VALUE_CHARS} characters: not a vendor JSON export"
                raise _Invalid(ImportIssue(self.file, where[0], str(where[1]), reason))
            self._more()

    def whole(self, reason: str) -> _Invalid:
        """A problem of the file as a whole."""
        return _Invalid(ImportIssue(self.file, 0, "-", reason))

    def location(self, pos: int) -> tuple[int, int]:
        """(line, column) of `text[pos]` in the file, both from 1."""
        breaks = self.text.count("\n", 0, pos)
        if not breaks:
            return self._line, self._column + pos
        return self._line + breaks, pos - self.text.rfind("\n", 0, pos)

    def invalid(self, message: str, pos: int) -> _Invalid:
        line, column = self.location(pos)
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        text = self.text[start : end if end >= 0 else len(self.text)].strip()
        return _Invalid(ImportIssue(self.file, line, str(column), f"not valid JSON: {message}", text))

    def array(self) -> Iterator[Any]:
        """The elements of the array that starts here, one at a time."""
        self.take("[", "Expecting value")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            following = self.peek()
            self.pos += 1
            if following == "]":
                return
            if following != ",":
                raise self.invalid("Expecting ',' delimiter", self.pos - 1)

    def members(self) -> Iterator[tuple[str, bool]]:
        """The keys of the object that starts here, each with whether its value is an array; the
        caller reads the value (`array` or `value`) before asking for the next key."""
        self.take("{", "Expecting value")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.invalid("Expecting property name enclosed in double quotes", self.pos)
            key = self.value()
            self.take(":", "Expecting ':' delimiter")
            yield key, self.peek() == "["
            following = self.peek()
            self.pos += 1
            if following == "}":
                return
            if following != ",":
                raise self.invalid("Expecting ',' delimiter", self.pos - 1)

    def end(self) -> None:
        if self.peek():
            raise self.invalid("Extra data", self.pos)


def scan(file: str, stream: IO[bytes], issues: IssueList) -> Document | None:
    """Reads a JSON file once, to its end: which export it is (None when it is not JSON, the
    problem recorded), without holding more than one item at a time."""
    reader = _Reader(file, stream)
    document = Document()
    try:
        if reader.peek() == "{":
            _scan_object(reader, document)
        elif reader.peek() == "[":
            for _ in reader.array():
                pass
        else:
            reader.value()
        reader.end()
    except _Invalid as invalid:
        issues.add(invalid.issue)
        return None
    document.shape = _shape(document, file)
    return document


def _scan_object(reader: _Reader, document: Document) -> None:
    for key, is_array in reader.members():
        seen = document.keys.get(key, (0, False, 0, None))[0] + 1
        if is_array:
            count, first = 0, None
            for element in reader.array():
                count += 1
                if first is None and isinstance(element, dict):
                    first = frozenset(element)
            document.keys[key] = (seen, True, count, first)
        else:
            value = reader.value()
            document.keys[key] = (seen, False, 0, None)
            if key == "totalCount":
                document.total_count = value if isinstance(value, int) else None
    if document.keys.get("totalCount", (0, True))[1]:  # the last totalCount was an array
        document.total_count = None


def _shape(document: Document, file: str) -> Shape | None:
    """Which export the document is, by its shape (as a parsed document's last keys say)."""
    for key in ("value", "items"):
        seen, is_array, count, first = document.keys.get(key, (0, False, 0, None))
        if not is_array:
            continue
        document.key, document.occurrence, document.items = key, seen, count
        if key == "value":
            return Shape.SKUS
        if first is None:  # no object in the collection: only its name can tell
            return Shape.SUBSCRIPTIONS if "subscription" in file.lower() else Shape.CUSTOMERS
        return Shape.CUSTOMERS if "companyProfile" in first else Shape.SUBSCRIPTIONS
    return None


def elements(file: str, stream: IO[bytes], document: Document) -> Iterator[Any]:
    """The second reading of a file that `scan` found to be `document`: its collection's items,
    one at a time."""
    reader = _Reader(file, stream)
    seen = 0
    for key, is_array in reader.members():
        if is_array and key == document.key:
            seen += 1
            if seen == document.occurrence:
                yield from reader.array()
                continue
        if is_array:
            for _ in reader.array():
                pass
        else:
            reader.value()


def paging_warning(document: Document, file: str) -> str | None:
    """A collection whose totalCount exceeds its items is one page of a longer list."""
    total = document.total_count
    if isinstance(total, int) and not isinstance(total, bool) and total > document.items:
        return f"{file}: totalCount is {total} but the file holds {document.items} items; only those were imported."
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


def items(elements: Iterable[Any], key: str, file: str, issues: IssueList) -> Iterator[Item]:
    for index, data in enumerate(elements):
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


def customer_rows(elements: Iterable[Any], file: str, issues: IssueList) -> Iterator[tuple[Any, ...]]:
    """Rows of the canonical customers table: (line, customer_id, name, domain)."""
    for item in items(elements, "items", file, issues):
        yield (
            item.number,
            item.get("companyProfile.tenantId", ID),
            item.get("companyProfile.companyName", json_text(300)),
            item.get("companyProfile.domain", json_text(255), required=False, default=""),
        )


def subscription_rows(
    elements: Iterable[Any], file: str, customer_id: str, issues: IssueList
) -> Iterator[tuple[Any, ...]]:
    """Rows of the vendor subscriptions table (see `vendor_sql.SUBSCRIPTIONS`)."""
    for item in items(elements, "items", file, issues):
        offer = item.get("offerName", json_text(300), required=False)
        yield (
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


def sku_rows(elements: Iterable[Any], file: str, customer_id: str, issues: IssueList) -> Iterator[tuple[Any, ...]]:
    """Rows of the vendor SKU table (see `vendor_sql.SKUS`); their subscription ids are checked
    here and read by `sku_subscription_rows`."""
    for item in items(elements, "value", file, issues):
        sku = item.get("skuPartNumber", json_text(100))
        units = [
            item.get(f"prepaidUnits.{name}", json_count, required=name == "enabled", default=0)
            for name in ("enabled", "warning", "suspended", "lockedOut")
        ]
        item.get("subscriptionIds", _id_list, required=False)
        yield (item.number, customer_id, sku, *units)


def sku_subscription_rows(elements: Iterable[Any], file: str, customer_id: str) -> Iterator[tuple[Any, ...]]:
    """Rows of the SKUs' subscription ids (see `vendor_sql.SKU_SUBSCRIPTIONS`), read again after
    `sku_rows` (which reported their problems)."""
    checked_already = IssueList()
    for item in items(elements, "value", file, checked_already):
        sku = item.get("skuPartNumber", json_text(100))
        for subscription_id in item.get("subscriptionIds", _id_list, required=False) or []:
            yield (item.number, customer_id, sku, subscription_id)


def _id_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CellError("not a list of ids")
    return [ID(v) for v in value if v.strip()]

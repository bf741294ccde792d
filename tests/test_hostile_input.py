"""Hostile input through every door (shared/RELIABILITY.md): the web upload and the API answer a
bad file with its error lines and write nothing; markup in names is escaped on every page; and
random files thrown at the importer are either imported whole or refused with well-formed
errors and nothing written. The importer's own table of bad inputs is tests/test_import.py."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils.html import escape
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accounts.models import Invitation, StaffUser
from accounts.roles import Role
from customers.models import Customer
from imports.models import ImportRun
from imports.pipeline.files import FILE_SPECS
from imports.pipeline.sources import source_from_uploads
from imports.services import data_import
from metrics.services import metrics_recompute
from tests.conftest import SNAPSHOT_DATE, client_for, committed, tenant_tables, token_client_for, upload
from tests.test_import import (
    BAD_CUSTOMERS,
    BASE,
    MIB,
    SAME,
    encrypted_zip,
    many_small_bombs_zip,
    name_not_utf8_zip,
    str_issue,
    understated_size_zip,
    zip_bytes,
    zip_entries,
)

SUBSCRIPTIONS_HEADER = "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"

# (file name, content, the error line it must give). CSV files upload as they are to the page,
# zipped to the API; archives upload as they are to both.
HOSTILE_FILES = [
    pytest.param(
        "customers.csv",
        b"customer_id,name\nC7,O\x00ne\n",
        "customers.csv:2:name: contains a NUL character (value 'O\ufffdne')",
        id="nul-character",
    ),
    pytest.param(
        "customers.csv",
        b"customer_id,n\xe4me\nC7,One\n",
        "customers.csv:1:name: required column missing from the header (value 'customer_id,n\ufffdme')",
        id="not-utf8-header",
    ),
    pytest.param(
        "customers.csv",
        b"customer_id;name\nC7;One\n",
        "customers.csv:1:-: the columns must be separated by commas, not ';' (value 'customer_id;name')",
        id="semicolon-separated",
    ),
    pytest.param(
        "customers.csv",
        b"customer_id,name\nC7," + b"x" * 10_000_000 + b"\n",
        "customers.csv:2:-: unreadable CSV line: field larger than field limit (1000000) (value '')",
        id="ten-megabyte-line",
    ),
    pytest.param(
        "subscriptions.csv",
        (SUBSCRIPTIONS_HEADER + "S9,C1,SPB,99999999999,active,false,own\n").encode(),
        "subscriptions.csv:2:quantity: larger than 2147483647 (value '99999999999')",
        id="quantity-over-the-integer-column",
    ),
    pytest.param(
        "bad.zip",
        zip_bytes({"customers.csv": BASE["customers.csv"], "../customers.csv": BASE["customers.csv"]}),
        "bad.zip:2:path: entry escapes the archive folder (value '../customers.csv')",
        id="zip-slip",
    ),
    pytest.param(
        "bad.zip",
        zip_bytes({"activity.csv": "0" * 2 * MIB}),
        "bad.zip:1:path: compressed more than 200:1 (a zip bomb?) (value 'activity.csv')",
        id="zip-bomb",
    ),
    pytest.param(
        "bad.zip",
        many_small_bombs_zip(),
        f"bad.zip:0:archive: compressed more than 200:1 as a whole (a zip bomb?) (value '{3 * MIB}')",
        id="zip-of-many-small-bombs",
    ),
    pytest.param(
        "bad.zip",
        understated_size_zip(),
        "bad.zip:1:path: damaged archive entry: Bad CRC-32 for file 'customers.csv' (value 'customers.csv')",
        id="zip-understating-its-size",
    ),
    pytest.param(
        "bad.zip",
        encrypted_zip(),
        "bad.zip:1:path: entry is encrypted: zip the files without a password (value 'customers.csv')",
        id="zip-encrypted",
    ),
    pytest.param(
        "bad.zip",
        name_not_utf8_zip(),
        "bad.zip:0:archive: not a readable .zip archive: 'utf-8' codec can't decode byte 0xff in position 6: "
        "invalid start byte (value '')",
        id="zip-name-not-utf8",
    ),
]


@pytest.fixture
def stored(partner) -> None:
    """Partner A's data, so that a refused import has something it must leave alone."""
    run = data_import(partner=partner, source=source_from_uploads(uploads(BASE)), origin=ImportRun.Origin.COMMAND)
    assert run.status == "succeeded", run.errors


def uploads(files: dict[str, str | bytes]) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)
        for name, content in files.items()
    ]


@pytest.mark.parametrize(("name", "content", "error"), HOSTILE_FILES)
def test_upload_page_shows_the_error_and_writes_nothing(staff, stored, name, content, error):
    importer = client_for(staff[Role.ADMIN_AGENT])
    before = tenant_tables()
    answer, response = upload(importer, uploads({name: content}))
    assert response.status_code == 200
    run = response.context["run"]
    assert answer["Location"] == f"/imports/{run.pk}/"
    assert error in [str_issue(e) for e in run.errors]
    html = response.content.decode()
    assert "Import refused" in html
    assert "Nothing was written" in html
    assert escape(run.errors[0]["reason"]) in html
    assert tenant_tables() == before


@pytest.mark.parametrize(("name", "content", "error"), HOSTILE_FILES)
def test_api_import_answers_422_with_the_error_and_writes_nothing(staff, stored, name, content, error):
    # Stored, not deflated: a ten-megabyte line of one letter would be a zip bomb.
    archive = content if name.endswith(".zip") else zip_bytes({name: content}, zipfile.ZIP_STORED)
    upload = SimpleUploadedFile("bad.zip", archive, content_type="application/zip")
    api = token_client_for(staff[Role.ADMIN_AGENT])
    before = tenant_tables()
    accepted = committed(api.post, "/api/imports/", {"file": upload})
    assert accepted.status_code == 202
    body = api.get(accepted["Location"]).json()
    assert body["status"] == "failed"
    assert error in [str_issue(e) for e in body["errors"]]
    assert tenant_tables() == before


# --- two inputs that one import reads as the same file, through both doors -------------------------

SAME_NAMES = [
    pytest.param(
        [
            ("activity.csv", b"user_id,workload,date\nU1,teams,2024-03-01\n"),
            ("activity.csv", b"user_id,workload,date\n"),
        ],
        f"activity.csv:0:path: upload 1 'activity.csv' and upload 2 'activity.csv' {SAME} (value 'activity.csv')",
        id="two-files-of-one-name-picked-from-two-folders",
    ),
    pytest.param(
        [("customers.csv", BASE["customers.csv"].encode()), ("CUSTOMERS.CSV", BAD_CUSTOMERS.encode())],
        f"CUSTOMERS.CSV:0:path: upload 1 'customers.csv' and upload 2 'CUSTOMERS.CSV' {SAME} (value 'CUSTOMERS.CSV')",
        id="two-files-differing-in-case",
    ),
    pytest.param(
        [("bad.zip", zip_entries([("customers.csv", BAD_CUSTOMERS), ("customers.csv", BASE["customers.csv"])]))],
        f"bad.zip:2:path: entry 1 'customers.csv' of bad.zip and entry 2 'customers.csv' of bad.zip {SAME} "
        "(value 'customers.csv')",
        id="zip-holding-one-name-twice",
    ),
    pytest.param(
        [("bad.zip", zip_entries([("customers.csv", BASE["customers.csv"]), ("CUSTOMERS.CSV", BAD_CUSTOMERS)]))],
        f"bad.zip:2:path: entry 1 'customers.csv' of bad.zip and entry 2 'CUSTOMERS.CSV' of bad.zip {SAME} "
        "(value 'CUSTOMERS.CSV')",
        id="zip-names-differing-in-case",
    ),
]


@pytest.mark.parametrize(("files", "error"), SAME_NAMES)
def test_upload_page_refuses_two_inputs_read_as_one_file(staff, stored, files, error):
    importer = client_for(staff[Role.ADMIN_AGENT])
    before = tenant_tables()
    _, response = upload(importer, [SimpleUploadedFile(name, content) for name, content in files])
    run = response.context["run"]
    assert [str_issue(e) for e in run.errors] == [error]
    assert "Nothing was written" in response.content.decode()
    assert tenant_tables() == before


@pytest.mark.parametrize(("files", "error"), [case for case in SAME_NAMES if case.values[0][0][0] == "bad.zip"])
def test_api_refuses_a_zip_holding_one_file_twice(staff, stored, files, error):
    api = token_client_for(staff[Role.ADMIN_AGENT])
    before = tenant_tables()
    ((_, archive),) = files
    accepted = committed(api.post, "/api/imports/", {"file": SimpleUploadedFile("bad.zip", archive)})
    body = api.get(accepted["Location"]).json()
    assert (body["status"], [str_issue(e) for e in body["errors"]]) == ("failed", [error])
    assert tenant_tables() == before


# --- markup in names --------------------------------------------------------------------------

PAYLOAD = '<script>alert("pi")</script><img src=x onerror=alert(1)>'
RAW_MARKUP = ("<script>alert(", "<img src=x")


def csv_text(header: str, *rows: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header.split(","), *rows])
    return buffer.getvalue()


@pytest.fixture
def marked(partner, staff) -> dict:
    """Partner A's data with markup in every name a page shows, published, plus a refused upload
    whose file name and bad value are markup too."""
    day = SNAPSHOT_DATE.isoformat()
    files = {
        "customers.csv": csv_text("customer_id,name,domain", ("X1", f"Acme {PAYLOAD}", f"{PAYLOAD}.example")),
        "products.csv": csv_text("sku,name,family,workloads", ("XSKU", f"Suite {PAYLOAD}", "office365", "exchange")),
        "subscriptions.csv": csv_text(
            "subscription_id,customer_id,sku,quantity,status,is_trial,source,start_date",
            (f"S-{PAYLOAD}", "X1", "XSKU", "10", "active", "false", "own", "2024-01-01"),
        ),
        "users.csv": csv_text(
            "user_id,customer_id,upn,display_name",
            ("XU1", "X1", f"{PAYLOAD}@x.example", f"Ann {PAYLOAD}"),
            ("XU2", "X1", f"idle{PAYLOAD}@x.example", f"Idle {PAYLOAD}"),
        ),
        "assignments.csv": csv_text(
            "user_id,subscription_id,assigned_on,state",
            ("XU1", f"S-{PAYLOAD}", "2024-01-02", "active"),
            ("XU2", f"S-{PAYLOAD}", "2024-01-02", "active"),
        ),
        "activity.csv": csv_text("user_id,workload,date", ("XU1", "exchange", day)),
    }
    run = data_import(partner=partner, source=source_from_uploads(uploads(files)), origin=ImportRun.Origin.COMMAND)
    assert run.status == "succeeded", run.errors
    metrics_recompute(partner=partner, as_of=SNAPSHOT_DATE, trigger="nightly")
    StaffUser.objects.filter(pk=staff[Role.SALES_AGENT].pk).update(full_name=f"Sam {PAYLOAD}")
    Invitation.objects.create(partner=partner, email="nia@alpha.example", role=Role.SALES_AGENT, full_name=PAYLOAD)
    client = client_for(staff[Role.GLOBAL_ADMIN])
    bad = {
        f"{PAYLOAD}.csv": "x",
        "subscriptions.csv": csv_text(SUBSCRIPTIONS_HEADER.strip(), ("S9", "X1", "XSKU", PAYLOAD)),
    }
    refused = upload(client, uploads(bad))[1].context["run"]
    assert refused.status == "failed"
    return {"client": client, "customer": Customer.objects.get(partner=partner, external_id="X1"), "refused": refused}


def _marked_pages(marked: dict) -> list[str]:
    customer, refused = marked["customer"].pk, marked["refused"].pk
    return [
        "/customers/",
        f"/customers/?q={PAYLOAD}",
        f"/customers/{customer}/insights/",
        f"/customers/{customer}/subscriptions/",
        "/analytics/",
        f"/analytics/?sku={PAYLOAD}",
        "/imports/",
        f"/imports/{refused}/",
        "/staff/",
        "/settings/",
        "/settings/reports/",
    ]


def test_markup_in_names_is_shown_escaped_on_every_page(marked):
    for path in _marked_pages(marked):
        response = marked["client"].get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert not [raw for raw in RAW_MARKUP if raw in html], path
        assert [raw for raw in RAW_MARKUP if escape(raw) in html], f"{path} does not show the names at all"


# --- random files -----------------------------------------------------------------------------

COLUMN_NAMES = sorted({column.name for spec in FILE_SPECS for column in spec.columns})
TRICKY_CHARS = [*",;\"'\n\r\t\x00 =+-@<>&\\/:.|0123456789abcCSU", "é", "株", "\u202e", "\ufeff", "\ud800", "²"]
TRICKY_VALUES = [
    *("", " ", "C1", "C2", "U1", "S1", "R1", "ENTERPRISEPACK", "SPB", "2024-01-01", "0000-00-00", "2024-02-30"),
    *("1e9", "-1", "99999999999", "1.5", "--1", "10", "0", "true", "FALSE", "yes", "active", "own", "exchange"),
    *("howto", "office365", "=1+1", "@SUM(A1)", PAYLOAD, "9" * 5000, "x" * 400),
]
FILE_NAMES = [spec.name for spec in FILE_SPECS] + ["notes.txt", "data.json", "subscriptions.json", "Customers.CSV"]
MEMBER_NAMES = [*FILE_NAMES, "export/customers.csv", "../customers.csv", "/abs/users.csv", "C:\\x.csv", "d/e/f.json"]
MEMBER_NAMES += ["C1/subscriptions.json", "C1/skus.json", "C2/report.csv"]  # customer folders of stored customers
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1"]

cells = st.one_of(st.sampled_from(TRICKY_VALUES), st.text(alphabet=TRICKY_CHARS, max_size=12))


def _encode(text: str, encoding: str) -> bytes:
    errors = "surrogatepass" if encoding.startswith("utf-8") else "replace"  # surrogatepass: bytes not UTF-8
    return text.encode(encoding, errors)


@st.composite
def csv_ish(draw: st.DrawFn) -> bytes:
    """Text that looks like CSV: a header of known and odd column names, rows of tricky cells, a
    random separator, line ending and encoding; quoted by the csv module or joined raw."""
    header = draw(st.lists(st.one_of(st.sampled_from(COLUMN_NAMES), cells), max_size=8))
    rows = draw(st.lists(st.lists(cells, max_size=8), max_size=5))
    separator, ending = draw(st.sampled_from([",", ",", ";", "\t"])), draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=separator, lineterminator=ending).writerows([header, *rows])
        text = buffer.getvalue()
    else:
        text = "".join(separator.join(row) + ending for row in [header, *rows])
    return _encode(text, draw(st.sampled_from(ENCODINGS)))


@st.composite
def canonical_variant(draw: st.DrawFn) -> dict[str, bytes]:
    """Some of the canonical files, perhaps with one cell replaced by a tricky one."""
    names = draw(st.lists(st.sampled_from(sorted(BASE)), min_size=1, max_size=4, unique=True))
    files = {name: BASE[name] for name in names}
    if draw(st.booleans()):
        name = draw(st.sampled_from(names))
        lines = files[name].splitlines()
        line = draw(st.integers(0, len(lines) - 1))
        cells_of_line = lines[line].split(",")
        cells_of_line[draw(st.integers(0, len(cells_of_line) - 1))] = draw(cells).replace(",", "")
        lines[line] = ",".join(cells_of_line)
        files[name] = "\n".join(lines) + "\n"
    return {name: content.encode("utf-8", "surrogatepass") for name, content in files.items()}


# The vendor exports' keys (shared/vendor-formats.md), so random JSON reaches their readers.
JSON_KEYS = [
    *("items", "value", "totalCount", "companyProfile", "tenantId", "companyName", "domain", "id"),
    *("offerName", "quantity", "status", "isTrial", "effectiveStartDate", "commitmentEndDate"),
    *("autoRenewEnabled", "billingCycle", "skuPartNumber", "prepaidUnits", "enabled", "subscriptionIds"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | cells,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=4),
    max_leaves=12,
)
contents = st.one_of(st.binary(max_size=300), csv_ish(), json_values.map(lambda value: json.dumps(value).encode()))
loose_files = st.dictionaries(st.sampled_from(FILE_NAMES), contents, min_size=1, max_size=3)


@st.composite
def archive(draw: st.DrawFn) -> dict[str, bytes]:
    """A .zip of random members (names that try to escape included), stored or deflated, and
    sometimes with one byte changed."""
    members = draw(st.dictionaries(st.sampled_from(MEMBER_NAMES), contents | canonical_variant().map(_one), max_size=4))
    data = bytearray(zip_bytes(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))))
    if data and draw(st.booleans()):
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return {"import.zip": bytes(data)}


def _one(files: dict[str, bytes]) -> bytes:
    return next(iter(files.values()))


ERROR_LINE = re.compile(r"[^\r\n]+:\d+:[^\r\n]+: [^\r\n]+ \(value '[^\r\n]*'\)")


def assert_well_formed(run: ImportRun) -> None:
    assert run.errors, "a refused import says why"
    assert run.error_count >= len(run.errors)
    for error in run.errors:
        assert set(error) == {"file", "line", "column", "reason", "value"}
        assert isinstance(error["line"], int)
        assert error["line"] >= 0
        assert all(isinstance(error[key], str) for key in ("file", "column", "reason", "value"))
        assert all(error[key] for key in ("file", "column", "reason"))
        assert ERROR_LINE.fullmatch(str_issue(error)), str_issue(error)


def assert_wholly_imported(partner, files: dict[str, bytes], run: ImportRun) -> None:
    """Everything was written: the same files again create and update nothing."""
    again = data_import(partner=partner, source=source_from_uploads(uploads(files)), origin=ImportRun.Origin.UPLOAD)
    assert again.status == "succeeded", again.errors
    changed = {name: (counts["created"], counts["updated"]) for name, counts in again.counts.items()}
    assert changed == dict.fromkeys(run.counts, (0, 0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.one_of(loose_files, canonical_variant(), archive()))
def test_random_files_are_imported_whole_or_refused_with_nothing_written(partner, stored, files):
    before = tenant_tables()
    with transaction.atomic():  # each example is undone: all start from the same stored data
        run = data_import(partner=partner, source=source_from_uploads(uploads(files)), origin=ImportRun.Origin.UPLOAD)
        assert ImportRun.objects.get(pk=run.pk).errors == run.errors  # stored as reported
        event(f"import {run.status}")
        if run.status == "succeeded":
            assert_wholly_imported(partner, files, run)
        else:
            assert_well_formed(run)
            assert tenant_tables() == before
        transaction.set_rollback(True)

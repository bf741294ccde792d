"""Imports (SPEC §6): every kind of bad input gives its clear error and writes nothing;
re-imports change nothing; ids stay separate per partner; everything else imports as it is."""

from __future__ import annotations

import datetime as dt
import io
import warnings
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.roles import Role
from customers.models import Activity, Customer, EndUser, LicenseAssignment, Product, Subscription, SupportRequest
from imports.models import ImportRun
from imports.pipeline.sources import source_from_path, source_from_uploads
from imports.services import data_import
from tests.conftest import client_for, tenant_tables, upload

BASE = {
    "customers.csv": "customer_id,name,domain\nC1,Contoso,contoso.example\nC2,Fabrikam,fabrikam.example\n",
    "subscriptions.csv": (
        "subscription_id,customer_id,sku,quantity,status,is_trial,source,start_date,end_date\n"
        "S1,C1,ENTERPRISEPACK,10,active,false,own,2024-01-01,\n"
        "S2,C2,STANDARDPACK,5,grace,true,other_partner,,2025-12-31\n"
    ),
    "users.csv": "user_id,customer_id,upn,display_name\nU1,C1,ann@contoso.example,Ann\nU2,C2,bob@fabrikam.example,\n",
    "assignments.csv": (
        "user_id,subscription_id,assigned_on,removed_on,state\n"
        "U1,S1,2024-01-02,,active\nU2,S2,2024-01-02,2024-03-01,suspended\n"
    ),
    "activity.csv": "user_id,workload,date\nU1,exchange,2024-02-01\nU1,exchange,2024-02-01\nU2,teams,2024-02-03\n",
    "support_requests.csv": "request_id,customer_id,opened_on,category\nR1,C1,2024-02-01,howto\n",
}


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def run_import(partner, folder: Path) -> ImportRun:
    return data_import(partner=partner, source=source_from_path(folder), origin=ImportRun.Origin.COMMAND)


def snapshot() -> dict[str, list]:
    """Every imported row, to prove a refused import wrote nothing."""
    return {
        model.__name__: sorted(model.objects.values_list(*fields))
        for model, fields in [
            (Customer, ("partner_id", "external_id", "name", "domain")),
            (Subscription, ("external_id", "quantity", "status", "start_date", "end_date", "product_id")),
            (EndUser, ("external_id", "customer_id", "upn")),
            (LicenseAssignment, ("user_id", "subscription_id", "assigned_on", "removed_on", "state")),
            (Activity, ("user_id", "activity_date", "workload")),
            (SupportRequest, ("external_id", "opened_on", "category")),
            (Product, ("partner_id", "sku", "name", "family")),
        ]
    }


@pytest.fixture
def imported(partner, tmp_path) -> Path:
    run = run_import(partner, write(tmp_path / "base", BASE))
    assert run.status == "succeeded", run.errors
    return tmp_path


def test_valid_import_writes_every_file_with_counts(partner, tmp_path):
    run = run_import(partner, write(tmp_path / "in", BASE))
    assert run.status == "succeeded"
    assert run.counts == {
        "customers.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
        "subscriptions.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
        "users.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
        "assignments.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
        "activity.csv": {"rows": 3, "created": 2, "updated": 0, "unchanged": 1},
        "support_requests.csv": {"rows": 1, "created": 1, "updated": 0, "unchanged": 0},
    }
    s2 = Subscription.objects.get(external_id="S2")
    assert (s2.customer.external_id, s2.product.sku, s2.quantity, s2.status, s2.is_trial, s2.source) == (
        "C2",
        "STANDARDPACK",
        5,
        "grace",
        True,
        "other_partner",
    )
    assert (s2.start_date, s2.end_date) == (None, dt.date(2025, 12, 31))
    a2 = LicenseAssignment.objects.get(user__external_id="U2")
    assert (a2.customer.external_id, a2.removed_on, a2.state) == ("C2", dt.date(2024, 3, 1), "suspended")
    assert (run.affected_from, run.affected_to) == (dt.date(2024, 1, 2), dt.date(2024, 3, 1))


def test_reimporting_the_same_files_changes_nothing(partner, imported):
    before = snapshot()
    run = run_import(partner, imported / "base")
    assert run.status == "succeeded"
    assert all(c["created"] == 0 and c["updated"] == 0 for c in run.counts.values())
    assert snapshot() == before
    assert any("Same content as import" in w for w in run.warnings)


def test_reimported_row_replaces_stored_fields(partner, imported, tmp_path):
    changed = {
        "customers.csv": "customer_id,name\nC1,Contoso Ltd\n",
        "subscriptions.csv": BASE["subscriptions.csv"].replace("S1,C1,ENTERPRISEPACK,10", "S1,C1,ENTERPRISEPACK,12"),
        "assignments.csv": "user_id,subscription_id,assigned_on,removed_on,state\nU1,S1,2024-01-02,2024-05-01,active\n",
    }
    run = run_import(partner, write(tmp_path / "changed", changed))
    assert run.counts["customers.csv"] == {"rows": 1, "created": 0, "updated": 1, "unchanged": 0}
    assert run.counts["subscriptions.csv"] == {"rows": 2, "created": 0, "updated": 1, "unchanged": 1}
    c1 = Customer.objects.get(external_id="C1")
    assert (c1.name, c1.domain) == ("Contoso Ltd", "")  # an absent optional column empties the field
    assert Subscription.objects.get(external_id="S1").quantity == 12
    assert LicenseAssignment.objects.get(user__external_id="U1").removed_on == dt.date(2024, 5, 1)
    assert Customer.objects.count() == 2  # an import never deletes


BAD_INPUTS = [
    pytest.param(
        {"customers.csv": "customer_id,domain\nC9,x.example\n"},
        "customers.csv:1:name: required column missing from the header (value 'customer_id,domain')",
        id="required-column-missing",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC9,\n"},
        "customers.csv:2:name: required value is empty (value '')",
        id="required-cell-empty",
    ),
    pytest.param(
        {"subscriptions.csv": BASE["subscriptions.csv"] + "S9,C404,ENTERPRISEPACK,1,active,false,own,,\n"},
        "subscriptions.csv:4:customer_id: unknown customer: not in this import nor already stored (value 'C404')",
        id="unknown-customer",
    ),
    pytest.param(
        {"subscriptions.csv": BASE["subscriptions.csv"] + "S9,C1,NOSUCHSKU,1,active,false,own,,\n"},
        "subscriptions.csv:4:sku: unknown sku: not in this import nor already stored (value 'NOSUCHSKU')",
        id="unknown-sku",
    ),
    pytest.param(
        {"assignments.csv": "user_id,subscription_id,assigned_on,state\nU404,S1,2024-01-01,active\n"},
        "assignments.csv:2:user_id: unknown user: not in this import nor already stored (value 'U404')",
        id="unknown-user",
    ),
    pytest.param(
        {"assignments.csv": "user_id,subscription_id,assigned_on,state\nU1,S404,2024-01-01,active\n"},
        "assignments.csv:2:subscription_id: unknown subscription: not in this import nor already stored (value 'S404')",
        id="unknown-subscription",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,teams,2024-01-01\nU404,teams,2024-01-01\n"},
        "activity.csv:3:user_id: unknown user: not in this import nor already stored (value 'U404')",
        id="activity-of-unknown-user",
    ),
    pytest.param(
        {"support_requests.csv": "request_id,customer_id,opened_on,category\nR9,C404,2024-01-01,howto\n"},
        "support_requests.csv:2:customer_id: unknown customer: not in this import nor already stored (value 'C404')",
        id="support-of-unknown-customer",
    ),
    pytest.param(
        {"assignments.csv": "user_id,subscription_id,assigned_on,state\nU1,S2,2024-01-01,active\n"},
        "assignments.csv:2:subscription_id: the subscription belongs to customer 'C2', not to the user's customer "
        "(value 'S2')",
        id="assignment-on-another-customers-subscription",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,teams,2024-02-30\n"},
        "activity.csv:2:date: not a valid calendar date (value '2024-02-30')",
        id="impossible-date",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,teams,01/02/2024\n"},
        "activity.csv:2:date: not a date in YYYY-MM-DD form (value '01/02/2024')",
        id="unparseable-date",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,teams,0000-00-00\n"},
        "activity.csv:2:date: not a valid calendar date (value '0000-00-00')",
        id="zero-date",
    ),
    pytest.param(
        {
            "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
            "S9,C1,SPB,1e9,active,false,own\n"
        },
        "subscriptions.csv:2:quantity: not a whole number (value '1e9')",
        id="unparseable-number",
    ),
    pytest.param(
        {
            "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
            "S9,C1,SPB,-1,active,false,own\n"
        },
        "subscriptions.csv:2:quantity: negative quantity (value '-1')",
        id="negative-quantity",
    ),
    pytest.param(
        {
            "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
            "S9,C1,SPB,1,paused,false,own\n"
        },
        "subscriptions.csv:2:status: unknown value, expected one of active, grace, disabled, preprovisioned, "
        "suspended, cancelled, expired (value 'paused')",
        id="unknown-status",
    ),
    pytest.param(
        {
            "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
            "S9,C1,SPB,1,active,yes,own\n"
        },
        "subscriptions.csv:2:is_trial: not a boolean, expected true or false (value 'yes')",
        id="bad-boolean",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,skype,2024-01-01\n"},
        "activity.csv:2:workload: unknown value, expected one of exchange, sharepoint, onedrive, teams, yammer, "
        "office_apps, dynamics365 (value 'skype')",
        id="unknown-workload",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC7,One\nC8,Two\nC7,Three\n"},
        "customers.csv:4:customer_id: duplicate id, first given on line 2 (value 'C7')",
        id="duplicate-id",
    ),
    pytest.param(
        {
            "assignments.csv": "user_id,subscription_id,assigned_on,state\n"
            "U1,S1,2024-01-01,active\nU1,S1,2024-01-01,suspended\n"
        },
        "assignments.csv:3:user_id+subscription_id+assigned_on: duplicate id, first given on line 2 "
        "(value 'U1 / S1 / 2024-01-01')",
        id="duplicate-assignment-triple",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name,name\nC7,One,Two\n"},
        "customers.csv:1:name: column appears more than once in the header (value 'name')",
        id="duplicated-header",
    ),
    pytest.param(
        {"customers.csv": b"customer_id,name\nC7,M\xfcller\n"},
        "customers.csv:2:name: not valid UTF-8 text (value 'M\ufffdller')",
        id="not-utf8",
    ),
    pytest.param(
        {"customers.csv": b"customer_id,n\xe4me\nC7,One\n"},
        "customers.csv:1:name: required column missing from the header (value 'customer_id,n\ufffdme')",
        id="not-utf8-header",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC7,One\n".encode("utf-16")},
        "customers.csv:1:-: the file is UTF-16 text: save it as UTF-8 CSV (value '')",
        id="utf-16",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC7,O\x00ne\n"},
        "customers.csv:2:name: contains a NUL character (value 'O\ufffdne')",
        id="nul-character",
    ),
    pytest.param(
        {"customers.csv": "customer_id;name;domain\nC7;One;one.example\n"},
        "customers.csv:1:-: the columns must be separated by commas, not ';' (value 'customer_id;name;domain')",
        id="semicolon-separated",
    ),
    pytest.param(
        {"customers.csv": "customer_id\tname\nC7\tOne\n"},
        "customers.csv:1:-: the columns must be separated by commas, not '\\t' (value 'customer_id\\tname')",
        id="tab-separated",
    ),
    pytest.param(
        {"customers.csv": "C7,One\n"},
        "customers.csv:1:customer_id: required column missing from the header (value 'C7,One')",
        id="header-row-missing",
    ),
    pytest.param(
        {"customers.csv": ""},
        "customers.csv:1:-: the file is empty: a header row is required (value '')",
        id="empty-file",
    ),
    pytest.param(
        {"customers.csv": "customer_id,Name, NAME \nC7,One,Two\n"},
        "customers.csv:1:name: column appears more than once in the header (value 'name')",
        id="duplicated-header-in-another-case",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC7," + "x" * 10_000_000 + "\n"},
        "customers.csv:2:-: unreadable CSV line: field larger than field limit (1000000) (value '')",
        id="ten-megabyte-line",
    ),
    pytest.param(
        {"customers.csv": "customer_id,name\nC7," + "x" * 301 + "\n"},
        "customers.csv:2:name: longer than 300 characters (value '" + "x" * 80 + "…')",
        id="text-too-long",
    ),
    pytest.param(
        {"activity.csv": "user_id,workload,date\nU1,teams,\uff12\uff10\uff12\uff14-01-01\n"},
        "activity.csv:2:date: not a valid calendar date (value '\uff12\uff10\uff12\uff14-01-01')",
        id="date-in-full-width-digits",
    ),
    *(
        pytest.param(
            {
                "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
                f"S9,C1,SPB,{quantity},active,false,own\n"
            },
            f"subscriptions.csv:2:quantity: {reason} (value '{shown}')",
            id=f"quantity-{name}",
        )
        for name, quantity, reason, shown in [
            ("over-the-integer-column", "99999999999", "larger than 2147483647", "99999999999"),
            ("just-over-the-integer-column", "2147483648", "larger than 2147483647", "2147483648"),
            ("of-5000-digits", "9" * 5000, "larger than 2147483647", "9" * 80 + "…"),
            ("with-a-fraction", "1.5", "not a whole number", "1.5"),
            ("twice-negative", "--1", "not a whole number", "--1"),
            ("in-superscript", "\u00b2", "not a whole number", "\u00b2"),
            ("in-arabic-indic-digits", "\u0661\u0662", "not a whole number", "\u0661\u0662"),
        ]
    ),
    pytest.param(
        {"portal.json": '{"totalCount": 1, "items": [{"companyProfile": {"tenantId": "T\\u0000"}}]}'},
        "portal.json:1:items[0].companyProfile.tenantId: contains a NUL character (value 'T\ufffd')",
        id="json-nul-character",
    ),
    pytest.param(
        {"portal.json": '{"items": [{"n": ' + "9" * 5000 + "}]}"},
        "portal.json:0:-: not valid JSON: a number has too many digits (value '')",
        id="json-number-of-5000-digits",
    ),
    pytest.param(
        {"portal.json": "[" * 100_000 + "]" * 100_000},
        "portal.json:0:-: not valid JSON: nested too deeply (value '')",
        id="json-nested-too-deeply",
    ),
]


@pytest.mark.parametrize(("files", "error"), BAD_INPUTS)
def test_bad_input_gives_its_error_and_writes_nothing(partner, imported, files, error):
    before = tenant_tables()
    # A valid file in the same import is not written either: all or nothing.
    files = {"customers.csv": "customer_id,name\nC100,Should not appear\n", **files}
    run = run_import(partner, write(imported / "bad", files))
    assert run.status == "failed"
    assert error in [str_issue(e) for e in run.errors]
    assert tenant_tables() == before


def str_issue(error: dict) -> str:
    from imports.pipeline.issues import ImportIssue

    return str(ImportIssue(**error))


def test_every_bad_row_is_reported_and_the_list_is_capped(partner, tmp_path):
    rows = "".join(f"C{i},\n" for i in range(500))
    run = run_import(partner, write(tmp_path / "many", {"customers.csv": "customer_id,name\n" + rows}))
    assert run.error_count == 500
    assert len(run.errors) == 200
    assert [e["line"] for e in run.errors[:3]] == [2, 3, 4]


def test_bad_row_at_the_end_of_a_large_file_writes_nothing(partner, imported):
    lines = "".join(f"U1,exchange,{dt.date(2020, 1, 1) + dt.timedelta(days=i)}\n" for i in range(5000))
    before = snapshot()
    run = run_import(partner, write(imported / "big", {"activity.csv": "user_id,workload,date\n" + lines + "U1,x,y\n"}))
    assert run.status == "failed"
    assert run.error_count == 2
    assert snapshot() == before


def test_anything_else_imports_as_it_is(partner, imported, tmp_path):
    files = {
        # columns in another order, an extra column, a BOM, an end before the start
        "subscriptions.csv": (
            "\ufeffsku,subscription_id,customer_id,quantity,status,is_trial,source,end_date,start_date,note\n"
            "SPB,S3,C1,1,active,FALSE,direct,2023-01-01,2024-01-01,ignored\n"
        ),
        # more assignments than seats, dated outside the subscription
        "assignments.csv": "user_id,subscription_id,assigned_on,state\nU1,S3,2020-01-01,active\n",
        # activity of a user without a license on that workload, repeated
        "activity.csv": "user_id,workload,date\nU2,dynamics365,2024-02-01\nU2,dynamics365,2024-02-01\n",
    }
    run = run_import(partner, write(tmp_path / "odd", files))
    assert run.status == "succeeded", run.errors
    s3 = Subscription.objects.get(external_id="S3")
    assert (s3.start_date, s3.end_date, s3.source, s3.is_trial) == (
        dt.date(2024, 1, 1),
        dt.date(2023, 1, 1),
        "direct",
        False,
    )
    assert Activity.objects.filter(user__external_id="U2", workload="dynamics365").count() == 1


def test_hostile_text_that_breaks_no_rule_imports_as_it_is(partner, imported, tmp_path):
    """Formula-looking text, markup, right-to-left overrides and the largest quantity are data:
    stored as given (pages escape them; exports neutralise formulas, tests/test_exports.py)."""
    names = ['=HYPERLINK("http://x.example","y")', "+1+1", "-2", "@SUM(A1)", "<script>alert(1)</script>"]
    names += ["\u202eevil.exe", "Zoë ✓ 株式会社", "n" * 300]
    customers = "".join(f'H{n},"{name.replace(chr(34), chr(34) * 2)}"\n' for n, name in enumerate(names))
    files = {
        "customers.csv": "customer_id,name\n" + customers,
        "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
        "S-MAX,H0,SPB,2147483647,active,false,own\nS-ZERO,H1,SPB,-0,active,false,own\n",
    }
    run = run_import(partner, write(tmp_path / "hostile", files))
    assert run.status == "succeeded", run.errors
    stored = dict(Customer.objects.filter(external_id__startswith="H").values_list("external_id", "name"))
    assert stored == {f"H{n}": name for n, name in enumerate(names)}
    assert dict(
        Subscription.objects.filter(external_id__in=["S-MAX", "S-ZERO"]).values_list("external_id", "quantity")
    ) == {
        "S-MAX": 2_147_483_647,
        "S-ZERO": 0,
    }


def test_a_huge_bad_value_is_stored_shortened(partner, tmp_path):
    run = run_import(
        partner, write(tmp_path / "long", {"customers.csv": "customer_id,name\nC1," + "y" * 900_000 + "\n"})
    )
    (error,) = run.errors
    assert (error["reason"], error["value"]) == ("longer than 300 characters", "y" * 200 + "…")


def test_an_error_line_stays_one_line_whatever_the_value(partner, tmp_path):
    files = {
        "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
        'S1,C1,SPB,"1\n2\u202e",active,false,own\n'
    }
    run = run_import(partner, write(tmp_path / "lines", files))
    assert str_issue(run.errors[0]) == "subscriptions.csv:2:quantity: not a whole number (value '1\\n2\\u202e')"


def test_same_external_ids_under_two_partners_stay_separate(partner, other_partner, tmp_path):
    folder = write(tmp_path / "same", BASE)
    assert run_import(partner, folder).status == "succeeded"
    assert run_import(other_partner, folder).status == "succeeded"
    assert Customer.objects.filter(external_id="C1").count() == 2
    for tenant in (partner, other_partner):
        assert Customer.objects.filter(partner=tenant).count() == 2
        assert (
            LicenseAssignment.objects.filter(partner=tenant, user__partner=tenant, subscription__partner=tenant).count()
            == 2
        )


def test_references_never_resolve_to_another_partners_rows(partner, other_partner, tmp_path):
    assert run_import(other_partner, write(tmp_path / "b", BASE)).status == "succeeded"
    run = run_import(partner, write(tmp_path / "a", {"users.csv": "user_id,customer_id,upn\nU9,C1,x@y\n"}))
    assert run.status == "failed"
    assert run.errors[0]["reason"].startswith("unknown customer")


def test_products_replace_the_catalog_entry_for_the_importing_partner_only(partner, other_partner, imported, tmp_path):
    files = {
        "products.csv": "sku,name,family,workloads\nENTERPRISEPACK,Our E3,office365,exchange teams\n"
        "NEWSKU,New thing,dynamics365,dynamics365\n"
    }
    run = run_import(partner, write(tmp_path / "products", files))
    assert run.counts["products.csv"] == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0}
    own = Product.objects.get(partner=partner, sku="ENTERPRISEPACK")
    assert (own.name, own.workload_list) == ("Our E3", ["exchange", "teams"])
    assert Subscription.objects.get(external_id="S1").product == own
    assert Product.objects.get(partner=None, sku="ENTERPRISEPACK").name == "Office 365 E3"
    assert [p.sku for p in Product.objects.visible_to(other_partner) if p.sku == "ENTERPRISEPACK"] == ["ENTERPRISEPACK"]
    assert Product.objects.visible_to(other_partner).get(sku="ENTERPRISEPACK").partner is None
    again = run_import(partner, write(tmp_path / "products", files))
    assert again.counts["products.csv"]["unchanged"] == 2


def test_moving_a_user_with_assignments_to_another_customer_is_refused(partner, imported, tmp_path):
    run = run_import(partner, write(tmp_path / "move", {"users.csv": "user_id,customer_id,upn\nU1,C2,ann@x\n"}))
    assert [str_issue(e) for e in run.errors] == [
        "users.csv:2:customer_id: the user keeps license assignments on subscriptions of customer 'C1' (value 'C2')"
    ]


def zip_bytes(entries: dict[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_zip_with_one_folder_imports(partner, tmp_path):
    path = tmp_path / "export.zip"
    path.write_bytes(zip_bytes({f"export/{name}": content for name, content in BASE.items()}))
    assert run_import(partner, path).status == "succeeded"
    assert Customer.objects.filter(partner=partner).count() == 2


@pytest.mark.parametrize(
    "evil",
    ["../customers.csv", "/etc/customers.csv", "a/../../customers.csv", "..\\customers.csv", "C:\\customers.csv"],
)
def test_zip_entries_escaping_their_folder_are_refused(partner, tmp_path, evil):
    path = tmp_path / "evil.zip"
    path.write_bytes(zip_bytes({"customers.csv": BASE["customers.csv"], evil: BASE["customers.csv"]}))
    run = run_import(partner, path)
    assert run.status == "failed"
    assert run.errors == [
        {"file": "evil.zip", "line": 2, "column": "path", "reason": "entry escapes the archive folder", "value": evil}
    ]
    assert Customer.objects.count() == 0


def test_zip_bomb_is_refused(partner, tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes({"activity.csv": "user_id,workload,date\n" + "0" * 50_000_000}))
    run = run_import(partner, path)
    assert run.status == "failed"
    assert "zip bomb" in run.errors[0]["reason"]


LOCAL_HEADER, CENTRAL_HEADER = b"PK\x03\x04", b"PK\x01\x02"
MIB = 1024 * 1024


def with_header_field(archive: bytes, local_at: int, central_at: int, value: bytes) -> bytes:
    """A one-entry archive with one field of both its headers overwritten (offsets from each
    header's signature: flags 6 / 8, method 8 / 10, uncompressed size 22 / 24)."""
    data = bytearray(archive)
    for signature, at in ((LOCAL_HEADER, local_at), (CENTRAL_HEADER, central_at)):
        start = data.find(signature) + at
        data[start : start + len(value)] = value
    return bytes(data)


def encrypted_zip() -> bytes:
    return with_header_field(zip_bytes({"customers.csv": BASE["customers.csv"]}), 6, 8, b"\x01\x00")


def unknown_method_zip() -> bytes:
    return with_header_field(zip_bytes({"customers.csv": BASE["customers.csv"]}), 8, 10, b"\x63\x00")


def name_not_utf8_zip() -> bytes:
    """The entry's name says UTF-8 (flag 0x800) but is not."""
    archive = zip_bytes({"customers.csv": BASE["customers.csv"]}).replace(b"customers.csv", b"custom\xffrs.csv")
    return with_header_field(archive, 6, 8, b"\x00\x08")


def understated_size_zip() -> bytes:
    """The headers declare 100 bytes for a larger file (to slip under the size limits)."""
    content = "customer_id,name\n" + "".join(f"C{n},Name {n}\n" for n in range(3000))
    return with_header_field(zip_bytes({"customers.csv": content}), 22, 24, (100).to_bytes(4, "little"))


def damaged_data_zip() -> bytes:
    archive = bytearray(zip_bytes({"customers.csv": BASE["customers.csv"] * 50}))
    data_start = archive.find(LOCAL_HEADER) + 30 + len("customers.csv")
    archive[data_start + 4 : data_start + 24] = bytes(b ^ 0xFF for b in archive[data_start + 4 : data_start + 24])
    return bytes(archive)


def declaring_many_entries_zip() -> bytes:
    """One entry, but an end record declaring 60,000: refused before the directory is read (a
    directory of millions of entries takes gigabytes to read)."""
    data = bytearray(zip_bytes({"customers.csv": BASE["customers.csv"]}))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # entries on this disk, entries in all
    return bytes(data)


def many_small_bombs_zip() -> bytes:
    """Entries of 1 MiB each (under the per-entry ratio check), 1,000:1 together."""
    return zip_bytes({f"{n}/activity.csv": "0" * MIB for n in range(3)})


BAD_ARCHIVES = [
    pytest.param(
        encrypted_zip,
        1,
        "path",
        "entry is encrypted: zip the files without a password",
        "customers.csv",
        id="encrypted",
    ),
    pytest.param(
        unknown_method_zip,
        1,
        "path",
        "entry is compressed with an unsupported method (99)",
        "customers.csv",
        id="unknown-method",
    ),
    pytest.param(
        name_not_utf8_zip,
        0,
        "archive",
        "not a readable .zip archive: 'utf-8' codec can't decode",
        "",
        id="name-not-utf8",
    ),
    pytest.param(
        understated_size_zip, 1, "path", "damaged archive entry: Bad CRC-32", "customers.csv", id="understated-size"
    ),
    pytest.param(damaged_data_zip, 1, "path", "damaged archive entry: ", "customers.csv", id="damaged-data"),
    pytest.param(
        declaring_many_entries_zip, 0, "archive", "more than 10000 files", "60000", id="declares-60000-entries"
    ),
    pytest.param(
        many_small_bombs_zip,
        0,
        "archive",
        "compressed more than 200:1 as a whole (a zip bomb?)",
        str(3 * MIB),
        id="many-small-bombs",
    ),
]


@pytest.mark.parametrize(("archive", "line", "column", "reason", "value"), BAD_ARCHIVES)
def test_bad_archive_gives_its_error_and_writes_nothing(partner, imported, archive, line, column, reason, value):
    path = imported / "bad.zip"
    path.write_bytes(archive())
    before = tenant_tables()
    run = run_import(partner, path)
    assert run.status == "failed"
    (error,) = run.errors
    assert (error["file"], error["line"], error["column"], error["value"]) == ("bad.zip", line, column, value)
    assert error["reason"].startswith(reason)
    assert tenant_tables() == before


# --- two inputs that one import reads as the same file --------------------------------------------

SAME = "are one file to this import (the same name in the same place, ignoring case): remove or rename one"
BAD_CUSTOMERS = "customer_id,name\nC1,\n"  # a bad row that must not slip through unread


def zip_entries(entries: list[tuple[str, str]]) -> bytes:
    """A .zip that may hold one name twice (zipfile warns, and writes it)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def folder_source(tmp_path: Path, files: dict[str, str]):
    return source_from_path(write(tmp_path / "same", files))


def zip_source(tmp_path: Path, entries: list[tuple[str, str]]):
    path = tmp_path / "same.zip"
    path.write_bytes(zip_entries(entries))
    return source_from_path(path)


def uploads_source(_tmp_path: Path, files: list[tuple[str, str | bytes]]):
    return source_from_uploads(
        [
            SimpleUploadedFile(name, content if isinstance(content, bytes) else content.encode())
            for name, content in files
        ]
    )


SAME_FILES = [
    pytest.param(
        uploads_source,
        [("activity.csv", "user_id,workload,date\nU1,teams,2024-03-01\n"), ("activity.csv", "user_id,workload,date\n")],
        f"activity.csv:0:path: upload 1 'activity.csv' and upload 2 'activity.csv' {SAME} (value 'activity.csv')",
        id="two-uploads-of-one-name",
    ),
    pytest.param(
        zip_source,
        [("customers.csv", BAD_CUSTOMERS), ("customers.csv", BASE["customers.csv"])],
        f"same.zip:2:path: entry 1 'customers.csv' of same.zip and entry 2 'customers.csv' of same.zip {SAME} "
        "(value 'customers.csv')",
        id="zip-holding-one-name-twice",
    ),
    pytest.param(
        folder_source,
        {"customers.csv": BASE["customers.csv"], "CUSTOMERS.CSV": BAD_CUSTOMERS},
        f"customers.csv:0:path: 'CUSTOMERS.CSV' and 'customers.csv' {SAME} (value 'customers.csv')",
        id="folder-names-differing-in-case",
    ),
    pytest.param(
        zip_source,
        [("export/customers.csv", BASE["customers.csv"]), ("export/Customers.CSV", BAD_CUSTOMERS)],
        f"same.zip:2:path: entry 1 'export/customers.csv' of same.zip and entry 2 'export/Customers.CSV' of "
        f"same.zip {SAME} (value 'export/Customers.CSV')",
        id="zip-names-differing-in-case",
    ),
    pytest.param(
        uploads_source,
        [("export.zip", zip_bytes({"export/customers.csv": BAD_CUSTOMERS})), ("customers.csv", BASE["customers.csv"])],
        f"customers.csv:0:path: entry 1 'export/customers.csv' of export.zip and upload 2 'customers.csv' {SAME} "
        "(value 'customers.csv')",
        id="zipped-file-beside-an-uploaded-one",
    ),
    pytest.param(
        zip_source,
        [("a/c-1/report.csv", "x"), ("a/C-1/Report.csv", "y"), ("a/customers.csv", BASE["customers.csv"])],
        f"same.zip:2:path: entry 1 'a/c-1/report.csv' of same.zip and entry 2 'a/C-1/Report.csv' of same.zip {SAME} "
        "(value 'a/C-1/Report.csv')",
        id="customer-folder-names-differing-in-case",
    ),
]


@pytest.mark.parametrize(("make", "files", "error"), SAME_FILES)
def test_two_inputs_read_as_one_file_are_refused_naming_both(partner, imported, make, files, error):
    before = tenant_tables()
    run = data_import(partner=partner, source=make(imported, files), origin=ImportRun.Origin.UPLOAD)
    assert run.status == "failed"
    assert [str_issue(e) for e in run.errors] == [error]
    assert tenant_tables() == before


FIXTURES = Path(__file__).parent / "fixtures" / "vendor" / "mixed"


def folder_zip(folder: Path) -> bytes:
    """A .zip of one folder, its entries under the folder's name."""
    return zip_bytes({f"{folder.name}/{f.name}": f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()})


def test_customer_folders_of_the_vendor_layout_hold_files_of_one_name(partner, tmp_path):
    """Each customer's folder has its `subscriptions.json`: zipped one customer a .zip and uploaded
    together, or in one folder, they are different files."""
    folders = sorted(path for path in FIXTURES.iterdir() if path.is_dir())
    assert len(folders) == 2
    loose = ("customers.json", "products.csv", "support_requests.csv")
    uploads = [SimpleUploadedFile(name, (FIXTURES / name).read_bytes()) for name in loose]
    uploads += [SimpleUploadedFile(f"{folder.name}.zip", folder_zip(folder)) for folder in folders]
    run = data_import(partner=partner, source=source_from_uploads(uploads), origin=ImportRun.Origin.UPLOAD)
    assert run.status == "succeeded", run.errors
    again = run_import(partner, FIXTURES)
    assert again.status == "succeeded", again.errors
    assert all(counts["created"] == 0 for counts in again.counts.values())


def test_unknown_files_are_ignored_with_a_warning(partner, tmp_path):
    run = run_import(partner, write(tmp_path / "x", {"customers.csv": BASE["customers.csv"], "notes.txt": "hello"}))
    assert run.status == "succeeded"
    assert run.warnings == ["Ignored notes.txt: not a file this import reads."]


def test_a_folder_without_import_files_is_an_error(partner, tmp_path):
    run = run_import(partner, write(tmp_path / "empty", {"readme.txt": "x"}))
    assert run.status == "failed"
    assert "no import files found" in run.errors[0]["reason"]


class TestCommand:
    def test_success_exits_0_and_reports_counts_on_stderr(self, partner, tmp_path):
        out, err = io.StringIO(), io.StringIO()
        call_command("import_data", str(write(tmp_path / "in", BASE)), partner="alpha", stdout=out, stderr=err)
        assert out.getvalue() == ""
        assert "customers.csv: 2 rows, 2 created, 0 updated, 0 unchanged" in err.getvalue()

    def test_bad_input_exits_1_with_every_error_line(self, partner, tmp_path):
        err = io.StringIO()
        folder = write(tmp_path / "bad", {"customers.csv": "customer_id,name\nC1,\nC2,\n"})
        with pytest.raises(CommandError, match="2 problem"):
            call_command("import_data", str(folder), partner="alpha", stderr=err)
        assert err.getvalue().splitlines() == [
            "customers.csv:2:name: required value is empty (value '')",
            "customers.csv:3:name: required value is empty (value '')",
        ]

    def test_unknown_partner_is_an_error(self, db, tmp_path):
        with pytest.raises(CommandError, match="No partner with slug 'nobody'"):
            call_command("import_data", str(tmp_path), partner="nobody")


class TestUploadPage:
    @pytest.fixture
    def importer(self, staff):
        return client_for(staff[Role.ADMIN_AGENT])

    def test_zip_upload_imports_and_shows_the_counts(self, importer):
        archive = SimpleUploadedFile("export.zip", zip_bytes(BASE), content_type="application/zip")
        answer, response = upload(importer, [archive])
        assert response.status_code == 200
        run = response.context["run"]
        assert answer["Location"] == f"/imports/{run.pk}/"
        assert (run.status, run.origin, run.started_by.role) == ("succeeded", "upload", "admin_agent")
        assert "Import succeeded." in response.content.decode()
        assert Customer.objects.count() == 2

    def test_the_upload_is_queued_and_its_page_shows_it_waiting(self, importer):
        archive = SimpleUploadedFile("export.zip", zip_bytes(BASE), content_type="application/zip")
        answer = importer.post("/imports/", {"files": [archive]})  # not committed: no worker has run it
        run = ImportRun.objects.get()
        assert answer["Location"] == f"/imports/{run.pk}/"
        assert (run.status, run.phase, run.source_name, len(run.sha256)) == ("queued", "queued", "export.zip", 64)
        assert Customer.objects.count() == 0
        html = importer.get(answer["Location"]).content.decode()
        assert "Waiting for a worker" in html
        assert 'data-poll="/api/imports/' in html
        assert "/static/js/import_run.js" in html

    def test_several_csv_files_upload_together(self, importer):
        uploads = [SimpleUploadedFile(name, BASE[name].encode()) for name in ("customers.csv", "users.csv")]
        _, response = upload(importer, uploads)
        assert response.context["run"].counts["users.csv"]["created"] == 2

    def test_errors_are_shown_in_a_table_and_nothing_is_written(self, importer):
        _, response = upload(importer, [SimpleUploadedFile("customers.csv", b"customer_id,name\nC1,\n")])
        html = response.content.decode()
        assert "Nothing was written" in html
        assert "required value is empty" in html
        assert Customer.objects.count() == 0

    def test_upload_over_the_size_limit_is_refused_with_a_clear_message(self, importer, settings):
        settings.IMPORT_MAX_UPLOAD_BYTES = 100
        upload = SimpleUploadedFile("customers.csv", b"customer_id,name\n" + b"C1,x\n" * 100)
        response = importer.post("/imports/", {"files": [upload]})
        assert response.status_code == 200
        assert "is larger than the limit of 100\xa0bytes; nothing was imported" in response.content.decode()
        assert ImportRun.objects.count() == 0

    def test_history_lists_past_imports_with_who_and_outcome(self, importer, staff):
        upload(importer, [SimpleUploadedFile("customers.csv", BASE["customers.csv"].encode())])
        response = importer.get("/imports/")
        (run,) = response.context["history"]
        html = response.content.decode()
        assert staff[Role.ADMIN_AGENT].email in html
        assert run.totals == {"created": 2, "updated": 0, "unchanged": 0}


def test_uploaded_sources_read_the_same_as_a_folder(partner, tmp_path):
    uploads = [SimpleUploadedFile(name, content.encode()) for name, content in BASE.items()]
    run = data_import(partner=partner, source=source_from_uploads(uploads), origin=ImportRun.Origin.UPLOAD)
    assert run.status == "succeeded"
    assert len(run.sha256) == 64


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="COPY path")
def test_postgresql_loads_through_copy(partner, imported):
    assert connection.vendor == "postgresql"
    assert Activity.objects.count() == 2


def test_a_rows_cell_errors_and_reference_errors_are_reported_together(partner, imported):
    files = {
        "subscriptions.csv": "subscription_id,customer_id,sku,quantity,status,is_trial,source\n"
        "S9,C404,SPB,-1,active,false,own\n"
    }
    run = run_import(partner, write(imported / "both", files))
    assert [str_issue(e) for e in run.errors] == [
        "subscriptions.csv:2:quantity: negative quantity (value '-1')",
        "subscriptions.csv:2:customer_id: unknown customer: not in this import nor already stored (value 'C404')",
    ]

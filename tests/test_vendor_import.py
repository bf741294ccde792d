"""Vendor exports (vendor-formats.md) through the shared import service: each format on its
fixture with the exact rows it gives, every quirk, mixed with canonical files, zipped through the
command and the upload page, re-imports, a later report, the metric engine on report data, a bad
file of each kind writing nothing, and tenancy."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from accounts.roles import Role
from customers.models import Activity, Customer, EndUser, LicenseAssignment, Product, Subscription, SupportRequest
from imports.models import ImportRun
from imports.pipeline.issues import ImportIssue
from imports.pipeline.vendor_report import split_products
from metrics.models import WorkloadSnapshot
from metrics.services import metrics_recompute
from tests.conftest import client_for, upload
from tests.test_import import run_import

FIXTURES = Path(__file__).parent / "fixtures" / "vendor"
A = "3b9f4c2e-8d1a-4e7b-9c55-1a2b3c4d5e6f"  # Contoso: full report
B = "a1c5e7f9-2b4d-4f6a-8c0e-9d8b7a6f5e4d"  # Fabrikam: concealed names, no Yammer / Teams columns
REPORT_A = f"{A}/ActiveUserDetail_2024-10-20.csv"
REFRESH = dt.date(2024, 10, 20)
D = dt.date


def copy_of(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def issues(run: ImportRun) -> list[str]:
    return [str(ImportIssue(**error)) for error in run.errors]


def tables(partner=None) -> dict[str, list[tuple]]:
    """Every imported row (of one partner, or all), to compare whole tables."""
    scope = {} if partner is None else {"partner": partner}
    return {
        "customers": sorted(Customer.objects.filter(**scope).values_list("external_id", "name", "domain")),
        "subscriptions": sorted(
            Subscription.objects.filter(**scope).values_list(
                "customer__external_id",
                "external_id",
                "product__sku",
                "quantity",
                "status",
                "is_trial",
                "source",
                "start_date",
                "end_date",
                "auto_renew",
                "billing_cycle",
            )
        ),
        "users": sorted(
            EndUser.objects.filter(**scope).values_list("customer__external_id", "external_id", "upn", "display_name")
        ),
        "assignments": sorted(
            LicenseAssignment.objects.filter(**scope).values_list(
                "user__external_id", "subscription__external_id", "assigned_on", "removed_on", "state"
            )
        ),
        "activity": sorted(
            Activity.objects.filter(**scope).values_list("user__external_id", "workload", "activity_date")
        ),
        "products": sorted(
            (p.sku, p.name, p.family, p.workload_list)
            for p in Product.objects.filter(partner__isnull=False, **scope).prefetch_related("workloads")
        ),
        "support": sorted(SupportRequest.objects.filter(**scope).values_list("external_id", "customer__external_id")),
    }


HASH_1, HASH_2, HASH_3 = (
    "77E5979DD60BA6EAA53E814DBEEEFA5F",
    "0B1C2D3E4F5A6B7C8D9E0F1A2B3C4D5E",
    "c3d4e5f60718293a4b5c6d7e8f901a2b",
)


def own(customer, id, sku, quantity, status, trial, dates, auto_renew, cycle) -> tuple:
    return (customer, id, sku, quantity, status, trial, "own", *dates, auto_renew, cycle)


def other(customer, sku, suffix, quantity, status) -> tuple:
    return (customer, f"{customer}:{sku}:{suffix}", sku, quantity, status, False, "other_partner", None, None, None, "")


MIXED = {
    "customers": [(A, "Contoso Ltd", "contoso.onmicrosoft.com"), (B, "Fabrikam Inc", "fabrikam.onmicrosoft.com")],
    "subscriptions": sorted(
        [
            # own, from subscriptions.json: SKU by the tenant's subscriptionIds, else by offer name
            own(
                A, "sub-e3-a", "ENTERPRISEPACK", 10, "active", False, (D(2024, 1, 15), D(2025, 1, 14)), True, "monthly"
            ),
            own(A, "sub-e3-b", "ENTERPRISEPACK", 5, "active", False, (D(2024, 6, 1), D(2025, 5, 31)), False, "annual"),
            own(A, "sub-spb-trial", "SPB", 5, "active", True, (D(2024, 9, 1), D(2024, 10, 1)), False, "none"),
            own(A, "sub-spb-susp", "SPB", 2, "suspended", False, (D(2023, 5, 1), D(2026, 4, 30)), True, "triennial"),
            own(
                A,
                "sub-pending",
                "EXCHANGESTANDARD",
                3,
                "preprovisioned",
                False,
                (D(2024, 10, 19), D(2025, 10, 18)),
                True,
                "monthly",
            ),
            own(
                A,
                "sub-deleted",
                "STANDARDPACK",
                1,
                "cancelled",
                False,
                (D(2023, 1, 1), D(2024, 1, 1)),
                False,
                "onetime",
            ),
            own(B, "sub-b-e1", "STANDARDPACK", 3, "active", False, (D(2024, 3, 1), None), None, "annual"),
            own(B, "sub-b-old", "STANDARDPACK", 2, "expired", False, (D(2022, 3, 1), D(2023, 2, 28)), False, "annual"),
            # other sellers, from subscribedSkus.json net of the own ones in the same status:
            # E3 25 enabled − 15 own active; SPB 5 − 5 (a trial) and 2 suspended − 2: nothing;
            # E1 3 in warning, 1 locked out − 1 own cancelled; Exchange 2 enabled, 4 locked out
            other(A, "ENTERPRISEPACK", "other", 10, "active"),
            other(A, "STANDARDPACK", "grace", 3, "grace"),
            other(A, "EXCHANGESTANDARD", "other", 2, "active"),
            other(A, "EXCHANGESTANDARD", "cancelled", 4, "cancelled"),
            other(A, "EMSPREMIUM", "other", 10, "active"),
            other(A, "FLOW_FREE", "other", 10000, "active"),
        ]
    ),
    "users": [
        (A, "ann@contoso.example", "ann@contoso.example", "Ann Lee"),
        (A, "bob@contoso.example", "bob@contoso.example", "Bob Ray"),
        (A, "carol@contoso.example", "carol@contoso.example", "Carol Diaz"),
        (A, "dave@contoso.example", "dave@contoso.example", "Dave Kim"),
        (A, "erin@contoso.example", "erin@contoso.example", "Erin Wu"),
        (A, "guest_x@contoso.example", "guest_x@contoso.example", "Guest X"),
        (B, HASH_2, HASH_2, "9F8E7D6C5B4A39281706F5E4D3C2B1A0"),
        (B, HASH_1, HASH_1, "4291DA7C39EE3263E97336B42734A667"),
        (B, HASH_3, HASH_3, "1A2B3C4D5E6F708192A3B4C5D6E7F809"),
    ],
    "assignments": sorted(
        [
            # earliest assign date of the row, Skype's (2024-01-20) ignored; the smallest own E3 id
            ("ann@contoso.example", "sub-e3-a", D(2024, 1, 25), None, "active"),
            # "POWER BI (FREE)+OFFICE 365 E3+ENTERPRISE MOBILITY + SECURITY E5": EMS only from others
            ("bob@contoso.example", "sub-e3-a", D(2023, 11, 5), None, "active"),
            ("bob@contoso.example", f"{A}:EMSPREMIUM:other", D(2023, 11, 5), None, "active"),
            # a deleted user's license ends at Deleted Date
            ("carol@contoso.example", "sub-e3-a", D(2024, 3, 1), D(2024, 10, 10), "active"),
            # the own Exchange subscription is pre-provisioned: the other sellers'; no assign date
            ("dave@contoso.example", f"{A}:EXCHANGESTANDARD:other", REFRESH, None, "active"),
            # erin's Business Premium: only a trial and a suspended one, no other seller: skipped
            (HASH_1, "sub-b-e1", D(2024, 3, 5), None, "active"),
            (HASH_2, "sub-b-e1", D(2024, 3, 5), None, "active"),
            (HASH_3, "sub-b-e1", D(2024, 3, 5), None, "active"),
        ]
    ),
    "activity": sorted(
        [
            # one per workload at its last activity date; empty dates and Skype give none
            ("ann@contoso.example", "exchange", D(2024, 10, 18)),
            ("ann@contoso.example", "onedrive", D(2024, 9, 1)),
            ("ann@contoso.example", "yammer", D(2024, 10, 1)),
            ("ann@contoso.example", "teams", D(2024, 10, 20)),
            ("bob@contoso.example", "exchange", D(2024, 9, 23)),
            ("bob@contoso.example", "teams", D(2024, 9, 22)),
            ("carol@contoso.example", "exchange", D(2024, 10, 5)),
            ("dave@contoso.example", "exchange", D(2024, 10, 20)),
            ("erin@contoso.example", "yammer", D(2024, 10, 15)),
            ("guest_x@contoso.example", "teams", D(2024, 10, 11)),
            (HASH_1, "exchange", D(2024, 10, 19)),
            (HASH_2, "exchange", D(2024, 8, 1)),
            (HASH_3, "onedrive", D(2024, 10, 2)),
        ]
    ),
    "products": [
        ("EMSPREMIUM", "Enterprise Mobility + Security E5", "other", []),  # products.csv
        ("FLOW_FREE", "FLOW_FREE", "other", []),  # an unknown skuPartNumber
    ],
    "support": [("R1", A)],
}
MIXED_WARNINGS = [
    f"{B}/ActiveUserDetail.csv: 3 of 3 user names are concealed (32-hex hashes), so per-user lists are "
    "pseudonymous; a tenant admin can turn concealment off in the reports' settings.",
    f"{A}/subscribedSkus.json: SKU 'FLOW_FREE' is not a known product; it was added to your products with "
    "family other and no workloads.",
    f"{A}/subscriptions.json: item 6, subscription 'sub-azure' (offer 'Azure plan') matches no SKU by the "
    "tenant's SKU list or its offer name; it was skipped.",
    f"{REPORT_A}: assigned product 'POWER BI (FREE)' is no known SKU's name; its assignments were skipped.",
    f"SKU 'SPB': 1 assignment(s) skipped because customer '{A}' has no subscription of it.",
]
MIXED_COUNTS = {
    "customers.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
    "products.csv": {"rows": 2, "created": 2, "updated": 0, "unchanged": 0},
    "subscriptions.csv": {"rows": 14, "created": 14, "updated": 0, "unchanged": 0},
    "users.csv": {"rows": 9, "created": 9, "updated": 0, "unchanged": 0},
    "assignments.csv": {"rows": 8, "created": 8, "updated": 0, "unchanged": 0},
    "activity.csv": {"rows": 13, "created": 13, "updated": 0, "unchanged": 0},
    "support_requests.csv": {"rows": 1, "created": 1, "updated": 0, "unchanged": 0},
}


@pytest.fixture
def mixed(partner) -> ImportRun:
    run = run_import(partner, FIXTURES / "mixed")
    assert run.status == "succeeded", run.errors
    return run


def test_mixed_folder_gives_exactly_these_rows_counts_and_warnings(partner, mixed):
    assert tables(partner) == MIXED
    assert mixed.counts == MIXED_COUNTS
    assert mixed.warnings == MIXED_WARNINGS


def test_report_without_a_known_name_keeps_a_name_containing_plus_whole(partner, tmp_path):
    folder = copy_of("mixed", tmp_path)
    (folder / "products.csv").unlink()
    run = run_import(partner, folder)
    assert run.status == "succeeded", run.errors
    assert (
        f"{REPORT_A}: assigned product 'ENTERPRISE MOBILITY + SECURITY E5' is no known SKU's name; its assignments "
        "were skipped." in run.warnings
    )
    assert [a for a in tables(partner)["assignments"] if a[0] == "bob@contoso.example"] == [
        ("bob@contoso.example", "sub-e3-a", D(2023, 11, 5), None, "active")
    ]
    # EMSPREMIUM is then an unknown skuPartNumber: a product of family other, with a warning
    assert ("EMSPREMIUM", "EMSPREMIUM", "other", []) in tables(partner)["products"]


@pytest.mark.parametrize(
    ("value", "known", "names"),
    [
        ("OFFICE 365 E3", {}, ["OFFICE 365 E3"]),
        (
            "POWER BI (FREE)+OFFICE 365 E5 WITHOUT AUDIO CONFERENCING+ENTERPRISE MOBILITY + SECURITY E5",
            {},
            ["POWER BI (FREE)", "OFFICE 365 E5 WITHOUT AUDIO CONFERENCING", "ENTERPRISE MOBILITY + SECURITY E5"],
        ),
        # a known name wins, even written without spaces around its own "+"
        ("A+B+C", {"A+B": "AB"}, ["A+B", "C"]),
        ("X + Y+Z", {"X": "X"}, ["X", "Y", "Z"]),
        ("", {}, []),
    ],
)
def test_assigned_products_split_on_plus_keeping_known_and_spaced_names(value, known, names):
    assert split_products(value, known) == names


def test_same_vendor_files_again_change_nothing(partner, mixed):
    before = tables()
    again = run_import(partner, FIXTURES / "mixed")
    assert again.status == "succeeded", again.errors
    assert tables() == before
    assert all(c["created"] == c["updated"] == 0 for c in again.counts.values())
    assert any("Same content as import" in w for w in again.warnings)


def test_later_report_that_drops_a_product_ends_that_assignment(partner, mixed):
    run = run_import(partner, FIXTURES / "later")
    assert run.status == "succeeded", run.errors
    assert run.counts["assignments.csv"] == {"rows": 4, "created": 0, "updated": 1, "unchanged": 3}
    expected = [
        ("ann@contoso.example", "sub-e3-a", D(2024, 1, 25), D(2024, 10, 27), "active") if a[0].startswith("ann") else a
        for a in MIXED["assignments"]
    ]
    assert tables(partner)["assignments"] == expected
    assert run_import(partner, FIXTURES / "later").counts["assignments.csv"]["updated"] == 0


def test_report_without_assign_dates_keeps_the_stored_assignment(partner, mixed, tmp_path):
    """Dave's product has no assign date, so each report would date it at its refresh date."""
    run = run_import(partner, FIXTURES / "later")
    assert run.status == "succeeded", run.errors
    dave = [a for a in tables(partner)["assignments"] if a[0].startswith("dave")]
    assert dave == [("dave@contoso.example", f"{A}:EXCHANGESTANDARD:other", REFRESH, None, "active")]


def test_workload_grain_counts_report_users_active_at_the_refresh_date(partner, mixed):
    """R−27 … R: Bob's Exchange on 09-23 counts, his Teams on 09-22 does not; carol, deleted on
    10-10, is active but no longer entitled; every Yammer user counts, licensed or not (erin)."""
    metrics_recompute(partner=partner, as_of=REFRESH, trigger="nightly")
    rows = WorkloadSnapshot.objects.filter(partner=partner, as_of=REFRESH).values_list(
        "customer__external_id", "workload", "entitled_users", "active_users"
    )
    assert sorted(rows) == sorted(
        [
            (A, "exchange", 3, 4),  # ann, bob, dave entitled; + carol active
            (A, "onedrive", 2, 0),  # ann's 09-01 is outside the window
            (A, "sharepoint", 2, 0),
            (A, "office_apps", 2, 0),
            (A, "teams", 2, 1),  # ann; guest_x has no license
            (A, "yammer", 2, 2),  # ann and erin
            (B, "exchange", 3, 1),
            (B, "onedrive", 3, 1),
            (B, "sharepoint", 3, 0),
            (B, "teams", 3, 0),
            (B, "yammer", 3, 0),
        ]
    )


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, prefix + file.relative_to(folder).as_posix())
    return zip_path


def test_zip_through_import_data_gives_the_same_rows(partner, tmp_path):
    path = zip_folder(FIXTURES / "mixed", tmp_path / "vendor.zip", prefix="export/")
    err = io.StringIO()
    call_command("import_data", str(path), partner=partner.slug, stderr=err)
    assert tables(partner) == MIXED
    lines = err.getvalue().splitlines()
    assert "subscriptions.csv: 14 rows, 14 created, 0 updated, 0 unchanged" in lines
    assert [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")] == MIXED_WARNINGS


def test_upload_page_reads_vendor_files_in_a_zip(staff, tmp_path):
    zipped = zip_folder(FIXTURES / "mixed", tmp_path / "vendor.zip").read_bytes()
    client = client_for(staff[Role.ADMIN_AGENT])
    _, response = upload(client, [SimpleUploadedFile("vendor.zip", zipped)])
    run = response.context["run"]
    assert (run.status, run.counts) == ("succeeded", MIXED_COUNTS)
    assert "per-user lists are" in response.content.decode()


def test_a_zip_of_one_customer_folder_reads_the_folder_as_the_customer(partner, mixed, tmp_path):
    folder = copy_of("mixed", tmp_path)
    document = json.loads((folder / B / "subscriptions.json").read_text())
    document["items"][0]["quantity"] = 4
    (folder / B / "subscriptions.json").write_text(json.dumps(document))
    run = run_import(partner, zip_folder(folder / B, tmp_path / "fabrikam.zip", prefix=f"{B}/"))
    assert run.status == "succeeded", run.errors
    assert Subscription.objects.get(partner=partner, external_id="sub-b-e1").quantity == 4


def test_counts_report_is_ignored_with_a_clear_warning(partner, tmp_path):
    folder = copy_of("counts", tmp_path)
    shutil.copy(FIXTURES / "mixed" / "customers.json", folder)
    run = run_import(partner, folder)
    assert run.status == "succeeded", run.errors
    assert run.warnings == [
        "Ignored ActiveUserCounts.csv: the service-level active-user counts report has no per-user rows; import "
        "the per-user active-user detail report instead."
    ]


def test_canonical_subscriptions_leave_the_portal_fields_alone(partner, mixed, tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "subscriptions.csv").write_text(
        "subscription_id,customer_id,sku,quantity,status,is_trial,source\nsub-e3-a,"
        f"{A},ENTERPRISEPACK,12,active,false,own\n"
    )
    assert run_import(partner, tmp_path / "csv").status == "succeeded"
    sub = Subscription.objects.get(partner=partner, external_id="sub-e3-a")
    assert (sub.quantity, sub.auto_renew, sub.billing_cycle) == (12, True, "monthly")


def test_tenant_totals_net_only_against_the_importing_partners_subscriptions(partner, other_partner, tmp_path):
    assert run_import(other_partner, FIXTURES / "mixed").status == "succeeded"
    folder = tmp_path / "totals"
    (folder / A).mkdir(parents=True)
    shutil.copy(FIXTURES / "mixed" / "customers.json", folder)
    shutil.copy(FIXTURES / "mixed" / A / "subscribedSkus.json", folder / A)
    assert run_import(partner, folder).status == "succeeded"
    mine = Subscription.objects.get(partner=partner, external_id=f"{A}:ENTERPRISEPACK:other")
    theirs = Subscription.objects.get(partner=other_partner, external_id=f"{A}:ENTERPRISEPACK:other")
    assert (mine.quantity, theirs.quantity) == (25, 10)


def test_same_tenant_ids_under_two_partners_stay_separate(partner, other_partner):
    assert run_import(partner, FIXTURES / "mixed").status == "succeeded"
    assert run_import(other_partner, FIXTURES / "mixed").status == "succeeded"
    assert tables(partner) == tables(other_partner) == MIXED
    assert Customer.objects.filter(external_id=A).count() == 2
    assert not LicenseAssignment.objects.filter(partner=partner).exclude(subscription__partner=partner).exists()


# --- a bad file of each kind: its clear error, and nothing written ----------------------------


def edit_json(change: Callable[[dict], object]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        document = json.loads(text)
        change(document)
        return json.dumps(document, indent=2)

    return edit


def set_item(key: str, index: int, field: str, value: object) -> Callable[[str], str]:
    def change(document: dict) -> None:
        target = document[key][index]
        *parents, last = field.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value

    return edit_json(change)


def json_field_case(path: str, key: str, index: int, field: str, value: object, reason: str, id: str):
    """A JSON file whose item `key[index]` has a bad `field`: the error names the item and its path."""
    shown = value if isinstance(value, str) else json.dumps(value)
    error = f"{path}:{index + 1}:{key}[{index}].{field}: {reason} (value '{shown}')"
    return pytest.param(path, set_item(key, index, field, value), error, id=id)


def subscription_case(index: int, field: str, value: object, reason: str, id: str):
    return json_field_case(f"{A}/subscriptions.json", "items", index, field, value, reason, id)


def fabrikam_skus(_text: str) -> str:
    return (FIXTURES / "mixed" / B / "subscribedSkus.json").read_text()


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


HEADER_A = (FIXTURES / "mixed" / REPORT_A).read_text(encoding="utf-8-sig").splitlines()[0]

BAD_FILES = [
    pytest.param(
        f"{A}/subscriptions.json",
        lambda text: '{"totalCount": 1, "items": [\n  {"id": "sub-x",}\n]}',
        f"{A}/subscriptions.json:2:18: not valid JSON: Expecting property name enclosed in double quotes "
        """(value '{"id": "sub-x",}')""",
        id="invalid-json",
    ),
    pytest.param(
        "customers.json",
        lambda text: '{"customers": []}',
        'customers.json:0:-: not a vendor export this import reads: expected {"value": [...]} (tenant subscribed '
        'SKUs) or {"totalCount": N, "items": [...]} (partner portal customers or subscriptions) (value \'\')',
        id="wrong-shape",
    ),
    subscription_case(0, "effectiveStartDate", "15/01/2024", "not an ISO 8601 date-time", "unparseable-date"),
    subscription_case(1, "quantity", -5, "negative quantity", "negative-quantity"),
    subscription_case(
        2,
        "status",
        "Paused",
        "unknown value, expected one of active, pending, none, suspended, disabled, expired, deleted",
        "unknown-status",
    ),
    subscription_case(
        0,
        "billingCycle",
        "weekly",
        "unknown value, expected one of monthly, annual, triennial, none, onetime",
        "unknown-billing-cycle",
    ),
    subscription_case(0, "isTrial", "no", "not a boolean, expected true or false", "trial-not-a-boolean"),
    json_field_case(
        f"{A}/subscribedSkus.json", "value", 0, "prepaidUnits.enabled", -1, "negative quantity", "negative-units"
    ),
    json_field_case(
        "customers.json",
        "items",
        1,
        "companyProfile.companyName",
        "",
        "required value is missing or empty",
        "customer-without-name",
    ),
    pytest.param(
        "0000aaaa-0000-4000-8000-000000000000/subscribedSkus.json",
        fabrikam_skus,
        "0000aaaa-0000-4000-8000-000000000000/subscribedSkus.json:0:folder: customer folder: unknown customer, not in "
        "this import nor already stored (value '0000aaaa-0000-4000-8000-000000000000')",
        id="unknown-customer-folder",
    ),
    pytest.param(
        "subscribedSkus.json",
        fabrikam_skus,
        "subscribedSkus.json:0:-: a customer's export must sit in a folder named by the customer's tenant id "
        "(value '')",
        id="customer-file-at-the-root",
    ),
    pytest.param(
        REPORT_A,
        replace(
            "2024-10-20,ann@contoso.example,Ann Lee,False,,True,True,True,True,True,True,2024-10-18",
            "2024-10-20,ann@contoso.example,Ann Lee,False,,True,True,True,True,True,True,10/18/2024",
        ),
        f"{REPORT_A}:2:Exchange Last Activity Date: not a date in YYYY-MM-DD form (value '10/18/2024')",
        id="report-unparseable-date",
    ),
    pytest.param(
        REPORT_A,
        replace("bob@contoso.example,Bob Ray,False", "bob@contoso.example,Bob Ray,Yes"),
        f"{REPORT_A}:3:Is Deleted: not a boolean, expected true or false (value 'Yes')",
        id="report-bad-boolean",
    ),
    pytest.param(
        REPORT_A,
        replace(",Assigned Products", ",Products"),
        f"{REPORT_A}:1:Assigned Products: required column missing from the header "
        f"(value '{HEADER_A.replace(',Assigned Products', ',Products')[:80]}…')",
        id="report-column-missing",
    ),
]


@pytest.mark.parametrize(("path", "edit", "error"), BAD_FILES)
def test_bad_vendor_file_gives_its_error_and_writes_nothing(partner, tmp_path, path, edit, error):
    canonical = tmp_path / "stored"
    canonical.mkdir()
    (canonical / "customers.csv").write_text("customer_id,name\nC1,Stored Ltd\n")
    assert run_import(partner, canonical).status == "succeeded"
    before = tables()
    folder = copy_of("mixed", tmp_path)
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    original = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(edit(original), encoding="utf-8")
    run = run_import(partner, folder)
    assert run.status == "failed"
    assert error in issues(run)
    assert tables() == before


def test_vendor_files_are_recognised_by_content_whatever_their_names(partner, tmp_path):
    folder = copy_of("mixed", tmp_path)
    (folder / "customers.json").rename(folder / "portal export.txt")
    (folder / A / "subscriptions.json").rename(folder / A / "subs")
    (folder / A / "subscribedSkus.json").rename(folder / A / "graph-skus.json")
    (folder / REPORT_A).rename(folder / A / "report (3).csv")
    run = run_import(partner, folder)
    assert run.status == "succeeded", run.errors
    assert tables(partner)["subscriptions"] == MIXED["subscriptions"]
    assert tables(partner)["assignments"] == MIXED["assignments"]


def test_one_page_of_a_longer_collection_imports_with_a_warning(partner, tmp_path):
    document = json.loads((FIXTURES / "mixed" / "customers.json").read_text())
    document["totalCount"] = 250
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "customers.json").write_text(json.dumps(document))
    run = run_import(partner, tmp_path / "in")
    assert run.status == "succeeded", run.errors
    assert run.warnings == ["customers.json: totalCount is 250 but the file holds 2 items; only those were imported."]


def test_a_customers_export_uploaded_alone_says_where_it_belongs(staff):
    client = client_for(staff[Role.ADMIN_AGENT])
    export = SimpleUploadedFile("subscriptions.json", (FIXTURES / "mixed" / B / "subscriptions.json").read_bytes())
    _, response = upload(client, [export])
    assert response.context["run"].errors == [
        {
            "file": "subscriptions.json",
            "line": 0,
            "column": "-",
            "reason": "a customer's export must sit in a folder named by the customer's tenant id",
            "value": "",
        }
    ]
    assert Subscription.objects.count() == 0

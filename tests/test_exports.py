"""Portfolio CSV exports (SPEC §7) and the inactive licensed users CSV (SPEC §8): exact files at
every grain, filters, formula neutralisation, one code path for the web and the command,
streaming with flat memory."""

from __future__ import annotations

import csv
import io
import tracemalloc

import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import Role
from customers.models import Product, ProductWorkload
from exports.cells import FORMULA_STARTS, CsvFile, neutralise
from exports.portfolio import portfolio_lines
from metrics.models import SkuSetting, SkuSnapshot
from tests import factories
from tests.conftest import client_for
from tests.test_metrics import D, World

DAY = D.isoformat()
BOM = "\ufeff"
SKU_HEADER = (
    "as_of,customer_id,customer_name,product_family,sku,sku_name,sold_licenses,own_sold_licenses,"
    "assigned_licenses,entitled_users,active_users,deployment_pct,usage_pct"
)
WORKLOAD_HEADER = "as_of,customer_id,customer_name,workload,entitled_users,active_users,usage_pct"
FAMILY_HEADER = (
    "as_of,customer_id,customer_name,product_family,sold_licenses,own_sold_licenses,assigned_licenses,"
    "entitled_users,active_users,deployment_pct,usage_pct"
)


@pytest.fixture
def portfolio(partner):
    """Three customers whose names sort differently by code point and by locale:
    - C1 "Alpha AG": 3 Dynamics 365 Sales seats, 2 assigned and active (usage 100.0), plus Power BI
      (family `other`: never exported);
    - C2 "Beta GmbH": E3 10 own + 5 from another partner, 4 entitled users of whom 3 active on
      Exchange, plus a trial whose 2 users are active: usage 5/4 = 125.0 (SPEC §2);
    - C0 "alpha lower": 2 E1 seats, nobody assigned (usage empty, deployment 0.0)."""
    world = World(partner)
    alpha = world.customer
    alpha.external_id, alpha.name = "C1", "Alpha AG"
    alpha.save()
    dynamics = world.sub("DYN365_ENTERPRISE_SALES", quantity=3)
    for _ in range(2):
        world.act(world.licensed(dynamics, active=False), workload="dynamics365")
    world.sub("POWER_BI_PRO", quantity=5)

    beta = factories.CustomerFactory(partner=partner, external_id="C2", name="Beta GmbH")
    e3 = world.sub(customer=beta, quantity=10)
    world.sub(customer=beta, quantity=5, source="other_partner")
    trial = world.sub(customer=beta, quantity=25, is_trial=True)
    for n in range(4):
        world.licensed(e3, active=n < 3)
    for _ in range(2):
        world.licensed(trial)

    lower = factories.CustomerFactory(partner=partner, external_id="C0", name="alpha lower")
    world.sub("STANDARDPACK", customer=lower, quantity=2)
    factories.CustomerFactory(partner=partner, external_id="C9", name="Empty Ltd")  # no data: no row
    world.compute()
    return {"C1": alpha, "C2": beta, "C0": lower}


EXPECTED = {
    "sku": [
        SKU_HEADER,
        f"{DAY},C1,Alpha AG,dynamics365,DYN365_ENTERPRISE_SALES,Dynamics 365 Sales Enterprise,3,3,2,2,2,66.7,100.0",
        f"{DAY},C2,Beta GmbH,office365,ENTERPRISEPACK,Office 365 E3,15,10,4,4,5,26.7,125.0",
        f"{DAY},C0,alpha lower,office365,STANDARDPACK,Office 365 E1,2,2,0,0,0,0.0,",
    ],
    "workload": [
        WORKLOAD_HEADER,
        f"{DAY},C1,Alpha AG,dynamics365,2,2,100.0",
        f"{DAY},C2,Beta GmbH,exchange,4,5,125.0",
        *(f"{DAY},C2,Beta GmbH,{w},4,0,0.0" for w in ("office_apps", "onedrive", "sharepoint", "teams", "yammer")),
    ],
    "family": [
        FAMILY_HEADER,
        f"{DAY},C1,Alpha AG,dynamics365,3,3,2,2,2,66.7,100.0",
        f"{DAY},C2,Beta GmbH,office365,15,10,4,4,5,26.7,125.0",
        f"{DAY},C0,alpha lower,office365,2,2,0,0,0,0.0,",
    ],
}


def download(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, response.content if not response.streaming else ""
    return response, b"".join(response.streaming_content)


def lines_of(body: bytes) -> list[str]:
    text = body.decode("utf-8")
    assert text.startswith(BOM)
    assert text.endswith("\r\n")
    return text.removeprefix(BOM).split("\r\n")[:-1]


class TestPortfolioFile:
    @pytest.mark.parametrize("grain", ["sku", "workload", "family"])
    def test_exact_header_rows_and_order_at_each_grain(self, staff, portfolio, grain):
        response, body = download(client_for(staff[Role.SALES_AGENT]), f"/analytics/export.csv?grain={grain}")
        assert lines_of(body) == EXPECTED[grain]
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == f'attachment; filename="partner-insights_alpha_{grain}_{DAY}.csv"'

    def test_grain_defaults_to_sku_and_date_to_the_latest_snapshot(self, admin_client, portfolio):
        _, body = download(admin_client, "/analytics/export.csv")
        assert lines_of(body) == EXPECTED["sku"]

    def test_two_exports_of_unchanged_data_are_byte_identical_from_web_and_command(
        self, admin_client, partner, portfolio, tmp_path
    ):
        _, first = download(admin_client, f"/analytics/export.csv?as_of={DAY}")
        _, second = download(admin_client, f"/analytics/export.csv?as_of={DAY}")
        call_command("export_portfolio", "--partner", "alpha", "--output", str(tmp_path / "p.csv"))
        stdout = io.StringIO()
        call_command("export_portfolio", "--partner", "alpha", "--as-of", DAY, stdout=stdout)
        assert first == second == (tmp_path / "p.csv").read_bytes() == stdout.getvalue().encode()

    @pytest.mark.parametrize("grain", ["workload", "family"])
    def test_command_grains(self, partner, portfolio, grain, capsys):
        stdout = io.StringIO()
        call_command("export_portfolio", "--partner", "alpha", "--grain", grain, stdout=stdout)
        assert lines_of(stdout.getvalue().encode()) == EXPECTED[grain]
        assert f"{len(EXPECTED[grain]) - 1} {grain} rows of {DAY}" in capsys.readouterr().err

    def test_pandas_reads_names_and_types(self, admin_client, portfolio):
        _, body = download(admin_client, "/analytics/export.csv?grain=sku")
        frame = pd.read_csv(io.BytesIO(body), dtype={"customer_id": str})
        assert list(frame.columns) == SKU_HEADER.split(",")
        assert frame["customer_name"].tolist() == ["Alpha AG", "Beta GmbH", "alpha lower"]
        assert frame["sold_licenses"].dtype.kind == "i"
        assert frame["usage_pct"].tolist()[:2] == [100.0, 125.0]
        assert pd.isna(frame["usage_pct"].iloc[2])

    def test_non_latin_names_survive(self, admin_client, partner, portfolio):
        portfolio["C2"].name = "Ünïcødé 株式会社"
        portfolio["C2"].save()
        _, body = download(admin_client, "/analytics/export.csv?grain=family")
        assert "Ünïcødé 株式会社" in body.decode("utf-8")


class TestFilters:
    @pytest.mark.parametrize(
        ("query", "customers"),
        [
            ("family=dynamics365", ["C1"]),
            ("family=office365", ["C2", "C0"]),
            ("sku=STANDARDPACK", ["C0"]),
            ("usage_min=100", ["C1", "C2"]),
            ("usage_min=101", ["C2"]),
            ("usage_max=100", []),  # 100.0 is not below 100; C0 has no usage
            ("deployment_min=50", ["C1"]),
            ("deployment_min=0&deployment_max=30", ["C2", "C0"]),
            ("kind=low_adoption", ["C2"]),  # 11 of 15 unused
            ("kind=growth", []),
        ],
    )
    def test_filters_keep_the_customers_the_page_shows(self, admin_client, portfolio, query, customers):
        _, body = download(admin_client, f"/analytics/export.csv?grain=family&{query}")
        assert [line.split(",")[1] for line in lines_of(body)[1:]] == customers
        page = admin_client.get(f"/analytics/?{query}")  # the page sorts names as people read them
        assert sorted(row.customer.external_id for row in page.context["page"].object_list) == sorted(customers)

    def test_sku_filter_keeps_only_that_skus_rows_at_the_sku_grain(self, admin_client, portfolio):
        world = World(portfolio["C2"].partner)
        world.sub("STANDARDPACK", customer=portfolio["C2"], quantity=1)
        world.compute()
        _, body = download(admin_client, "/analytics/export.csv?grain=sku&sku=STANDARDPACK")
        assert [line.split(",")[1:5:3] for line in lines_of(body)[1:]] == [
            ["C2", "STANDARDPACK"],
            ["C0", "STANDARDPACK"],
        ]

    def test_family_filter_keeps_that_familys_workloads(self, admin_client, portfolio):
        _, body = download(admin_client, "/analytics/export.csv?grain=workload&family=dynamics365")
        assert lines_of(body) == [WORKLOAD_HEADER, f"{DAY},C1,Alpha AG,dynamics365,2,2,100.0"]

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("grain=user", "Unknown grain 'user': use one of sku, workload, family."),
            ("as_of=30-06-2024", "as_of: '30-06-2024' is not a date in YYYY-MM-DD form."),
            ("usage_min=abc", "usage_min: Enter a whole number."),
            ("usage_min=50&usage_max=20", "usage_max: Must be above 50."),
            ("kind=cheap", "kind: Select a valid choice. cheap is not one of the available choices."),
        ],
    )
    def test_bad_parameters_are_named(self, admin_client, portfolio, query, message):
        response = admin_client.get(f"/analytics/export.csv?{query}")
        assert response.status_code == 400
        assert message in response.content.decode()

    def test_a_date_without_snapshot_names_the_latest_one(self, admin_client, portfolio):
        response = admin_client.get("/analytics/export.csv?as_of=2024-06-01")
        assert response.status_code == 404
        assert response.content.decode() == f"No snapshot for 2024-06-01; the latest date with one is {DAY}."
        with pytest.raises(CommandError, match=f"No snapshot for 2024-06-01; the latest date with one is {DAY}"):
            call_command("export_portfolio", "--partner", "alpha", "--as-of", "2024-06-01", stdout=io.StringIO())

    def test_no_snapshot_at_all_is_an_error(self, partner):
        with pytest.raises(CommandError, match="has no metric snapshot yet"):
            call_command("export_portfolio", "--partner", "alpha", stdout=io.StringIO())

    def test_unknown_partner_is_an_error(self, db):
        with pytest.raises(CommandError, match="No partner with slug 'nobody'"):
            call_command("export_portfolio", "--partner", "nobody", stdout=io.StringIO())


class TestFormulaNeutralisation:
    @pytest.mark.parametrize("start", FORMULA_STARTS)
    def test_every_text_column_is_neutralised_and_numbers_kept(self, admin_client, partner, start):
        if start == "\0" and connection.vendor == "postgresql":
            pytest.skip("PostgreSQL text cannot hold NUL; test_csv_file_neutralises_each_start covers it")
        product = Product.objects.create(
            partner=partner, sku=f"{start}SKU", name=f"{start}cmd|' /C calc'!A0", family="office365"
        )
        ProductWorkload.objects.create(product=product, workload="exchange")
        world = World(partner)
        world.customer.external_id, world.customer.name = f"{start}C1", f'{start}HYPERLINK("http://x")'
        world.customer.save()
        subscription = factories.SubscriptionFactory(customer=world.customer, product=product, quantity=4)
        world.licensed(subscription, active=False)
        world.compute()
        _, body = download(admin_client, "/analytics/export.csv?grain=sku")
        _, row = list(csv.reader(io.StringIO(body.decode("utf-8").removeprefix(BOM))))
        assert row == [
            DAY,
            f"'{start}C1",
            f'\'{start}HYPERLINK("http://x")',
            "office365",
            f"'{start}SKU",
            f"'{start}cmd|' /C calc'!A0",
            "4",
            "4",
            "1",
            "1",
            "0",
            "25.0",
            "0.0",
        ]

    def test_csv_file_neutralises_each_start_and_leaves_numbers(self):
        rows = [(f"{start}x", f"a{start}", -1, "-2") for start in FORMULA_STARTS]
        body = b"".join(CsvFile(["t", "u", "n", "m"], rows, text_columns=[0, 1]))
        parsed = list(csv.reader(io.StringIO(body.decode().removeprefix(BOM), newline="")))
        assert parsed[1:] == [[f"'{start}x", f"a{start}", "-1", "-2"] for start in FORMULA_STARTS]

    def test_safe_text_is_left_alone(self):
        assert [neutralise(text) for text in ("Contoso", "a=b", " =x", "'quoted", "")] == [
            "Contoso",
            "a=b",
            " =x",
            "'quoted",
            "",
        ]


class TestCustomerExport:
    def test_one_customers_rows(self, admin_client, partner, portfolio):
        response, body = download(admin_client, f"/customers/{portfolio['C2'].pk}/export.csv?grain=family")
        assert lines_of(body) == [FAMILY_HEADER, EXPECTED["family"][2]]
        assert f"customer-{portfolio['C2'].pk}_family_{DAY}.csv" in response["Content-Disposition"]


class TestInactiveUsersExport:
    def test_the_list_with_licenses_last_activity_and_cost(self, staff, partner, portfolio):
        SkuSetting.objects.create(partner=partner, sku="ENTERPRISEPACK", monthly_price="20.50")
        _, body = download(client_for(staff[Role.SALES_AGENT]), f"/analytics/inactive.csv?days=30&as_of={DAY}")
        rows = [line.split(",") for line in lines_of(body)]
        assert rows[0] == [
            "as_of",
            "customer_id",
            "customer_name",
            "upn",
            "display_name",
            "licenses",
            "last_activity_date",
            "monthly_cost",
        ]
        # Beta's fourth E3 user never did anything; the E1 of C0 has nobody assigned.
        assert [(r[1], r[5], r[6], r[7]) for r in rows[1:]] == [("C2", "ENTERPRISEPACK", "", "20.50")]

    def test_one_customer_and_a_bad_day_count(self, admin_client, portfolio):
        _, body = download(admin_client, f"/customers/{portfolio['C1'].pk}/inactive.csv?days=30")
        assert len(lines_of(body)) == 1  # both Dynamics users were active
        response = admin_client.get(f"/customers/{portfolio['C1'].pk}/inactive.csv?days=45")
        assert response.status_code == 400
        assert response.content.decode() == "days: '45' is not one of 30, 60, 90, 180."


class TestStreaming:
    @staticmethod
    def grow(partner, customers: int) -> None:
        """Adds `customers` customers with a row for each Office 365 SKU of the catalog."""
        products = list(Product.objects.filter(partner=None, family="office365"))
        SkuSnapshot.objects.bulk_create(
            (
                SkuSnapshot(partner=partner, customer=c, product=p, as_of=D, sold_licenses=100, assigned_licenses=7)
                for c in factories.CustomerFactory.create_batch(customers, partner=partner)
                for p in products
            ),
            batch_size=5000,
        )

    @staticmethod
    def peak_while_streaming(partner) -> tuple[int, int]:
        """(bytes written, peak traced memory while writing them)."""
        lines = portfolio_lines(partner=partner, as_of=D, grain="sku")
        tracemalloc.start()
        try:
            size = sum(len(line) for line in lines)
            return size, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    @pytest.fixture
    def published(self, partner):
        world = World(partner)
        world.licensed(world.sub())
        world.compute()

    def test_memory_stays_flat_as_the_portfolio_grows(self, partner, published):
        self.grow(partner, 2_000)
        small, small_peak = self.peak_while_streaming(partner)
        self.grow(partner, 6_000)
        large, large_peak = self.peak_while_streaming(partner)
        assert large > 4 * small > 3_000_000
        assert large_peak < 1.25 * small_peak  # 4× the rows, not 4× the memory
        assert large_peak < large / 2

    def test_the_first_bytes_leave_before_any_query(self, partner, published):
        lines = portfolio_lines(partner=partner, as_of=D, grain="sku")
        with CaptureQueriesContext(connection) as queries:
            header = next(lines)
        assert header.decode().removeprefix(BOM).strip() == SKU_HEADER
        assert len(queries) == 0
        assert next(lines).decode().startswith(DAY)

    def test_the_web_export_streams(self, admin_client, partner, published):
        self.grow(partner, 500)
        response = admin_client.get("/analytics/export.csv")
        assert response.streaming
        skus = Product.objects.filter(partner=None, family="office365").count()
        blocks = list(response.streaming_content)
        assert len(blocks) > 2  # the header, then the rows in several blocks
        assert b"".join(blocks).count(b"\r\n") == 1 + 1 + 500 * skus

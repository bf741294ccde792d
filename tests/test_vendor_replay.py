"""The vendor replay server itself (tests/vendor_replay.py), driven with plain requests and MSAL:
tokens, paging, the report's redirect and download, throttling, faults, and a world whose export
imports cleanly."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Iterator

import msal
import pytest
import requests

from customers.models import Customer, EndUser
from tests.test_import import run_import
from tests.vendor_replay import VendorReplay, World, make_world

DAY = dt.date(2024, 10, 20)


@pytest.fixture
def world() -> World:
    return make_world(customers=3, users=6, last_day=DAY)


@pytest.fixture
def replay(world: World) -> Iterator[VendorReplay]:
    with VendorReplay(world) as replay:
        yield replay


@pytest.fixture
def session(replay: VendorReplay) -> requests.Session:
    """As the product calls: the environment's CA variables ignored, the replay's CA trusted."""
    session = requests.Session()
    session.trust_env = False
    session.verify = replay.ca_path
    return session


def app(replay: VendorReplay, session: requests.Session, tenant: str, secret: str | None = None, **kwargs):
    return msal.ConfidentialClientApplication(
        replay.world.client_id,
        client_credential=secret or replay.world.secret,
        authority=f"{replay.login_url}/{tenant}",
        instance_discovery=False,
        http_client=session,
        **kwargs,
    )


def bearer(replay: VendorReplay, session: requests.Session, tenant: str, scope_url: str) -> dict[str, str]:
    result = app(replay, session, tenant).acquire_token_for_client(scopes=[f"{scope_url}/.default"])
    return {"Authorization": f"Bearer {result['access_token']}"}


def graph(replay: VendorReplay, session: requests.Session, tenant: str) -> dict[str, str]:
    return bearer(replay, session, tenant, replay.graph_url)


def report_url(replay: VendorReplay, day: dt.date) -> str:
    return f"{replay.graph_url}/v1.0/reports/getOffice365ActiveUserDetail(date={day.isoformat()})"


def test_msal_gets_a_partner_token_and_a_wrong_secret_is_invalid_client(replay, session, world):
    scopes = [f"{replay.partner_center_url}/.default"]
    result = app(replay, session, world.partner_tenant).acquire_token_for_client(scopes=scopes)
    refused = app(replay, session, world.partner_tenant, secret="wrong").acquire_token_for_client(scopes=scopes)

    assert (result["token_type"], result["expires_in"], result["token_source"]) == ("Bearer", 3599, "identity_provider")
    assert (refused["error"], refused["error_codes"]) == ("invalid_client", [7000215])
    assert [(s.path, s.status) for s in replay.requests if s.method == "POST"] == [
        (f"/{world.partner_tenant}/oauth2/v2.0/token", 200),
        (f"/{world.partner_tenant}/oauth2/v2.0/token", 401),
    ]


def test_msal_fails_on_a_gone_tenant_while_building_and_is_refused_when_consent_is_revoked(replay, session, world):
    gone, revoked = world.tenants[0].tenant_id, world.tenants[1].tenant_id
    world.faults = {gone: {"tenant_gone"}, revoked: {"consent_revoked"}}

    with pytest.raises(ValueError, match="Unable to get authority configuration") as raised:
        app(replay, session, gone)
    result = app(replay, session, revoked).acquire_token_for_client(scopes=[f"{replay.graph_url}/.default"])

    assert "AADSTS90002" in str(raised.value.__context__)
    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])


def test_msal_keeps_each_tenants_token_apart_in_a_shared_cache(replay, session, world):
    """The login paths put the tenant first, as the real service does: MSAL's cache realm."""
    cache = msal.TokenCache()
    a, b = (app(replay, session, t.tenant_id, token_cache=cache) for t in world.tenants[:2])
    scopes = [f"{replay.graph_url}/.default"]

    first, second = a.acquire_token_for_client(scopes=scopes), b.acquire_token_for_client(scopes=scopes)

    assert second["token_source"] == "identity_provider"
    assert first["access_token"] != second["access_token"]


def test_customer_pages_follow_links_next_only_with_its_continuation_header(replay, session, world):
    headers = bearer(replay, session, world.partner_tenant, replay.partner_center_url)
    url, names, refused = f"{replay.partner_center_url}/v1/customers", [], []
    while url:
        page = session.get(url, headers=headers).json()
        names += [item["companyProfile"]["companyName"] for item in page["items"]]
        following = page.get("links", {}).get("next")
        url = following and f"{replay.partner_center_url}{following['uri']}"
        if following:
            refused.append(session.get(url, headers=headers).status_code)
            headers = {**headers, **{h["key"]: h["value"] for h in following["headers"]}}

    assert names == [tenant.name for tenant in world.tenants]
    assert page["totalCount"] == 3
    assert refused == [400]
    assert following is None


def test_subscribed_skus_follow_the_next_link(replay, session, world):
    world.skus_page_size = 1
    tenant = max(world.tenants, key=lambda t: len(t.skus))
    headers, url, skus = graph(replay, session, tenant.tenant_id), f"{replay.graph_url}/v1.0/subscribedSkus", []
    while url:
        page = session.get(url, headers=headers).json()
        skus += page["value"]
        url = page.get("@odata.nextLink")

    assert len(tenant.skus) > 1
    assert skus == tenant.skus
    assert replay.count("/subscribedSkus", tenant.tenant_id) == len(tenant.skus)


def test_report_redirects_to_another_origin_that_refuses_the_token(replay, session, world):
    tenant = world.tenants[0]
    headers = graph(replay, session, tenant.tenant_id)
    redirect = session.get(report_url(replay, DAY), headers=headers, allow_redirects=False)
    location = redirect.headers["Location"]

    with_token = session.get(location, headers=headers)
    followed = session.get(report_url(replay, DAY), headers=headers)  # requests drops the token on the way

    assert redirect.status_code == 302
    assert location.split("/")[2] != replay.graph_url.split("/")[2]
    assert with_token.status_code == 400
    assert followed.content == world.report_csv(tenant, DAY)
    assert followed.content.startswith(b"\xef\xbb\xbfReport Refresh Date,User Principal Name,")
    assert [s.had_authorization for s in replay.requests if s.path.startswith("/reports/")] == [True, False]


def test_report_days_without_data_are_header_only_and_old_days_refused(replay, session, world):
    headers = graph(replay, session, world.tenants[0].tenant_id)

    later = session.get(report_url(replay, DAY + dt.timedelta(days=1)), headers=headers)
    old = session.get(report_url(replay, DAY - dt.timedelta(days=29)), headers=headers)

    assert later.content.decode("utf-8-sig").splitlines()[1:] == []
    assert (old.status_code, old.json()["error"]["code"]) == (400, "BadRequest")


def test_reports_beyond_the_rate_answer_429_with_retry_after(replay, session, world):
    world.report_rate = (2, 60.0)
    headers = graph(replay, session, world.tenants[0].tenant_id)
    answers = [session.get(report_url(replay, DAY), headers=headers, allow_redirects=False) for _ in range(3)]
    other_tenant = session.get(report_url(replay, DAY), headers=graph(replay, session, world.tenants[1].tenant_id))

    assert [a.status_code for a in answers] == [302, 302, 429]
    assert 59 <= int(answers[2].headers["Retry-After"]) <= 60
    assert answers[2].json()["error"]["code"] == "TooManyRequests"
    assert other_tenant.status_code == 200


def test_an_expired_token_once_is_refused_from_then_on_and_a_new_one_works(replay, session, world):
    tenant = world.tenants[0].tenant_id
    world.faults = {tenant: {"expired_token_once"}}
    url = f"{replay.graph_url}/v1.0/subscribedSkus"
    headers = graph(replay, session, tenant)

    statuses = [session.get(url, headers=headers).status_code for _ in range(3)]
    expired = session.get(url, headers=headers).json()["error"]
    renewed = session.get(url, headers=bearer(replay, session, tenant, replay.graph_url)).status_code

    assert statuses == [200, 401, 401]
    assert expired["code"] == "InvalidAuthenticationToken"
    assert expired["message"] == "Lifetime validation failed, the token is expired."
    assert renewed == 200


def test_broken_answers_of_faulty_tenants(replay, session, world):
    truncated, dropped, malformed = (t.tenant_id for t in world.tenants)
    world.faults = {truncated: {"truncated_csv"}, dropped: {"drop_connection"}, malformed: {"malformed_json"}}

    cut = session.get(report_url(replay, DAY), headers=graph(replay, session, truncated))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(report_url(replay, DAY), headers=graph(replay, session, dropped))
    skus = session.get(f"{replay.graph_url}/v1.0/subscribedSkus", headers=graph(replay, session, malformed))

    whole = world.report_csv(world.tenants[0], DAY)
    assert (cut.status_code, int(cut.headers["Content-Length"])) == (200, len(cut.content))
    rows = list(csv.reader(io.StringIO(cut.content.decode("utf-8-sig"))))
    assert whole.startswith(cut.content)
    assert len(rows) == len(whole.splitlines())
    assert 1 < len(rows[-1]) < 24
    assert skus.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        skus.json()


def test_a_users_last_activity_is_the_latest_active_day_up_to_each_report_day(world):
    days = [DAY - dt.timedelta(days=n) for n in range(28, -1, -1)]
    for tenant in world.tenants:
        reports = [world.report_rows(tenant, day) for day in days]
        for earlier, later, day in zip(reports, reports[1:], days, strict=False):
            for before, after in zip(earlier, later, strict=True):
                for column in (c for c in before if c.endswith("Last Activity Date")):
                    assert before[column] <= day.isoformat()
                    if after[column] <= day.isoformat():
                        assert before[column] == after[column]
                    else:
                        assert before[column] <= after[column]


def test_make_world_is_deterministic_and_cheap():
    started = time.perf_counter()
    big = make_world(customers=200, users=50)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5
    assert len({t.tenant_id for t in big.tenants}) == 200
    assert make_world(seed=7) == make_world(seed=7) != make_world(seed=8)


@pytest.mark.django_db
def test_an_exported_world_imports_cleanly(partner, tmp_path):
    world = make_world(customers=3, users=6, last_day=DAY, concealed={1})
    world.faults = {world.tenants[2].tenant_id: {"empty"}}
    world.export(tmp_path / "pull", [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)])

    run = run_import(partner, tmp_path / "pull")

    assert run.status == "succeeded", run.errors
    assert Customer.objects.filter(partner=partner).count() == 3
    assert EndUser.objects.filter(partner=partner).count() == 12  # the empty tenant has none
    assert [w for w in run.warnings if "concealed" not in w] == []
    assert sorted(p.name for p in (tmp_path / "pull" / world.tenants[0].tenant_id).iterdir()) == [
        f"ActiveUserDetail_{DAY - dt.timedelta(days=1)}.csv",
        f"ActiveUserDetail_{DAY}.csv",
        "subscribedSkus.json",
        "subscriptions.json",
    ]

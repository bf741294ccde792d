"""The role matrix of SPEC §4, for every role: allowed actions work, forbidden ones are 403
and change nothing; anonymous page requests go to the login page."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts import services
from accounts.models import ApiToken, Invitation
from accounts.roles import Role
from collection import encryption
from collection.models import PullRun, VendorConnection
from customers.models import Customer
from exports.models import ReportSchedule
from imports import services as import_services
from imports.models import ImportRun
from metrics.models import InsightSettings, RecomputeRun, SkuSetting
from metrics.services import metrics_recompute
from tests import factories
from tests.conftest import client_for, log_in

GA, UA, AA, SA = Role.GLOBAL_ADMIN, Role.USER_ADMIN, Role.ADMIN_AGENT, Role.SALES_AGENT
StaffUser = get_user_model()
SNAPSHOT_DAY = dt.date(2024, 6, 30)  # not yesterday, which trigger_recompute must add

# action -> roles allowed (SPEC §4, as a table)
MATRIX: dict[str, set[Role]] = {
    "view_customers": {GA, UA, AA, SA},
    "view_own_subscriptions": {GA, UA, AA, SA},
    "view_insights": {GA, UA, AA, SA},
    "view_analytics": {GA, UA, AA, SA},
    "download_portfolio_csv": {GA, UA, AA, SA},
    "download_customer_csv": {GA, UA, AA, SA},
    "download_inactive_csv": {GA, UA, AA, SA},
    "open_settings": {GA, AA},
    "edit_settings": {GA, AA},
    "open_report_schedule": {GA, AA},
    "edit_report_schedule": {GA, AA},
    "open_import_page": {GA, AA},
    "import_data": {GA, AA},
    "restart_import": {GA, AA},
    "view_data_status": {GA, AA},
    "trigger_recompute": {GA, AA},
    "list_staff": {GA, UA},
    "invite_staff": {GA, UA},
    "change_staff_role": {GA, UA},
    "deactivate_staff": {GA, UA},
    "resend_staff_invitation": {GA, UA},
    "unlock_staff": {GA, UA},
    "resend_invitation": {GA, UA},
    "cancel_invitation": {GA, UA},
    "request_password_reset": {GA, UA, AA, SA},
    "open_password_reset_pages": {GA, UA, AA, SA},
    "accept_invitation": {GA, UA, AA, SA},  # the emailed link is the credential, whoever holds it
    "api_view_customers": {GA, UA, AA, SA},
    "api_view_metrics": {GA, UA, AA, SA},
    "api_list_imports": {GA, AA},
    "api_import_data": {GA, AA},
    "api_restart_import": {GA, AA},
    "api_list_recompute_runs": {GA, AA},
    "open_connection": {GA},  # SPEC §9: only a Global admin sees or changes the vendor connection
    "save_connection": {GA},
    "test_connection": {GA},
    "remove_connection": {GA},
    "view_sync_status": {GA, AA},
    "pull_now": {GA, AA},
    "api_view_sync": {GA, AA},
    "manage_own_api_tokens": {GA, UA, AA, SA},
}


SKU_FORM = {
    "sku-TOTAL_FORMS": "1",
    "sku-INITIAL_FORMS": "1",
    "sku-0-sku": "ENTERPRISEPACK",
    "sku-0-monthly_price": "20.50",
    "sku-0-excluded": "on",
}


def _state() -> tuple:
    """What a forbidden action must leave unchanged."""
    return (
        Customer.objects.count(),
        ImportRun.objects.count(),
        RecomputeRun.objects.count(),
        sorted(StaffUser.objects.values_list("email", "role", "is_active")),
        len(mail.outbox),
        list(InsightSettings.objects.values_list("low_usage_pct", flat=True)),
        list(SkuSetting.objects.values_list("sku", "monthly_price", "excluded")),
        ApiToken.objects.count(),
        list(ReportSchedule.objects.values_list("cadence", "grain")),
        sorted(ReportSchedule.recipients.through.objects.values_list("staffuser__email", flat=True)),
        sorted(Invitation.objects.values_list("email", "link_version", "cancelled_at", "accepted_at")),
        AccessAttempt.objects.count(),
        sorted(VendorConnection.objects.values_list("tenant_id", "client_id", "encrypted_secret", "tested_at")),
        PullRun.objects.count(),
    )


def _act(action: str, client, world: dict):
    customer, target = world["customer"], world["target"]
    if action == "view_customers":
        return client.get("/customers/")
    if action == "view_own_subscriptions":
        return client.get(f"/customers/{customer.pk}/subscriptions/")
    if action == "view_insights":
        return client.get(f"/customers/{customer.pk}/insights/")
    if action == "view_analytics":
        return client.get("/analytics/?family=office365")
    if action == "download_portfolio_csv":
        return client.get("/analytics/export.csv?grain=family")
    if action == "download_customer_csv":
        return client.get(f"/customers/{customer.pk}/export.csv")
    if action == "download_inactive_csv":
        return client.get(f"/customers/{customer.pk}/inactive.csv?days=90")
    if action == "open_settings":
        return client.get("/settings/")
    if action == "edit_settings":
        return client.post("/settings/", {**factories.SETTINGS_FORM, **SKU_FORM})
    if action == "open_report_schedule":
        return client.get("/settings/reports/")
    if action == "edit_report_schedule":
        return client.post("/settings/reports/", {"cadence": "weekly", "grain": "sku", "recipients": [target.pk]})
    if action == "open_import_page":
        return client.get("/imports/")
    if action == "import_data":
        upload = SimpleUploadedFile("customers.csv", b"customer_id,name\nNEW-1,New customer\n")
        return client.post("/imports/", {"files": [upload]})
    if action == "restart_import":
        return client.post(f"/imports/{world['stopped_import'].pk}/restart/")
    if action == "view_data_status":
        return client.get("/status/")
    if action == "trigger_recompute":
        return client.post("/status/recompute/")
    if action == "list_staff":
        return client.get("/staff/")
    if action == "invite_staff":
        return client.post("/staff/invite/", {"email": "new.person@alpha.example", "role": "sales_agent"})
    if action == "change_staff_role":
        return client.post(f"/staff/{target.pk}/", {"role": "admin_agent", "is_active": "on"})
    if action == "deactivate_staff":
        return client.post(f"/staff/{target.pk}/", {"role": target.role, "is_active": ""})
    return _act_accounts(action, client, world)


def _act_accounts(action: str, client, world: dict):
    target, invitation = world["target"], world["invitation"]
    if action == "resend_staff_invitation":
        return client.post(f"/staff/{target.pk}/resend/")
    if action == "unlock_staff":
        return client.post(f"/staff/{target.pk}/unlock/")
    if action == "resend_invitation":
        return client.post(f"/staff/invitations/{invitation.pk}/resend/")
    if action == "cancel_invitation":
        return client.post(f"/staff/invitations/{invitation.pk}/cancel/")
    if action == "request_password_reset":
        return client.post("/accounts/password/reset/", {"email": target.email})
    if action == "open_password_reset_pages":
        assert client.get("/accounts/password/reset/").status_code == 200
        assert client.get("/accounts/password/reset/sent/").status_code == 200
        return client.get("/accounts/reset/done/")
    if action == "accept_invitation":
        client.get(f"/accounts/invitation/{services.invitation_token(invitation)}/")
        password = "a-New-pass-2024!"
        return client.post("/accounts/invitation/accept/", {"new_password1": password, "new_password2": password})
    return _act_api(action, client, world)


def _act_api(action: str, client, world: dict):
    customer = world["customer"]
    if action == "api_view_customers":
        return client.get("/api/customers/")
    if action == "api_view_metrics":
        return client.get(f"/api/customers/{customer.pk}/metrics/family/")
    if action == "api_list_imports":
        return client.get("/api/imports/")
    if action == "api_import_data":
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as files:
            files.writestr("customers.csv", "customer_id,name\nNEW-1,New customer\n")
        archive.seek(0)
        return client.post("/api/imports/", {"file": SimpleUploadedFile("import.zip", archive.read())})
    if action == "api_restart_import":
        return client.post(f"/api/imports/{world['stopped_import'].pk}/restart/")
    if action == "api_list_recompute_runs":
        return client.get("/api/recompute-runs/")
    return _act_collection(action, client)


def _act_collection(action: str, client):
    if action == "open_connection":
        return client.get("/settings/connection/")
    if action == "save_connection":
        form = {"tenant_id": ALPHA_TENANT, "client_id": "c11e0000-0000-4000-8000-000000000001", "client_secret": "s"}
        return client.post("/settings/connection/", form)
    if action == "test_connection":
        return client.post("/settings/connection/test/")
    if action == "remove_connection":
        return client.post("/settings/connection/remove/")
    if action == "view_sync_status":
        return client.get("/sync/")
    if action == "pull_now":
        return client.post("/sync/pull/")
    if action == "api_view_sync":
        return client.get("/api/sync/customers/")
    if action == "manage_own_api_tokens":
        return client.post("/accounts/tokens/", {"name": "mine"})
    raise AssertionError(action)


ALPHA_TENANT = "a1a1a1a1-0000-4000-8000-00000000000a"


@pytest.fixture
def world(partner, staff):
    customer = factories.CustomerFactory(partner=partner)
    factories.SubscriptionFactory(customer=customer)
    metrics_recompute(partner=partner, as_of=SNAPSHOT_DAY, trigger="nightly")  # something to export
    target = StaffUser.objects.create_user("target@alpha.example", "x-Very-long-pass-1", partner=partner, role=SA)
    invitation = services.invitation_create(
        partner=partner, email="invitee@alpha.example", role=SA, invited_by=staff[GA]
    )
    lock_out(target.email)
    VendorConnection.objects.create(
        partner=partner, tenant_id=ALPHA_TENANT, client_id=ALPHA_TENANT, encrypted_secret=encryption.encrypt("old")
    )
    return {
        "customer": customer,
        "target": target,
        "staff": staff,
        "invitation": invitation,
        "stopped_import": stopped_import(partner, staff),
    }


def lock_out(email: str, address: str = "10.9.9.9") -> None:
    """The sign-in lock django-axes records after too many failures of `email` from `address`."""
    AccessAttempt.objects.create(
        username=email, ip_address=address, user_agent="", failures_since_start=5, get_data="", post_data=""
    )


def stopped_import(partner, staff) -> ImportRun:
    """An upload whose worker stopped: failed, its upload stored, so it may be started again."""
    files = [SimpleUploadedFile("customers.csv", b"customer_id,name\nRESTARTED-1,Imported on a restart\n")]
    run = import_services.import_upload(partner=partner, files=files, origin="upload", started_by=staff[GA])
    ImportRun.objects.filter(pk=run.pk).update(status="failed", failure_reason="The worker stopped.")
    return run


@pytest.mark.parametrize("action", sorted(MATRIX))
@pytest.mark.parametrize("role", list(Role))
def test_role_matrix(world, action, role, django_capture_on_commit_callbacks):
    client = client_for(world["staff"][role])
    before = _state()
    with django_capture_on_commit_callbacks(execute=True):
        response = _act(action, client, world)
    if role in MATRIX[action]:
        assert response.status_code in {200, 201, 202, 302}, response.content[:500]
        changes = ("import", "api_import", "restart", "api_restart", "invite", "change", "deactivate", "trigger")
        changes += ("edit", "manage_own", "resend", "unlock", "cancel", "request_password_reset", "accept")
        changes += ("save_connection", "test_connection", "remove_connection", "pull_now")
        if action.startswith(changes):
            assert _state() != before  # the allowed action did something
    else:
        assert response.status_code == 403
        assert _state() == before


@pytest.mark.parametrize(
    "path",
    [
        "/customers/",
        "/imports/",
        "/staff/",
        "/settings/",
        "/settings/reports/",
        "/customers/1/subscriptions/",
        "/customers/1/insights/",
        "/customers/1/export.csv",
        "/customers/1/inactive.csv",
        "/analytics/",
        "/analytics/export.csv",
        "/analytics/inactive.csv",
        "/staff/1/resend/",
        "/staff/1/unlock/",
        "/staff/invitations/1/resend/",
        "/staff/invitations/1/cancel/",
    ],
)
def test_anonymous_page_requests_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_platform_operator_without_partner_gets_403_on_tenant_pages(db):
    operator = StaffUser.objects.create_superuser("ops@platform.example", "x-Very-long-pass-1")
    assert client_for(operator).get("/customers/").status_code == 403
    assert client_for(operator).get("/admin/").status_code == 200


class TestUserManagementAdminLimits:
    """A User management admin can never grant, edit or remove a Global admin; no self-promotion."""

    def test_cannot_grant_global_admin_on_invite(self, world):
        client = client_for(world["staff"][UA])
        before = _state()
        response = client.post("/staff/invite/", {"email": "boss@alpha.example", "role": "global_admin"})
        assert response.status_code == 403
        assert _state() == before

    def test_cannot_promote_someone_to_global_admin(self, world):
        client = client_for(world["staff"][UA])
        response = client.post(f"/staff/{world['target'].pk}/", {"role": "global_admin", "is_active": "on"})
        assert response.status_code == 403
        world["target"].refresh_from_db()
        assert world["target"].role == SA

    @pytest.mark.parametrize("change", [{"role": "sales_agent", "is_active": "on"}, {"role": "global_admin"}])
    def test_cannot_edit_or_deactivate_a_global_admin(self, world, change):
        boss = world["staff"][GA]
        response = client_for(world["staff"][UA]).post(f"/staff/{boss.pk}/", change)
        assert response.status_code == 403
        boss.refresh_from_db()
        assert (boss.role, boss.is_active) == (GA, True)

    def test_nobody_changes_their_own_role(self, world):
        me = world["staff"][UA]
        response = client_for(me).post(f"/staff/{me.pk}/", {"role": "user_admin", "is_active": "on"})
        assert response.status_code == 403

    @pytest.mark.parametrize("role", [UA, AA, SA])
    @pytest.mark.parametrize("path", ["/staff/{me}/", "/staff/invite/"])
    def test_nobody_promotes_themselves_to_global_admin(self, world, role, path):
        me = world["staff"][role]
        before = _state()
        data = {"role": "global_admin", "is_active": "on", "email": me.email}
        response = client_for(me).post(path.format(me=me.pk), data)
        assert response.status_code == 403
        assert _state() == before
        me.refresh_from_db()
        assert (me.role, me.is_active) == (role, True)

    def test_global_admin_can_grant_global_admin(self, world):
        response = client_for(world["staff"][GA]).post(
            f"/staff/{world['target'].pk}/", {"role": "global_admin", "is_active": "on"}
        )
        assert response.status_code == 302
        world["target"].refresh_from_db()
        assert world["target"].role == GA


def test_invitation_mails_a_link_that_creates_the_account(world, django_capture_on_commit_callbacks):
    client = client_for(world["staff"][GA])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/staff/invite/", {"email": "New.Person@Alpha.example", "role": "admin_agent"})
    assert not StaffUser.objects.filter(email="new.person@alpha.example").exists()  # pending until accepted
    (message,) = mail.outbox
    link = next(line.strip() for line in message.body.splitlines() if "/accounts/invitation/" in line)
    stranger = Client()
    form_page = stranger.get(link.split("testserver", 1)[1], follow=True)
    assert "Join Alpha Partners" in form_page.content.decode()
    password = "a-New-pass-2024!"
    stranger.post(form_page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password})
    invited = StaffUser.objects.get(email="new.person@alpha.example")
    assert (invited.partner, invited.role) == (world["customer"].partner, AA)
    assert log_in(Client(), "new.person@alpha.example", password)


class TestInvitationsAndLocksFollowTheRoles:
    """Resending, cancelling and unlocking are for those who may manage that person: a User
    management admin never for a Global admin (403, nothing sent or changed)."""

    @pytest.fixture
    def boss(self, world):
        boss = StaffUser.objects.create_user("boss@alpha.example", None, partner=world["customer"].partner, role=GA)
        lock_out(boss.email)
        invitation = services.invitation_create(
            partner=boss.partner, email="next.boss@alpha.example", role=GA, invited_by=world["staff"][GA]
        )
        return {"member": boss, "invitation": invitation}

    @pytest.mark.parametrize(
        "path",
        [
            "/staff/{member}/resend/",
            "/staff/{member}/unlock/",
            "/staff/invitations/{invitation}/resend/",
            "/staff/invitations/{invitation}/cancel/",
        ],
    )
    def test_a_user_management_admin_cannot_touch_a_global_admins_access(
        self, world, boss, path, django_capture_on_commit_callbacks
    ):
        before = _state()
        url = path.format(member=boss["member"].pk, invitation=boss["invitation"].pk)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(world["staff"][UA]).post(url)
        assert response.status_code == 403
        assert _state() == before
        with django_capture_on_commit_callbacks(execute=True):
            assert client_for(world["staff"][GA]).post(url).status_code == 302
        assert _state() != before

    def test_the_staff_page_offers_only_what_the_role_may_do(self, world, boss):
        page = client_for(world["staff"][UA]).get("/staff/").content.decode()
        assert f"/staff/{world['target'].pk}/unlock/" in page
        assert f"/staff/invitations/{world['invitation'].pk}/resend/" in page
        assert f"/staff/{boss['member'].pk}/unlock/" not in page
        assert f"/staff/{boss['member'].pk}/resend/" not in page
        assert f"/staff/invitations/{boss['invitation'].pk}/resend/" not in page
        assert "boss@alpha.example" in page  # listed, with its lock, but not offered
        assert page.count("locked out until") == 2


def test_deactivated_staff_cannot_log_in_and_their_session_ends(world):
    member = world["target"]
    session = client_for(member)
    assert session.get("/customers/").status_code == 200
    client_for(world["staff"][GA]).post(f"/staff/{member.pk}/", {"role": member.role, "is_active": ""})
    assert session.get("/customers/").status_code == 302  # back to the login page
    assert not log_in(session, member.email, "x-Very-long-pass-1")


def test_login_by_email_and_logout(client, world):
    user = world["staff"][SA]
    response = client.post("/accounts/login/", {"username": user.email, "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    assert client.get("/customers/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/customers/").status_code == 302

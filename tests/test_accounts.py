"""Accounts that can be recovered and revoked: sign-in and its lock ignore the address's case,
"forgot password", invitations (accepted through a link, resent, cancelled), the unlock on the
staff page, and access that deactivation and password changes take away for good."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, Invitation
from accounts.roles import Role
from tests.conftest import PASSWORD, client_for, log_in, token_client_for

StaffUser = get_user_model()
NEW_PASSWORD = "a-Fresh-pass-2024!"


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs a request with its on-commit work done (the queued mail tasks, run eagerly)."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def link_in(message, path: str) -> str:
    """The path of the link to `path…` in an email's plain body, as a browser would open it."""
    (link,) = re.findall(rf"http://testserver({re.escape(path)}\S+)", message.body)
    return link


def attempt(email: str, password: str, address: str = "10.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.logged_in = log_in(client, email, password)
    return client


def sessions_of(user) -> int:
    return sum(session.get_decoded().get("_auth_user_id") == str(user.pk) for session in Session.objects.all())


# --- the address's case ----------------------------------------------------------------------


def test_sign_in_ignores_the_case_and_spaces_of_the_address(staff):
    assert attempt("  Sales_Agent@ALPHA.Example ", PASSWORD).logged_in
    assert not attempt("Sales_Agent@ALPHA.Example", "wrong").logged_in


def test_changing_the_case_neither_escapes_nor_splits_a_lock(staff):
    variants = [
        "sales_agent@alpha.example",
        "SALES_AGENT@ALPHA.EXAMPLE",
        "Sales_Agent@Alpha.Example ",
        " sAles_agent@alpha.example",
        "sales_agent@ALPHA.example",
    ]
    for email in variants:  # five failures, each spelled differently, make one lock
        assert not attempt(email, "wrong-password").logged_in
    assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [
        ("sales_agent@alpha.example", 5)
    ]
    for email in [*variants, "SALES_agent@alpha.EXAMPLE"]:
        locked = Client(REMOTE_ADDR="10.0.0.1")
        response = locked.post("/accounts/login/", {"username": email, "password": PASSWORD})
        assert response.status_code == 429
        assert "_auth_user_id" not in locked.session


def test_the_lock_page_says_when_the_lock_ends_and_reads_the_same_for_unknown_addresses(staff):
    pages = {}
    for email in (staff[Role.SALES_AGENT].email, "nobody@alpha.example"):
        for _ in range(5):
            attempt(email, "wrong-password")
        response = Client(REMOTE_ADDR="10.0.0.1").post("/accounts/login/", {"username": email, "password": "x"})
        assert response.status_code == 429
        last = AccessAttempt.objects.get(username=email).attempt_time
        ends = timezone.localtime(last + dt.timedelta(minutes=15))
        html = response.content.decode()
        assert f'until <strong><time datetime="{ends.isoformat()}">{ends:%H:%M} UTC</time></strong>' in html
        pages[email] = re.sub(r"<time[^>]*>[^<]*</time>", "WHEN", html)
    known, unknown = pages.values()
    assert known == unknown


# --- the unlock on the staff page ------------------------------------------------------------


def lock(email: str) -> None:
    for _ in range(5):
        attempt(email, "wrong-password")


def test_the_staff_page_shows_a_lock_and_unlock_lets_the_member_in_again(staff):
    member = staff[Role.SALES_AGENT]
    lock(member.email.upper())
    admin = client_for(staff[Role.USER_ADMIN])
    page = admin.get("/staff/").content.decode()
    row = re.search(rf"<td>{re.escape(member.email)}</td>.*?</tr>", page, re.S).group(0)
    assert "locked out until" in row
    assert f'action="/staff/{member.pk}/unlock/"' in row
    assert not attempt(member.email, PASSWORD).logged_in
    response = admin.post(f"/staff/{member.pk}/unlock/")
    assert response.status_code == 302
    assert f"{member.email} can sign in again." in admin.get("/staff/").content.decode()
    assert "locked out until" not in admin.get("/staff/").content.decode()
    assert attempt(member.email, PASSWORD).logged_in


def test_unlock_is_a_post(staff):
    member = staff[Role.SALES_AGENT]
    lock(member.email)
    assert client_for(staff[Role.GLOBAL_ADMIN]).get(f"/staff/{member.pk}/unlock/").status_code == 405
    assert AccessAttempt.objects.filter(username=member.email).exists()


def test_a_lock_that_has_cooled_off_is_not_shown(staff):
    member = staff[Role.SALES_AGENT]
    lock(member.email)
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=16))
    assert "locked out until" not in client_for(staff[Role.GLOBAL_ADMIN]).get("/staff/").content.decode()
    assert attempt(member.email, PASSWORD).logged_in


# --- forgot password -------------------------------------------------------------------------


def test_forgot_password_answers_the_same_whether_or_not_the_address_exists(staff, committed):
    def ask(email: str):
        response = committed(Client().post, "/accounts/password/reset/", {"email": email}, follow=True)
        return response.redirect_chain, response.content.decode()

    assert ask("nobody@alpha.example") == ask("SALES_agent@alpha.example")
    (message,) = mail.outbox
    assert message.to == ["sales_agent@alpha.example"]


def test_a_reset_link_sets_the_password_once_and_revokes_tokens_and_sessions(staff, committed):
    member = staff[Role.SALES_AGENT]
    elsewhere = attempt(member.email, PASSWORD, address="10.0.0.7")
    api = token_client_for(member)
    assert api.get("/api/customers/").status_code == 200
    committed(Client().post, "/accounts/password/reset/", {"email": member.email})
    link = link_in(mail.outbox[0], "/accounts/reset/")
    browser = Client()
    form = browser.get(link, follow=True)
    assert "Setting it signs this account out everywhere" in form.content.decode()
    done = browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done["Location"] == "/accounts/reset/done/"
    assert "API tokens were revoked" in browser.get(done["Location"]).content.decode()
    assert attempt(member.email, NEW_PASSWORD).logged_in
    assert not attempt(member.email, PASSWORD, address="10.0.0.3").logged_in
    assert elsewhere.get("/customers/").status_code == 302  # that session ended
    assert api.get("/api/customers/").status_code == 401
    again = Client().get(link, follow=True)
    assert "This link is no longer valid" in again.content.decode()


def test_a_reset_lifts_the_lock(staff, committed):
    member = staff[Role.SALES_AGENT]
    lock(member.email)
    committed(Client().post, "/accounts/password/reset/", {"email": member.email})
    browser = Client()
    form = browser.get(link_in(mail.outbox[0], "/accounts/reset/"), follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert attempt(member.email, NEW_PASSWORD).logged_in


def test_a_forged_host_never_makes_a_reset_link(staff, committed):
    """Links take the request's host, which must be an allowed one: a forged Host (or
    X-Forwarded-Host) cannot point a victim's link at the attacker."""
    data = {"email": staff[Role.SALES_AGENT].email}
    assert committed(Client().post, "/accounts/password/reset/", data, HTTP_HOST="evil.example").status_code == 400
    committed(Client().post, "/accounts/password/reset/", data, HTTP_X_FORWARDED_HOST="evil.example")
    (message,) = mail.outbox
    assert "evil.example" not in message.body
    assert "http://testserver/accounts/reset/" in message.body


def test_a_deactivated_member_gets_no_reset_email(staff, committed):
    member = staff[Role.SALES_AGENT]
    services.staff_update(member=member, role=member.role, is_active=False)
    committed(Client().post, "/accounts/password/reset/", {"email": member.email})
    assert mail.outbox == []


# --- invitations -----------------------------------------------------------------------------


def invite(client, committed, email: str, role: str = "sales_agent", full_name: str = ""):
    return committed(client.post, "/staff/invite/", {"email": email, "role": role, "full_name": full_name})


def accept(link: str, password: str = NEW_PASSWORD, full_name: str = "Nia New") -> tuple[Client, object]:
    browser = Client()
    form = browser.get(link, follow=True)
    response = browser.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link,
        {"full_name": full_name, "new_password1": password, "new_password2": password},
    )
    return browser, response


def test_an_invitation_is_pending_until_accepted_and_its_link_works_once(staff, committed):
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    assert invite(admin, committed, "Nia@Alpha.example", "admin_agent", "Nia")["Location"] == "/staff/"
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "nia@alpha.example",
        "admin_agent",
        staff[Role.GLOBAL_ADMIN],
    )
    assert invitation.sent_at is not None
    assert not StaffUser.objects.filter(email="nia@alpha.example").exists()
    page = admin.get("/staff/").content.decode()
    assert "Pending invitations" in page
    assert "nia@alpha.example" in page
    link = link_in(mail.outbox[0], "/accounts/invitation/")
    browser, response = accept(link, full_name="Nia Ng")
    assert response["Location"] == "/customers/"
    assert browser.get("/customers/").status_code == 200  # signed in
    member = StaffUser.objects.get(email="nia@alpha.example")
    assert (member.partner, member.role, member.full_name) == (
        staff[Role.GLOBAL_ADMIN].partner,
        "admin_agent",
        "Nia Ng",
    )
    assert log_in(Client(), "nia@alpha.example", NEW_PASSWORD)
    assert "Pending invitations" not in admin.get("/staff/").content.decode()
    _, again = accept(link, password="another-Pass-2024!")
    assert "This invitation link is no longer valid" in again.content.decode()
    assert StaffUser.objects.filter(email="nia@alpha.example").count() == 1


def test_the_accept_page_applies_the_password_rules(staff, committed):
    invite(client_for(staff[Role.GLOBAL_ADMIN]), committed, "nia@alpha.example")
    _, response = accept(link_in(mail.outbox[0], "/accounts/invitation/"), password="nia@alpha")
    assert response.status_code == 200
    assert "The password is too similar to the email." in response.content.decode()
    assert not StaffUser.objects.filter(email="nia@alpha.example").exists()


def test_the_invite_form_names_only_this_partners_own_staff_and_invitations(staff, committed):
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    mine = invite(admin, committed, staff[Role.SALES_AGENT].email.upper())
    assert "This address is already on your staff." in mine.content.decode()
    invite(admin, committed, "nia@alpha.example")
    again = invite(admin, committed, "NIA@alpha.example")
    assert "An invitation to this address is pending" in again.content.decode()
    assert Invitation.objects.count() == 1


def test_an_address_that_got_an_account_meanwhile_cannot_accept(staff, other_partner, committed):
    invite(client_for(staff[Role.GLOBAL_ADMIN]), committed, "nia@alpha.example")
    link = link_in(mail.outbox[0], "/accounts/invitation/")
    services.staff_create(partner=other_partner, email="nia@alpha.example", role=Role.SALES_AGENT, password=PASSWORD)
    _, response = accept(link)
    assert "already has a Partner Insights account" in response.content.decode()
    assert StaffUser.objects.get(email="nia@alpha.example").partner == other_partner
    assert "ZZ-B-" not in response.content.decode()


def test_resend_replaces_the_link_and_cancel_kills_it(staff, committed):
    admin = client_for(staff[Role.USER_ADMIN])
    invite(admin, committed, "nia@alpha.example")
    invitation = Invitation.objects.get()
    first = link_in(mail.outbox[0], "/accounts/invitation/")
    assert committed(admin.post, f"/staff/invitations/{invitation.pk}/resend/").status_code == 302
    second = link_in(mail.outbox[1], "/accounts/invitation/")
    assert "no longer valid" in accept(first)[1].content.decode()
    assert committed(admin.post, f"/staff/invitations/{invitation.pk}/cancel/").status_code == 302
    assert "no longer valid" in accept(second)[1].content.decode()
    assert not StaffUser.objects.filter(email="nia@alpha.example").exists()
    assert admin.post(f"/staff/invitations/{invitation.pk}/resend/").status_code == 404  # closed


def test_an_invitation_link_expires(staff, committed, monkeypatch):
    invite(client_for(staff[Role.GLOBAL_ADMIN]), committed, "nia@alpha.example")
    monkeypatch.setattr(services, "INVITATION_MAX_AGE", dt.timedelta(seconds=-1))
    assert "no longer valid" in accept(link_in(mail.outbox[0], "/accounts/invitation/"))[1].content.decode()
    assert not StaffUser.objects.filter(email="nia@alpha.example").exists()


def test_a_forged_or_damaged_link_is_refused(staff, committed):
    invite(client_for(staff[Role.GLOBAL_ADMIN]), committed, "nia@alpha.example")
    link = link_in(mail.outbox[0], "/accounts/invitation/")
    for bad in (
        link[:-3] + "abc/",
        "/accounts/invitation/eyJpIjoxLCJ2IjoxfQ:1abc:forged/",
        "/accounts/invitation/accept/",
    ):
        assert "no longer valid" in accept(bad)[1].content.decode()
    assert not StaffUser.objects.filter(email="nia@alpha.example").exists()


def test_members_of_the_old_invitation_flow_get_a_new_link(partner, staff, committed):
    """Accounts the old flow made (no password, never signed in) stay members; "Resend
    invitation" mails them a single-use link to choose a password."""
    old = StaffUser.objects.create_user("old.invite@alpha.example", None, partner=partner, role=Role.SALES_AGENT)
    admin = client_for(staff[Role.USER_ADMIN])
    page = admin.get("/staff/").content.decode()
    assert "never signed in" in page
    assert f'action="/staff/{old.pk}/resend/"' in page
    assert committed(admin.post, f"/staff/{old.pk}/resend/").status_code == 302
    (message,) = mail.outbox
    assert (message.to, message.subject) == (
        ["old.invite@alpha.example"],
        "You are invited to Partner Insights for Alpha Partners",
    )
    link = link_in(message, "/accounts/reset/")
    browser = Client()
    form = browser.get(link, follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert log_in(browser, "old.invite@alpha.example", NEW_PASSWORD)
    response = committed(admin.post, f"/staff/{old.pk}/resend/", follow=True)
    assert "has signed in already" in response.content.decode()
    assert len(mail.outbox) == 1
    assert f'action="/staff/{old.pk}/resend/"' not in admin.get("/staff/").content.decode()


# --- what deactivation and password changes take away ----------------------------------------


def test_deactivation_ends_sessions_and_revokes_tokens_and_reactivation_revives_neither(staff):
    member = staff[Role.SALES_AGENT]
    browser = attempt(member.email, PASSWORD)
    api = token_client_for(member)
    assert (browser.get("/customers/").status_code, api.get("/api/customers/").status_code) == (200, 200)
    admin = client_for(staff[Role.GLOBAL_ADMIN])
    admin.post(f"/staff/{member.pk}/", {"role": member.role, "is_active": ""})
    assert sessions_of(member) == 0
    assert ApiToken.objects.filter(user=member, revoked_at__isnull=True).count() == 0
    admin.post(f"/staff/{member.pk}/", {"role": member.role, "is_active": "on"})
    assert browser.get("/customers/")["Location"].startswith("/accounts/login/")
    assert api.get("/api/customers/").status_code == 401
    assert attempt(member.email, PASSWORD).logged_in  # the person can sign in again, afresh


def test_a_password_change_revokes_the_api_tokens_and_says_so(staff):
    member = staff[Role.SALES_AGENT]
    here, elsewhere = attempt(member.email, PASSWORD), attempt(member.email, PASSWORD)
    api = token_client_for(member)
    page = here.get("/accounts/password/").content.decode()
    assert "revokes your API tokens" in page
    response = here.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    text = response.content.decode()
    assert "1 API token(s) revoked" in text
    assert "your API tokens revoked" in text
    assert api.get("/api/customers/").status_code == 401
    assert here.get("/customers/").status_code == 200
    assert elsewhere.get("/customers/").status_code == 302
    assert sessions_of(member) == 1


# --- CSRF ------------------------------------------------------------------------------------


def test_csrf_is_enforced_on_the_new_unsafe_routes(staff, committed):
    member = staff[Role.SALES_AGENT]
    lock(member.email)
    invite(client_for(staff[Role.GLOBAL_ADMIN]), committed, "nia@alpha.example")
    invitation = Invitation.objects.get()
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(staff[Role.GLOBAL_ADMIN])
    for path in (
        f"/staff/{member.pk}/unlock/",
        f"/staff/{member.pk}/resend/",
        f"/staff/invitations/{invitation.pk}/resend/",
        f"/staff/invitations/{invitation.pk}/cancel/",
    ):
        assert signed_in.post(path).status_code == 403
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/accounts/password/reset/", {"email": member.email}).status_code == 403
    anonymous.get(link_in(mail.outbox[0], "/accounts/invitation/"))
    data = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert anonymous.post("/accounts/invitation/accept/", data).status_code == 403
    assert AccessAttempt.objects.filter(username=member.email).exists()
    invitation.refresh_from_db()
    assert (invitation.link_version, invitation.cancelled_at, invitation.accepted_at) == (1, None, None)
    assert len(mail.outbox) == 1


def test_forgot_password_sends_at_most_three_mails_an_hour_to_an_address_and_twenty_from_a_client(staff, committed):
    member = staff[Role.SALES_AGENT]

    def ask(email: str, address: str = "203.0.113.5") -> str:
        answer = committed(Client(REMOTE_ADDR=address).post, "/accounts/password/reset/", {"email": email})
        return answer["Location"]

    answers = {ask(member.email.upper(), address=f"203.0.113.{n}") for n in range(5)}  # spelled and sent apart
    assert answers == {"/accounts/password/reset/sent/"}  # the same answer over the budget: no oracle
    assert len(mail.outbox) == 3
    others = {ask(f"someone{n}@elsewhere.example", address="198.51.100.9") for n in range(25)}
    assert others == {"/accounts/password/reset/sent/"}
    assert len(mail.outbox) == 3  # unknown addresses get no mail anyway; nothing else changed
    ask(staff[Role.ADMIN_AGENT].email, address="198.51.100.9")  # this client's 26th request: over 20
    assert len(mail.outbox) == 3
    ask(staff[Role.ADMIN_AGENT].email, address="198.51.100.10")  # another client: within both budgets
    assert [message.to for message in mail.outbox[3:]] == [[staff[Role.ADMIN_AGENT].email]]

import datetime as dt
import logging
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import selectors, services, tasks
from accounts.forms import AcceptInvitationForm, ApiTokenForm, InviteForm, MemberForm, PasswordResetRequestForm
from accounts.http import PartnerRequest
from accounts.models import ApiToken, Invitation, StaffUser
from accounts.roles import Action, Role, can_grant, can_manage_invitation, can_manage_member, require_action
from core.clients import client_address
from core.pages import as_context

logger = logging.getLogger(__name__)


@require_action(Action.MANAGE_STAFF)
def staff_list(request: PartnerRequest) -> HttpResponse:
    locks = selectors.staff_locks(partner=request.partner)
    members = [
        MemberRow(member, can_manage_member(request.user, member), locks.get(member.pk))
        for member in selectors.staff_list(partner=request.partner)
    ]
    expired_before = timezone.now() - services.INVITATION_MAX_AGE
    invitations = [
        InvitationRow(
            invitation,
            can_manage_invitation(request.user, invitation),
            invitation.sent_at is not None and invitation.sent_at < expired_before,
        )
        for invitation in selectors.invitation_list(partner=request.partner)
    ]
    return render(request, "accounts/staff_list.html", as_context(StaffListPage(members, invitations)))


@dataclass(frozen=True)
class MemberRow:
    member: StaffUser
    manageable: bool  # the signed-in user may change, unlock or re-invite them
    locked_until: dt.datetime | None  # locked out of sign-in (too many failures) until then


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation  # pending
    manageable: bool  # the signed-in user may resend or cancel it
    link_expired: bool


@dataclass(frozen=True)
class StaffListPage:
    members: list[MemberRow]
    invitations: list[InvitationRow]


@require_action(Action.MANAGE_STAFF)
def staff_invite(request: PartnerRequest) -> HttpResponse:
    role = _posted_role(request)
    if role is not None and not can_grant(request.user, role):
        raise PermissionDenied
    form = InviteForm(request.POST or None, actor=request.user, partner=request.partner)
    if request.method == "POST" and form.is_valid():
        invitation = services.invitation_create(partner=request.partner, invited_by=request.user, **form.cleaned_data)
        tasks.mail_enqueue(tasks.send_invitation, invitation_id=invitation.pk, site_url=_site_url(request))
        messages.success(request, f"Invitation to {invitation.email} is on its way.")
        return redirect("staff:list")
    return render(request, "accounts/staff_invite.html", as_context(InvitePage(form)))


@dataclass(frozen=True)
class InvitePage:
    form: InviteForm


@require_action(Action.VIEW_INSIGHTS)  # any partner member; managing is checked after the lookup
def staff_edit(request: PartnerRequest, staff_id: int) -> HttpResponse:
    # Inside the tenant first (another partner's id is a 404), then the role (403).
    member = selectors.staff_get(partner=request.partner, staff_id=staff_id)
    if not can_manage_member(request.user, member, _posted_role(request)):
        raise PermissionDenied
    form = MemberForm(
        request.POST or None, actor=request.user, initial={"role": member.role, "is_active": member.is_active}
    )
    if request.method == "POST" and form.is_valid():
        services.staff_update(member=member, **form.cleaned_data)
        messages.success(request, f"{member.email} updated.")
        return redirect("staff:list")
    return render(request, "accounts/staff_edit.html", as_context(MemberPage(form, member)))


@dataclass(frozen=True)
class MemberPage:
    form: MemberForm
    member: StaffUser


@require_action(Action.VIEW_INSIGHTS)
def staff_resend(request: PartnerRequest, staff_id: int) -> HttpResponseBase:
    """Sends a member who never signed in a new link to choose their password."""
    member = _managed_member(request, staff_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if member.awaits_first_sign_in:
        tasks.mail_enqueue(tasks.send_member_invitation, member_id=member.pk, site_url=_site_url(request))
        messages.success(request, f"Invitation to {member.email} is on its way again.")
    else:
        messages.error(request, f"{member.email} has signed in already: they can use “Forgot password”.")
    return redirect("staff:list")


@require_action(Action.VIEW_INSIGHTS)
def staff_unlock(request: PartnerRequest, staff_id: int) -> HttpResponseBase:
    """Lifts a member's sign-in lock (too many failed sign-ins)."""
    member = _managed_member(request, staff_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.staff_unlock(member=member)
    messages.success(request, f"{member.email} can sign in again.")
    return redirect("staff:list")


def _managed_member(request: PartnerRequest, staff_id: int) -> StaffUser:
    # Inside the tenant first (another partner's id is a 404), then the role (403).
    member = selectors.staff_get(partner=request.partner, staff_id=staff_id)
    if not can_manage_member(request.user, member):
        raise PermissionDenied
    return member


@require_action(Action.VIEW_INSIGHTS)
def invitation_resend(request: PartnerRequest, invitation_id: int) -> HttpResponseBase:
    """Sends a pending invitation again with a new link; the earlier links stop working."""
    invitation = _managed_invitation(request, invitation_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.invitation_resend(invitation=invitation)
    tasks.mail_enqueue(tasks.send_invitation, invitation_id=invitation.pk, site_url=_site_url(request))
    messages.success(request, f"Invitation to {invitation.email} is on its way again.")
    return redirect("staff:list")


@require_action(Action.VIEW_INSIGHTS)
def invitation_cancel(request: PartnerRequest, invitation_id: int) -> HttpResponseBase:
    invitation = _managed_invitation(request, invitation_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.invitation_cancel(invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} cancelled: its link no longer works.")
    return redirect("staff:list")


def _managed_invitation(request: PartnerRequest, invitation_id: int) -> Invitation:
    invitation = selectors.invitation_get(partner=request.partner, invitation_id=invitation_id)
    if not can_manage_invitation(request.user, invitation):
        raise PermissionDenied
    return invitation


def _site_url(request: HttpRequest) -> str:
    """Where links in emails point: this request's scheme and (validated) host."""
    return request.build_absolute_uri("/").rstrip("/")


# --- signing in: invitations, forgotten and changed passwords --------------------------------

_INVITATION_SESSION_KEY = "_invitation_token"
_ACCEPT_URL_TOKEN = "accept"  # noqa: S105 (not a secret) stands in the URL once the token is in the session


@sensitive_post_parameters()
@never_cache
def invitation_accept(request: HttpRequest, token: str) -> HttpResponseBase:
    """The emailed link: whoever holds it chooses a name and a password, which creates the staff
    account and signs them in. As Django's reset view does, the token moves from the URL into
    the session at once, so pages never carry it (history, Referer)."""
    if token != _ACCEPT_URL_TOKEN:
        request.session[_INVITATION_SESSION_KEY] = token
        return redirect("invitation_accept", token=_ACCEPT_URL_TOKEN)
    invitation = services.invitation_from_token(request.session.get(_INVITATION_SESSION_KEY, ""))
    if invitation is None:
        return render(request, "accounts/invitation_accept.html", as_context(AcceptPage(None, None)))
    form = AcceptInvitationForm(invitation, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.invitation_accept(
            invitation=invitation, password=form.cleaned_data["new_password1"], full_name=form.user.full_name
        )
        del request.session[_INVITATION_SESSION_KEY]
        if user is None:
            return render(request, "accounts/invitation_accept.html", as_context(AcceptPage(None, invitation)))
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to Partner Insights for {invitation.partner.name}.")
        return redirect("customers:list")
    return render(request, "accounts/invitation_accept.html", as_context(AcceptPage(form, invitation)))


@dataclass(frozen=True)
class AcceptPage:
    form: AcceptInvitationForm | None  # None: nothing to accept (see `invitation`)
    invitation: Invitation | None  # None: the link is not valid; without a form: the address has an account


@never_cache
def password_reset(request: HttpRequest) -> HttpResponse:
    """ "Forgot password": the same answer, at the same cost, whether or not the address has an
    account; the worker looks the account up and sends the email (tasks.send_password_reset)."""
    form = PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if services.password_reset_allowed(email=email, client=client_address(request)):
            tasks.mail_enqueue(tasks.send_password_reset, email=email, site_url=_site_url(request))
        else:  # the same answer: over the budget says nothing about the address either
            logger.warning("Password reset requests over the hourly budget; no mail sent")
        return redirect("password_reset_done")
    return render(request, "registration/password_reset_form.html", as_context(ResetPage(form)))


@dataclass(frozen=True)
class ResetPage:
    form: PasswordResetRequestForm


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The emailed reset link. Setting the password ends every session of the account and revokes
    its API tokens; the link then no longer works (Django's token changes with the password)."""

    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:  # type: ignore[type-arg]
        response = super().form_valid(form)
        services.staff_password_changed(user=form.user)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Changing one's password keeps this session, ends the others and revokes one's API tokens."""

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:  # type: ignore[type-arg]
        response = super().form_valid(form)
        revoked = services.staff_password_changed(user=form.user, keep_session_key=self.request.session.session_key)
        messages.success(self.request, f"{revoked} API token(s) revoked; your other sessions were signed out.")
        return response


@require_action(Action.VIEW_INSIGHTS)  # every partner member has their own tokens
def api_tokens(request: PartnerRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    created = secret = None
    if request.method == "POST" and form.is_valid():
        created, secret = services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiTokenForm()
    tokens = selectors.api_token_list(user=request.user)
    page = TokensPage(form, list(tokens), created, secret)
    response = render(request, "accounts/token_list.html", as_context(page))
    add_never_cache_headers(response)  # the one page that ever shows the secret
    return response


@require_action(Action.VIEW_INSIGHTS)
def api_token_revoke(request: PartnerRequest, token_id: int) -> HttpResponse:
    # The user's own tokens first (anybody else's id is a 404), then the method.
    token = selectors.api_token_get(user=request.user, token_id=token_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")


@dataclass(frozen=True)
class TokensPage:
    form: ApiTokenForm
    tokens: list[ApiToken]
    created: ApiToken | None  # a token just created, whose secret is shown once
    secret: str | None


def _posted_role(request: HttpRequest) -> str | None:
    """The role a POST asks to grant; granting a role one may not grant is a 403, not a form error."""
    role = request.POST.get("role") if request.method == "POST" else None
    return role if role in Role.values else None

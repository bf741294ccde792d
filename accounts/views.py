from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers

from accounts import selectors, services
from accounts.forms import ApiTokenForm, InviteForm, MemberForm
from accounts.http import PartnerRequest
from accounts.models import ApiToken, StaffUser
from accounts.roles import Action, Role, can_grant, can_manage_member, require_action
from core.pages import as_context


@require_action(Action.MANAGE_STAFF)
def staff_list(request: PartnerRequest) -> HttpResponse:
    staff = selectors.staff_list(partner=request.partner)
    manageable = {member.pk for member in staff if can_manage_member(request.user, member)}
    return render(request, "accounts/staff_list.html", as_context(StaffListPage(list(staff), manageable)))


@dataclass(frozen=True)
class StaffListPage:
    staff: list[StaffUser]
    manageable: set[int]  # the members the signed-in user may change


@require_action(Action.MANAGE_STAFF)
def staff_invite(request: PartnerRequest) -> HttpResponse:
    role = _posted_role(request)
    if role is not None and not can_grant(request.user, role):
        raise PermissionDenied
    form = InviteForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        member = services.staff_invite(request=request, partner=request.partner, **form.cleaned_data)
        messages.success(request, f"Invitation sent to {member.email}.")
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

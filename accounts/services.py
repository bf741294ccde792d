"""Writes of partners and staff: accounts, invitations, sign-in locks, API tokens, and the
emails they send (built here, sent by accounts.tasks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template import engines
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import ApiToken, Invitation, Partner, StaffUser, normalise_email
from accounts.roles import Role

# An invitation link works for a week from its email, once; a resend replaces it.
INVITATION_MAX_AGE = dt.timedelta(days=7)
_INVITATION_SALT = "accounts.invitation"


def partner_create(*, slug: str, name: str) -> Partner:
    partner = Partner(slug=slug, name=name)
    partner.full_clean()
    partner.save()
    return partner


def staff_create(
    *, partner: Partner, email: str, role: Role | str, password: str | None = None, full_name: str = ""
) -> StaffUser:
    """A staff user of `partner`. Without a password the account cannot log in until the
    person sets one through a link (`member_invitation_message`)."""
    return StaffUser.objects.create_user(email, password, partner=partner, role=Role(role), full_name=full_name)


def staff_update(*, member: StaffUser, role: Role | str, is_active: bool) -> StaffUser:
    """Changes a member's role and status. Deactivation ends their sessions and revokes their API
    tokens for good: reactivating them later revives neither."""
    deactivated = member.is_active and not is_active
    member.role = Role(role)
    member.is_active = is_active
    member.save(update_fields=["role", "is_active"])
    if deactivated:
        staff_sessions_end(user=member)
        api_tokens_revoke_all(user=member)
    return member


def staff_password_changed(*, user: StaffUser, keep_session_key: str | None = None) -> int:
    """After a password change or reset: ends the user's other sessions, revokes their API tokens
    and lifts any sign-in lock on the address. Returns how many tokens were revoked."""
    staff_sessions_end(user=user, keep_session_key=keep_session_key)
    staff_unlock(member=user)
    return api_tokens_revoke_all(user=user)


def staff_sessions_end(*, user: StaffUser, keep_session_key: str | None = None) -> int:
    """Deletes the user's sessions from the session store (the database), but `keep_session_key`.
    Sessions are signed blobs, so the live ones are decoded to find the user's."""
    doomed = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=500)
        if session.session_key != keep_session_key and session.get_decoded().get(SESSION_KEY) == str(user.pk)
    ]
    deleted, _ = Session.objects.filter(session_key__in=doomed).delete()
    return deleted


def staff_unlock(*, member: StaffUser) -> int:
    """Lifts the sign-in lock of the member's address from every client address (django-axes);
    returns the number of attempt records removed."""
    removed: int = axes_reset(username=normalise_email(member.email))
    return removed


# --- invitations -----------------------------------------------------------------------------


def invitation_create(
    *, partner: Partner, email: str, role: Role | str, full_name: str = "", invited_by: StaffUser
) -> Invitation:
    """A pending invitation to `partner`'s staff; the caller queues its email (tasks.send_invitation).
    Whether the address has an account elsewhere is decided when the email is built, so the
    inviter sees the same pending invitation either way."""
    invitation = Invitation(
        partner=partner, email=normalise_email(email), role=Role(role), full_name=full_name, invited_by=invited_by
    )
    invitation.full_clean()
    invitation.save()
    return invitation


def invitation_resend(*, invitation: Invitation) -> Invitation:
    """Invalidates the links already sent (a new link version); the caller queues the new email."""
    Invitation.objects.filter(pk=invitation.pk).update(link_version=F("link_version") + 1)
    invitation.refresh_from_db(fields=["link_version"])
    return invitation


def invitation_cancel(*, invitation: Invitation) -> None:
    """Closes a pending invitation: its links stop working."""
    Invitation.objects.filter(pk=invitation.pk, cancelled_at__isnull=True).update(cancelled_at=timezone.now())


def invitation_mark_sent(*, invitation_id: int) -> None:
    Invitation.objects.filter(pk=invitation_id).update(sent_at=timezone.now())


def invitation_token(invitation: Invitation) -> str:
    """The signed, expiring key of an invitation's link, valid for its current link version."""
    return signing.dumps({"i": invitation.pk, "v": invitation.link_version}, salt=_INVITATION_SALT)


def invitation_from_token(token: str) -> Invitation | None:
    """The pending invitation a link names; None when the link is forged, expired, replaced by a
    resend, or its invitation was accepted or cancelled."""
    try:
        data = signing.loads(token, salt=_INVITATION_SALT, max_age=INVITATION_MAX_AGE)
    except signing.BadSignature:  # expired links too
        return None
    pending = Invitation.objects.select_related("partner").filter(accepted_at=None, cancelled_at=None)
    return pending.filter(pk=data["i"], link_version=data["v"]).first()


@transaction.atomic
def invitation_accept(*, invitation: Invitation, password: str, full_name: str) -> StaffUser | None:
    """Creates the staff account the invitation offers, with the chosen password, and closes the
    invitation. None when it can no longer be accepted: the address has an account already (of
    any partner), or the invitation was accepted or cancelled meanwhile."""
    claimed = Invitation.objects.select_for_update().filter(pk=invitation.pk, accepted_at=None, cancelled_at=None)
    if not claimed.exists() or StaffUser.objects.filter(email__iexact=invitation.email).exists():
        return None
    try:
        with transaction.atomic():
            user = staff_create(
                partner=invitation.partner,
                email=invitation.email,
                role=invitation.role,
                password=password,
                full_name=full_name,
            )
    except (ValidationError, IntegrityError):  # the address was taken a moment ago
        return None
    claimed.update(accepted_at=timezone.now(), user=user)
    return user


# --- emails: built in the worker from ids, so no link or token crosses the broker or a log ----


def _email(template: str, *, to: str, subject: str, context: dict[str, Any]) -> EmailMessage:
    # The "text" engine does not HTML-escape: a name with `<` reads `<`, not `&lt;`.
    body = engines["text"].get_template(template).render(context)
    return EmailMessage(subject=subject, body=body, to=[to])


def invitation_message(*, invitation_id: int, site_url: str) -> EmailMessage | None:
    """The email of a pending invitation: its link; or, when the address already has an account
    (of any partner), a plain notice to the address that the invitation cannot be accepted,
    naming no partner. None when the invitation is no longer pending."""
    pending = Invitation.objects.select_related("partner").filter(accepted_at=None, cancelled_at=None)
    invitation = pending.filter(pk=invitation_id).first()
    if invitation is None:
        return None
    if StaffUser.objects.filter(email__iexact=invitation.email).exists():
        subject = "An invitation to Partner Insights could not be accepted"
        return _email("invitation_address_taken.txt", to=invitation.email, subject=subject, context={})
    link = site_url + reverse("invitation_accept", kwargs={"token": invitation_token(invitation)})
    context = {
        "name": invitation.full_name,
        "partner": invitation.partner.name,
        "role": invitation.get_role_display(),
        "link": link,
        "valid_for": f"{INVITATION_MAX_AGE.days} days",
        "email": invitation.email,
    }
    subject = f"You are invited to Partner Insights for {invitation.partner.name}"
    return _email("invitation.txt", to=invitation.email, subject=subject, context=context)


def member_invitation_message(*, member_id: int, site_url: str) -> EmailMessage | None:
    """The invitation email again for a member who never signed in (an account made by the old
    invitation flow or `create_staff`): a single-use link to choose a password. None when they
    have signed in since or were deactivated."""
    member = StaffUser.objects.select_related("partner").filter(pk=member_id, partner__isnull=False).first()
    if member is None or member.partner is None or not member.awaits_first_sign_in:
        return None
    context = {
        "name": member.full_name,
        "partner": member.partner.name,
        "role": member.get_role_display(),
        "link": _password_link(member, site_url),
        "valid_for": _reset_valid_for(),
        "email": member.email,
    }
    subject = f"You are invited to Partner Insights for {member.partner.name}"
    return _email("invitation.txt", to=member.email, subject=subject, context=context)


def password_reset_message(*, email: str, site_url: str) -> EmailMessage | None:
    """The "forgot password" email of the active account of `email` (any case); None when there
    is none, and then nothing is sent at all."""
    user = StaffUser.objects.filter(email__iexact=normalise_email(email), is_active=True).first()
    if user is None:
        return None
    context = {"link": _password_link(user, site_url), "valid_for": _reset_valid_for(), "email": user.email}
    return _email(
        "password_reset.txt", to=user.email, subject="Choose a new Partner Insights password", context=context
    )


def _password_link(user: StaffUser, site_url: str) -> str:
    # Django's reset token: it changes with the password and the last sign-in, so it works once.
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return site_url + reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def _reset_valid_for() -> str:
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    return f"{hours} hours"


TOKEN_PREFIX = "pi_"  # noqa: S105 (not a secret) makes a leaked token recognisable (secret scanners, logs)
_PREFIX_SHOWN = len(TOKEN_PREFIX) + 8
# Recording every use would write on every API call; once a minute is precise enough.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _token_hash(secret: str) -> str:
    # A plain sha256 is enough: the secret is 256 random bits, not a password to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user: StaffUser, name: str) -> tuple[ApiToken, str]:
    """A new token of `user`. Returns the token and its secret, which is stored nowhere."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:_PREFIX_SHOWN], key_hash=_token_hash(secret))
    return token, secret


def api_tokens_revoke_all(*, user: StaffUser) -> int:
    """Revokes every live token of `user`; returns how many."""
    revoked: int = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return revoked


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revokes `token` for good (revoking twice keeps the first date)."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The live token of an active partner member for `secret`, its use recorded; None otherwise
    (unknown, revoked, deactivated user, or a platform operator without a partner)."""
    token = (
        ApiToken.objects.select_related("user__partner")
        .filter(key_hash=_token_hash(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active or token.user.partner_id is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# "Forgot password" sends mail to any address typed in: a budget per address and per client
# keeps it from being used to flood an inbox, or to spam from this product's domain.
RESET_MAILS_PER_ADDRESS = 3
RESET_MAILS_PER_CLIENT = 20
RESET_BUDGET_SECONDS = 3600


def password_reset_allowed(*, email: str, client: str | None) -> bool:
    """Counts one "forgot password" request against the address's and the client's budgets for
    the hour; False when either is spent. Keys hold hashes, never the address itself."""
    allowed = True
    for kind, value, limit in (
        ("address", email.strip().lower(), RESET_MAILS_PER_ADDRESS),
        ("client", client or "unknown", RESET_MAILS_PER_CLIENT),
    ):
        key = f"password-reset:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"
        cache.add(key, 0, timeout=RESET_BUDGET_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between the two calls: a new hour
            cache.set(key, 1, timeout=RESET_BUDGET_SECONDS)
            count = 1
        allowed = allowed and count <= limit
    return allowed

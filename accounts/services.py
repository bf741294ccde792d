"""Writes of partners and staff."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import ApiToken, Partner, StaffUser
from accounts.roles import Role


def partner_create(*, slug: str, name: str) -> Partner:
    partner = Partner(slug=slug, name=name)
    partner.full_clean()
    partner.save()
    return partner


def staff_create(
    *, partner: Partner, email: str, role: Role | str, password: str | None = None, full_name: str = ""
) -> StaffUser:
    """A staff user of `partner`. Without a password the account cannot log in until the
    person sets one through the invitation link."""
    return StaffUser.objects.create_user(email, password, partner=partner, role=Role(role), full_name=full_name)


@transaction.atomic
def staff_invite(*, request: HttpRequest, partner: Partner, email: str, role: Role, full_name: str = "") -> StaffUser:
    """Creates the account (no password yet) and emails a link to choose one."""
    user = staff_create(partner=partner, email=email, role=role, full_name=full_name)
    link = request.build_absolute_uri(
        reverse(
            "password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
    )
    body = render_to_string("registration/invitation_email.txt", {"user": user, "partner": partner, "link": link})
    subject = f"You are invited to Partner Insights for {partner.name}"
    transaction.on_commit(lambda: send_mail(subject, body, None, [user.email]))
    return user


def staff_update(*, member: StaffUser, role: Role | str, is_active: bool) -> StaffUser:
    member.role = Role(role)
    member.is_active = is_active
    member.save(update_fields=["role", "is_active"])
    return member


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

"""Writes of partners and staff."""

from __future__ import annotations

from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Partner, StaffUser
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

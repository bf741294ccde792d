"""django-axes hooks (settings AXES_USERNAME_CALLABLE, AXES_LOCKOUT_CALLABLE): a lockout keyed on
the address as stored, and a lockout page that says when the lock ends."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import normalise_email


def username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """The sign-in address as stored (stripped, lower-case): `Sam@X` and `sam@x ` are one lock."""
    field = settings.AXES_USERNAME_FORM_FIELD
    source = credentials or (request.POST if request is not None else {})
    value = source.get(field)
    return normalise_email(value) if isinstance(value, str) else None


def response(request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None) -> HttpResponse:
    """The lockout page (429 Too Many Requests). Each failed attempt restarts the cool-off, so the lock ends one
    cool-off after this attempt; the page reads the same whether or not the account exists."""
    cool_off = get_cool_off(request)
    ends_at = getattr(request, "axes_attempt_time", None) or timezone.now()
    context = {"ends_at": ends_at + cool_off, "minutes": int(cool_off.total_seconds() // 60)}
    return render(request, "registration/locked_out.html", context, status=429)

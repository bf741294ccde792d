"""Tenant scoping: the one mechanism that makes every query of a request see one partner."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from django.http import HttpRequest, HttpResponse
from django_scopes import scope, scopes_disabled

from accounts.http import ScopedRequest


class PartnerScopeMiddleware:
    """Sets `request.partner` from the signed-in user (never from the URL) and runs the view
    inside that partner's scope.

    Tenant models use django-scopes managers, which refuse to query outside a scope: a request
    without a partner (anonymous) cannot read tenant data at all. Platform operators (no partner)
    work only in Django's admin, unscoped.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: ScopedRequest) -> HttpResponse:
        with self.scope_for(request):
            return self.get_response(request)

    @staticmethod
    def scope_for(request: ScopedRequest) -> AbstractContextManager[None]:
        """Sets `request.partner` (what makes the request a ScopedRequest) and returns its scope."""
        user = request.user
        request.partner = getattr(user, "partner", None) if user.is_authenticated else None
        partner_scope: AbstractContextManager[None]  # django-scopes has no type hints
        if request.partner is not None:
            partner_scope = scope(partner=request.partner)
        elif user.is_authenticated and user.is_staff:
            partner_scope = scopes_disabled()
        else:
            partner_scope = nullcontext()
        return partner_scope

"""Tenant scoping: the one mechanism that makes every query of a request see one partner."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from django.http import HttpRequest, HttpResponse
from django_scopes import scope, scopes_disabled


class PartnerScopeMiddleware:
    """Sets `request.partner` from the signed-in user (never from the URL) and runs the view
    inside that partner's scope.

    Tenant models use django-scopes managers, which refuse to query outside a scope: a request
    without a partner (anonymous) cannot read tenant data at all. Platform operators (no partner)
    work only in Django's admin, unscoped.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with self.scope_for(request):
            return self.get_response(request)

    @staticmethod
    def scope_for(request: HttpRequest) -> AbstractContextManager[None]:
        user = request.user
        request.partner = getattr(user, "partner", None) if user.is_authenticated else None
        if request.partner is not None:
            return scope(partner=request.partner)
        if user.is_authenticated and user.is_staff:
            return scopes_disabled()
        return nullcontext()

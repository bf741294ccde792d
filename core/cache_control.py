"""`Cache-Control: private, no-store` on every answer to a signed-in user: pages, API answers and
downloads of a partner's data are never kept by a browser's or a shared cache.

Static files never get here (whitenoise answers them earlier, cacheable forever: their names carry
their hashes), and anonymous answers (the login page, 401s) keep their own headers. API tokens are
read inside the view; DRF sets the user on the request, so the token's user is known here too.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control


class PrivateNoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response

"""The one base of every REST API view: who is asking, which partner they see, what they may do.

Token authentication happens inside the view (DRF), after `PartnerScopeMiddleware` has run with
an anonymous user, so the base view sets `request.partner` and enters the partner's django-scopes
scope itself, once the user is known. Scoping is structural: `PartnerViewSet` owns
`get_queryset`, `get_object` and the request cycle, and refuses at class-definition time any
subclass that overrides them (PostHog's pattern). Subclasses only say which rows of *their*
partner they show (`partner_queryset`), and the base filters by the partner once more.

The base knows no app: the tenant is `request.user.partner`, and whether the user may take the
view's `required_action` is the user's `has_perm(action)` (accounts answers it from the role
matrix of SPEC §4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from functools import cached_property
from typing import Any, ClassVar, Generic, Protocol, cast

from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import defaults
from django_scopes import scope
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiResponse
from redis.exceptions import RedisError
from rest_framework import filters, pagination, permissions, serializers, throttling, viewsets
from rest_framework.request import Request
from rest_framework.settings import api_settings
from typing_extensions import TypeVar

logger = logging.getLogger(__name__)

# The partner model, which this base cannot name (it knows no app): views say which it is,
# `PartnerViewSet[Partner]`; left out, it is any model.
PartnerT = TypeVar("PartnerT", bound=Model, default=Model)
PartnerT_co = TypeVar("PartnerT_co", bound=Model, default=Model, covariant=True)

# What subclasses may not redefine: the scoped path must be the only path.
SEALED = frozenset(
    {"get_queryset", "get_object", "initial", "dispatch", "permission_classes", "authentication_classes"}
)


class TenantRequest(Request, Generic[PartnerT]):
    """DRF's request as the views of `PartnerViewSet` see it once `initial` has run: a signed-in
    partner member's, with `partner` set to their partner. Only a type: the object is DRF's Request."""

    partner: PartnerT


class PartnerMember(Protocol[PartnerT_co]):
    """What the base reads of the user the role check let through (the project's user model)."""

    @property
    def partner(self) -> PartnerT_co: ...


class RoleAllows(permissions.BasePermission):
    """The role matrix (SPEC §4): the view's `required_action` for the signed-in partner member.
    Anonymous requests get 401 (DRF asks the first authenticator for its header), others 403."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm(view.required_action))


class PartnerRateThrottle(throttling.ScopedRateThrottle):
    """Requests per user and kind of endpoint, counted in the shared cache (Redis when configured):
    the view's `throttle_scope`, else `read` for GET/HEAD/OPTIONS and `upload` for the rest. Rates
    are `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`; over the rate, DRF answers 429 with Retry-After."""

    def allow_request(self, request: Request, view: Any) -> bool:
        safe = request.method in permissions.SAFE_METHODS
        self.scope = getattr(view, "throttle_scope", None) or ("read" if safe else "upload")
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return throttling.SimpleRateThrottle.allow_request(self, request, view)
        except (RedisError, OSError):
            # The cache down must not take the API down with it: count nothing until it is back.
            logger.warning("API throttle not applied: the cache does not answer", exc_info=True)
            return True

    def get_rate(self) -> str | None:
        rates: Mapping[str, Any] = api_settings.DEFAULT_THROTTLE_RATES  # per request: settings may change
        return str(rates[self.scope]) if self.scope else None


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class OrderingFilter(filters.OrderingFilter):
    """`?ordering=a,-b` over the view's `ordering_fields`, always ending with the primary key so
    pages never overlap; the schema lists the accepted values."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: Any) -> list[str]:
        return [*(super().get_ordering(request, queryset, view) or []), "pk"]

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        values = [prefix + field for field in view.ordering_fields for prefix in ("", "-")]
        if not values:
            return []
        default = ", ".join(view.ordering)
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Sort by these fields, comma-separated; `-` sorts descending. Default: {default}.",
                "schema": {"type": "array", "items": {"type": "string", "enum": values}},
                "style": "form",
                "explode": False,
            }
        ]


class PartnerViewSet(viewsets.GenericViewSet[Any], Generic[PartnerT]):
    """Base of every API view. Subclasses set `model`, `serializer_class`, `partner_queryset()` and
    `required_action`; nothing else about access. `PartnerViewSet[Partner]` types `self.partner`."""

    model: ClassVar[type[Model]]
    required_action: ClassVar[str]  # an accounts.roles.Action: each view names the one it needs
    request: TenantRequest[PartnerT]
    permission_classes = [RoleAllows]
    throttle_classes = [PartnerRateThrottle]
    throttle_scope: ClassVar[str | None] = None  # None: by method (PartnerRateThrottle)
    pagination_class = Pagination
    filter_backends = [OrderingFilter]
    ordering_fields: ClassVar[list[str]] = []
    ordering: ClassVar[list[str]] = []
    # Validates and documents the query string of the list action; its data is `self.params`.
    query_serializer_class: ClassVar[type[serializers.Serializer[Any]] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = sorted(SEALED & set(vars(cls)))
        if overridden:
            raise TypeError(
                f"{cls.__name__} may not override {', '.join(overridden)}: the base view owns tenant scoping "
                "and access; define partner_queryset() and required_action instead."
            )

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with ExitStack() as self._partner_scope:
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, then the role: 401/403 here
        # The user is known only now (a token is read inside the view): scope to their partner.
        # Past the role check it is a partner member; the casts say so of this very request.
        tenant = cast("TenantRequest[PartnerT]", request)
        tenant.partner = cast("PartnerMember[PartnerT]", request.user).partner
        self._partner_scope.enter_context(scope(partner=tenant.partner))

    @property
    def partner(self) -> PartnerT:
        return self.request.partner

    def partner_queryset(self, partner: Any) -> QuerySet[Any]:
        """The rows this view shows, of `partner` only (usually a selector's result)."""
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no partner
            return self.model._default_manager.none()
        return self.partner_queryset(self.partner).filter(partner=self.partner)

    def get_object(self) -> Model:
        """The object of the URL inside the partner's rows: another partner's id is a 404."""
        row: Model = super().get_object()
        return row

    @cached_property
    def params(self) -> Mapping[str, Any]:
        """The validated query string (400 with the field errors when it is invalid)."""
        if self.query_serializer_class is None or self.action != "list":
            return {}
        query = self.query_serializer_class(data=self.request.query_params, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        data: Mapping[str, Any] = query.validated_data
        return data


class ErrorSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField(help_text="Why the request was refused.")


VALIDATION_ERRORS = {
    "type": "object",
    "description": "The invalid parameters or fields, each with its reasons.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds to wait before this kind of request is accepted again.",
    }
}


class PartnerAutoSchema(AutoSchema):
    """Documents what the base view answers besides success, on every operation: 401 without
    credentials, 403 for a role that may not, 404 for another partner's (or no) object, a page past
    the end or a date without a snapshot, 400 for an invalid query string or body, 429 over the
    user's rate (with Retry-After); and the view's query parameters."""

    def get_override_parameters(self) -> list[Any]:
        query = self._query_serializer()
        return [*super().get_override_parameters(), *([query] if query else [])]

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, body in self._error_bodies().items():
            if code not in responses:
                # drf-spectacular leaves this method unannotated (untyped_calls_exclude matches by
                # the receiver's class, this subclass, so it does not cover it).
                responses[code] = self._get_response_for_code(body, code, direction=direction)  # type: ignore[no-untyped-call]
        if direction == "response":
            responses["429"] = {**responses["429"], "headers": RETRY_AFTER}
        return responses

    def _query_serializer(self) -> type[serializers.Serializer[Any]] | None:
        listing = getattr(self.view, "action", None) == "list"
        return getattr(self.view, "query_serializer_class", None) if listing else None

    def _takes_dates(self) -> bool:
        query = self._query_serializer()
        return query is not None and "as_of" in query().fields

    def _error_bodies(self) -> dict[str, OpenApiResponse]:
        errors = {
            "401": OpenApiResponse(ErrorSerializer, description="No credentials, or an invalid or revoked token."),
            "403": OpenApiResponse(ErrorSerializer, description="The user's role may not do this; nothing changed."),
        }
        if "{" in self.path or getattr(self.view, "action", None) == "list":
            missing = "No such object of this partner (another partner's too), or no such page."
            if self._takes_dates():
                missing += " Or no snapshot on the date asked for: the message names the latest date with one."
            errors["404"] = OpenApiResponse(ErrorSerializer, description=missing)
        if self.method != "GET" or self._query_serializer():
            errors["400"] = OpenApiResponse(VALIDATION_ERRORS, description="Invalid query parameters or fields.")
        errors["429"] = OpenApiResponse(
            ErrorSerializer,
            description="Too many requests of this kind by this user (every token and session of theirs together).",
        )
        return errors


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's 404 handler: JSON under /api/ (an id the URL pattern does not even match
    is a 404 like any other), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)

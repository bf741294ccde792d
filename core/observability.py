"""Structured logs and error reports, configured from settings.

Logs are structlog event dicts rendered as one JSON object per line in production, or as
readable lines in development (`LOG_FORMAT`). Records of the standard library's loggers (Django,
Celery, axes) go through the same processors, so every line carries time, level, logger, the
request's request_id, user_id and partner_id (django-structlog binds them) or the task's task_id.

No secrets or personal data: fields named like secrets or personal data are dropped to
"[filtered]", request paths lose their query string and password-link tokens, and sign-in
failures name no account (`axes_client_str`). Identify partners by id or slug, users by id.
"""

from __future__ import annotations

import hashlib
import re
import sys
from typing import TYPE_CHECKING, Any

import structlog
from django.http import HttpRequest
from structlog.typing import EventDict, Processor

if TYPE_CHECKING:
    from sentry_sdk.types import Event

FILTERED = "[filtered]"
# Fields that may hold a secret or a person's data, whatever logs them.
SENSITIVE_FIELDS = frozenset(
    {
        "password",
        "password1",
        "password2",
        "new_password1",
        "new_password2",
        "token",
        "secret",
        "key",
        "authorization",
        "cookie",
        "email",
        "emails",
        "username",
        "upn",
        "name",
        "full_name",
        "display_name",
        "recipients",
        "link",
        "ip",
        "user_agent",
    }
)
# A password link carries its token in the path: a reset's uid and token, an invitation's token.
PASSWORD_LINK = re.compile(r"(/accounts/reset/)[^/\s?]+/[^/\s?]+|(/accounts/invitation/)[^/\s?]+")


def redact_path(text: str) -> str:
    """`text` without query strings and without the tokens of password links."""
    without_query = re.sub(r"\?\S*", "", text)
    return PASSWORD_LINK.sub(lambda m: f"{m[1]}…/…" if m[1] else f"{m[2]}…", without_query)


def scrub(logger: Any, method: str, event: EventDict) -> EventDict:
    """Drops sensitive fields and redacts request paths (a structlog processor)."""
    for field in SENSITIVE_FIELDS & event.keys():
        event[field] = FILTERED
    if event.get("message") == event.get("event"):
        del event["message"]  # standard logging's formatted text, which ExtraAdder copies again
    request = event.get("request")
    if isinstance(request, HttpRequest):  # Django's own log calls pass the request object (repr: its full URL)
        event["request"] = f"{request.method} {redact_path(request.path)}"
    elif isinstance(request, str):
        event["request"] = redact_path(request)
    if isinstance(event.get("event"), str) and PASSWORD_LINK.search(event["event"]):
        event["event"] = redact_path(event["event"])
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),  # the `extra=` fields of standard logging calls
        scrub,
    ]


def formatter(log_format: str) -> dict[str, Any]:
    """The logging.config entry of a formatter rendering every record as `log_format`."""
    renderer: list[Processor]
    if log_format == "json":
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        # Plain tracebacks: rich's would print every frame's local variables (passwords among them).
        renderer = [
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        ]
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        "foreign_pre_chain": _shared_processors(),
    }


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Configures structlog and returns Django's LOGGING: every record to stderr as `log_format`
    ("json" or "console")."""
    if log_format not in {"json", "console"}:
        raise ValueError(f"LOG_FORMAT must be json or console, not {log_format!r}")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": formatter(log_format)},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Through the root handler only: Django's own console handler would print every line twice.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            # Django's request logger would repeat what django-structlog logs for each request.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
            # At DEBUG they would log the vendor's URLs, among them a report's pre-authenticated download.
            "urllib3": {"level": "WARNING"},
            "msal": {"level": "WARNING"},
        },
    }


def axes_client_str(username: str, ip_address: str, user_agent: str, path_info: str, request: HttpRequest) -> str:
    """How django-axes names a client in its log lines: a digest of the account, not its email."""
    digest = hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:12]
    return f"account {digest} on {path_info}"


def bind_request_partner(request: HttpRequest, **kwargs: Any) -> None:
    """Binds the signed-in user's partner id to the request's log context (django-structlog signals)."""
    user = getattr(request, "user", None)
    structlog.contextvars.bind_contextvars(partner_id=getattr(user, "partner_id", None))


def init_sentry(*, dsn: str, environment: str, release: str | None) -> None:
    """Error reports to Sentry from the web and the workers, without personal data: no user,
    cookies, headers with credentials, request bodies or local variables."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=0.0,
        before_send=_scrub_event,
    )


def _scrub_event(event: Event, hint: dict[str, Any]) -> Event:
    """Sentry events get the same path redaction as the logs."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = redact_path(url)
    return event

"""Partner Insights settings: one module, configured only by the environment (SPEC §5).

With no environment at all it runs on an SQLite file in the project folder and a
Celery broker on the local file system, so a fresh clone works without services.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from core.observability import init_sentry, logging_config

# Django classes the type stubs make generic (ModelAdmin[Partner], ModelForm[...]) get a
# no-op __class_getitem__, so the annotated code runs.
django_stubs_ext.monkeypatch(include_builtins=False)

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "django_structlog",
    "core",
    "accounts",
    "customers",
    "metrics",
    "imports",
    "exports",
    "dashboard",
    "collection",
]

MIDDLEWARE = [
    # First: probes and the metrics scrape answer by any host over plain HTTP (core/probes.py).
    "core.probes.ProbeMiddleware",
    "partnerinsights.monitoring.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Pages and API answers to a signed-in user hold partner data: no cache may keep them.
    "core.cache_control.PrivateNoStoreMiddleware",
    # After authentication: binds request_id, user_id and partner_id to the request's log lines.
    "django_structlog.middlewares.RequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # After authentication: every query of the request sees only the user's partner.
    "accounts.middleware.PartnerScopeMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "partnerinsights.urls"
WSGI_APPLICATION = "partnerinsights.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.partner_context",
            ],
        },
    },
    {
        # Plain-text email bodies: rendered without HTML escaping (`<` stays `<`), never served as pages.
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "NAME": "text",
        "DIRS": [BASE_DIR / "templates" / "email"],
        "OPTIONS": {"autoescape": False},
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server, the worker and a command share the file;
    # IMMEDIATE transactions take the write lock up front instead of failing half-way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.StaffUser"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses locked-out logins before the password check
    "django.contrib.auth.backends.ModelBackend",
]
# Lock an account *from one address* after 5 failures for 15 minutes: nobody can guess on or lock
# everybody out. Behind proxies, TRUSTED_PROXY_COUNT says how to read the client (core/clients.py).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on stdout: commands write CSV there (SPEC §5)
AXES_USERNAME_FORM_FIELD = "username"
# The lockout is keyed on the address as stored (stripped, lower-case): changing its case neither
# escapes nor splits a lock. The lockout page says when the lock ends.
AXES_USERNAME_CALLABLE = "accounts.lockout.username"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.response"
AXES_CLIENT_STR_CALLABLE = "core.observability.axes_client_str"  # log lines name no email
# The proxies in front that set or append X-Forwarded-For (core/clients.py reads the client from it).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT") or "0")
AXES_CLIENT_IP_CALLABLE = "core.clients.client_address"

# Content Security Policy: scripts only from our own static files (charts are drawn by
# static/js/charts.js from JSON data, never inline). plotly.js sets inline styles on its SVG.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "customers:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Uploads: Django does not cap file uploads itself; the import view enforces this limit.
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("IMPORT_MAX_UPLOAD_BYTES", str(200 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Import uploads wait in MEDIA_ROOT (shared by the web and the workers, never served) for a worker.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
IMPORT_UPLOAD_RETENTION_DAYS = int(os.environ.get("IMPORT_UPLOAD_RETENTION_DAYS", "7"))
# A running import beats every 2 s; one silent this long is swept as failed (its worker died).
IMPORT_STALE_SECONDS = int(os.environ.get("IMPORT_STALE_SECONDS", "600"))
IMPORT_TIME_LIMIT_MINUTES = int(os.environ.get("IMPORT_TIME_LIMIT_MINUTES", "120"))
IMPORT_QUEUE_EXPIRES_HOURS = int(os.environ.get("IMPORT_QUEUE_EXPIRES_HOURS", "24"))

# Security: with DEBUG off everything runs behind HTTPS (SPEC §5).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 0 if DEBUG else int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # forms carry the token; no script of ours reads the cookie
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

# Celery: Redis when REDIS_URL is set; otherwise a broker on the local file system, so the
# worker and the beat schedule run on a fresh clone without any service.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_QUEUE_DIR = Path(os.environ.get("CELERY_QUEUE_DIR", BASE_DIR / "var" / "celery"))
# A running import's progress and heartbeat cross processes (worker -> web, sweeper) through
# this cache while its transaction is open: Redis, or files beside the file-system broker.
IMPORTS_CACHE: dict[str, object] = (
    {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pi",
        # A Redis that is down or hung must not hold an import or a page: give up quickly.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(CELERY_QUEUE_DIR.parent / "cache" / "imports"),
        "OPTIONS": {"MAX_ENTRIES": 10_000},
    }
)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Redis redelivers unacknowledged tasks after this long, also while they still run:
        # keep it above the recompute's time limit (55 min) plus its retries.
        "visibility_timeout": 3 * 3600,
        # "Redis down" must not become "web down": publishing gives up quickly.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "max_retries": 2,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
# Named queues, routed by task name: a worker per queue in production (docker-compose.yml), so a
# large partner's recompute never holds an import. `dev.py run` has one worker consuming them all.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # The import sweeper and upload cleaner must run while an import holds the imports queue.
    "imports.sweep_stopped_runs": {"queue": "default"},
    "imports.remove_old_uploads": {"queue": "default"},
    "metrics.*": {"queue": "recompute"},
    "imports.*": {"queue": "imports"},
    "exports.*": {"queue": "reports"},
    "collection.*": {"queue": "collection"},
}
CELERY_QUEUE_NAMES = ("default", "recompute", "imports", "reports", "collection")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long tasks: one at a time per process
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_QUEUE_DIR / "beat-schedule")


def daily_at(hh_mm: str) -> crontab:
    """A daily crontab at HH:MM (in CELERY_TIMEZONE)."""
    hour, minute = hh_mm.split(":")
    return crontab(hour=hour, minute=minute)


# The nightly recomputation of yesterday, for every partner (HH:MM in TIME_ZONE).
METRICS_NIGHTLY_AT = os.environ.get("METRICS_NIGHTLY_AT", "02:00")
# PostgreSQL's work_mem inside a recompute's transaction: the default 4MB makes its grouping of a
# large portfolio's users spill to disk (EXPLAIN: external merge sorts, batched hashes).
METRICS_WORK_MEM = os.environ.get("METRICS_WORK_MEM", "256MB")
# The scheduled reports due today (weekly on Mondays, monthly on the 1st), after the nightly run.
REPORTS_AT = os.environ.get("REPORTS_AT", "06:00")
# Automatic collection from the vendor's APIs (SPEC §9): endpoints for national clouds and tests, the
# report API's pace per customer tenant, and the nightly pull, before the nightly recompute.
VENDOR_LOGIN_URL = os.environ.get("VENDOR_LOGIN_URL", "https://login.microsoftonline.com").rstrip("/")
VENDOR_PARTNER_CENTER_URL = os.environ.get(
    "VENDOR_PARTNER_CENTER_URL", "https://api.partnercenter.microsoft.com"
).rstrip("/")
VENDOR_GRAPH_URL = os.environ.get("VENDOR_GRAPH_URL", "https://graph.microsoft.com").rstrip("/")
VENDOR_CA_BUNDLE = os.environ.get("VENDOR_CA_BUNDLE", "") or None
VENDOR_REPORT_RATE = os.environ.get("VENDOR_REPORT_RATE", "14/600")
VENDOR_PULL_AT = os.environ.get("VENDOR_PULL_AT", "01:00")
VENDOR_PULL_CONCURRENCY = int(os.environ.get("VENDOR_PULL_CONCURRENCY", "16"))  # customers downloaded side by side
VENDOR_RETRY_BUDGET = int(os.environ.get("VENDOR_RETRY_BUDGET", "8"))  # 5xx and network retries per customer
# Fernet keys of the vendor connections' secrets: the first encrypts, all decrypt (collection/encryption.py).
CONNECTION_KEYS = env_list("CONNECTION_KEYS", "")
CELERY_BEAT_SCHEDULE = {
    "nightly-recompute": {"task": "metrics.nightly_recompute", "schedule": daily_at(METRICS_NIGHTLY_AT)},
    "scheduled-reports": {"task": "exports.send_scheduled_reports", "schedule": daily_at(REPORTS_AT)},
    "sweep-stopped-imports": {"task": "imports.sweep_stopped_runs", "schedule": 5 * 60},
    "remove-old-uploads": {"task": "imports.remove_old_uploads", "schedule": daily_at("03:30")},
    "nightly-pull": {"task": "collection.nightly_pull", "schedule": daily_at(VENDOR_PULL_AT)},
}

# The shared cache (API throttle counters): Redis when REDIS_URL is set, so every web process counts
# the same requests; CACHE_URL picks another database than the broker's. Else this process's memory.
CACHE_URL = os.environ.get("CACHE_URL", "") or REDIS_URL
CACHES: dict[str, dict[str, object]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "pi-cache",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "imports": IMPORTS_CACHE,
}

# The REST API (/api/): tokens first, so an anonymous request is a 401 with
# `WWW-Authenticate: Bearer`; the browser's session works too (with CSRF on unsafe methods).
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "core.api.PartnerAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: no browsable API pages (their forms and inline scripts) to secure as well.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Per user and kind of endpoint (core.api.PartnerRateThrottle), counted in the shared cache.
    "DEFAULT_THROTTLE_RATES": {
        "read": os.environ.get("API_THROTTLE_READ", "600/minute"),
        "upload": os.environ.get("API_THROTTLE_UPLOAD", "30/hour"),
        "schema": os.environ.get("API_THROTTLE_SCHEMA", "60/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Partner Insights API",
    "DESCRIPTION": (
        "License deployment and usage metrics of a partner's customers (read-only), and the .zip import.\n\n"
        "Authenticate with a personal token (the **API tokens** page): `Authorization: Bearer <token>`. "
        "A token acts as its user: their partner and their role. Everything is of that partner only; "
        'another partner\'s ids answer 404. Percentages are strings with one decimal ("87.5"), '
        "null when undefined. Lists are paginated (`?page=`, `?page_size=` up to 500)."
    ),
    "VERSION": "1.0.0",
    # Under /api/ nothing answers an anonymous request (SPEC §4), the schema included.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, so an upload is `format: binary`, not a URL.
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "metrics.models.RunStatus",  # recompute runs
        "ImportStatusEnum": "imports.models.ImportStatus",
        "SubscriptionStatusEnum": "customers.models.SubscriptionStatus",
    },
}

PASSWORD_RESET_TIMEOUT = 24 * 3600  # a reset link works once, for a day


MAIL_DIR = BASE_DIR / "var" / "mail"


def email_settings(url: str) -> dict[str, Any]:
    """Django's EMAIL_* settings from one URL (`smtp+tls://user:pass@host:587`, `consolemail://`,
    `filemail:///abs/path`). Without a URL, mail is written to files under var/mail/, so no
    password link ever lands in a log."""
    config: dict[str, Any] = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(MAIL_DIR),
        "EMAIL_HOST": "localhost",
        "EMAIL_PORT": 25,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
    }
    if url:
        parsed = environ.Env.email_url_config(url)
        if parsed["EMAIL_BACKEND"].endswith(".filebased.EmailBackend") and parsed["EMAIL_FILE_PATH"]:
            parsed["EMAIL_FILE_PATH"] = "/" + parsed["EMAIL_FILE_PATH"]  # django-environ drops the root
        config.update({name: value for name, value in parsed.items() if name in config and value not in {None, ""}})
    return config


if os.environ.get("EMAIL_BACKEND") and not os.environ.get("EMAIL_URL"):
    raise ImproperlyConfigured("EMAIL_BACKEND is no longer read: set EMAIL_URL (see the README).")
_email = email_settings(os.environ.get("EMAIL_URL", ""))
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
EMAIL_HOST = _email["EMAIL_HOST"]
EMAIL_PORT = _email["EMAIL_PORT"]
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = 10  # seconds; a stuck SMTP server fails the task, which retries
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "partner-insights@localhost")

# Logs: one JSON object per line in production, readable lines in development (core/observability.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "console" if DEBUG else "json")
LOGGING = logging_config(log_format=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))
DJANGO_STRUCTLOG_CELERY_ENABLED = True  # tasks carry the request's ids; workers bind task_id
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # addresses are personal data; the proxy's access log has them
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Error reports: to Sentry when SENTRY_DSN is set, without personal data.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    init_sentry(
        dsn=SENTRY_DSN,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "development" if DEBUG else "production"),
        release=os.environ.get("SENTRY_RELEASE") or None,
    )

# The Prometheus endpoint /metrics (partnerinsights/monitoring.py): off unless a token is set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`).")

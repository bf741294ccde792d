"""Liveness and readiness probes for orchestrators and load balancers.

`/healthz` answers 200 while the process serves. `/readyz` answers 200 when the database is
reachable and fully migrated and the Celery broker and the cache answer, 503 naming what failed.
Both answer plain HTTP for any Host and without a session: a probe comes by the pod's address,
not the public name, and not through the TLS proxy. So `ProbeMiddleware` stands first in
MIDDLEWARE, before host validation (CommonMiddleware) and the HTTPS redirect (SecurityMiddleware),
and answers these two exact paths only. Answers name the failing part, never the error text
(addresses, user names): that goes to the log.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

logger = structlog.get_logger(__name__)

TIMEOUT = 2.0  # seconds each check may take; a probe gives up on all of them after TIMEOUT + 1


class CheckFailed(Exception):
    """A check's short, public reason (no addresses, no error text)."""


def _probe_connection() -> BaseDatabaseWrapper:
    """A connection of the probe's own with short timeouts: a hung database must not hold
    the probe, and the requests' pooled connection is left alone."""
    wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
    if wrapper.vendor == "postgresql":
        wrapper.settings_dict = {**wrapper.settings_dict}
        options = {**wrapper.settings_dict.get("OPTIONS", {}), "connect_timeout": max(int(TIMEOUT), 1)}
        options["options"] = f"-c statement_timeout={int(TIMEOUT * 1000)}"
        wrapper.settings_dict["OPTIONS"] = options
    return wrapper


_migrated = False  # once fully migrated, a process stays so (new migrations come with new code)


def check_database() -> str:
    global _migrated
    wrapper = _probe_connection()
    try:
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as error:
            raise CheckFailed("unreachable") from error
        if not _migrated:
            executor = MigrationExecutor(wrapper)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if pending:
                raise CheckFailed(f"{len(pending)} migrations not applied")
            _migrated = True
        return "ok"
    finally:
        wrapper.close()
        # The migration recorder reads through this thread's own `default` connection.
        connections.close_all()


def check_broker() -> str:
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "max_retries": 0}
    options.update(socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT, transport_options=options) as broker:
            broker.ensure_connection(max_retries=1, timeout=int(TIMEOUT))
    except Exception as error:
        raise CheckFailed("unreachable") from error
    return "ok"


def check_cache() -> str:
    key, value = f"readyz:{uuid.uuid4().hex}", "1"
    try:
        cache = caches["default"]
        cache.set(key, value, timeout=10)
        answered = cache.get(key)
        cache.delete(key)
    except Exception as error:
        raise CheckFailed("unreachable") from error
    if answered != value:
        raise CheckFailed("does not keep values")
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": check_database, "broker": check_broker, "cache": check_cache}


def readiness() -> dict[str, str]:
    """Every check's outcome ("ok" or why not), run side by side, each bounded by TIMEOUT."""
    results: dict[str, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: pool.submit(check) for name, check in CHECKS.items()}
    deadline = time.monotonic() + TIMEOUT + 1
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(deadline - time.monotonic(), 0))
        except concurrent.futures.TimeoutError:
            results[name] = f"no answer within {TIMEOUT:g} s"
        except CheckFailed as failed:
            results[name] = str(failed)
            logger.warning("readiness_check_failed", check=name, reason=str(failed), error=repr(failed.__cause__))
        except Exception as error:
            results[name] = "failed"
            logger.exception("readiness_check_failed", check=name, error=repr(error))
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _probe_answer(status: int, body: dict[str, Any]) -> HttpResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


def healthz() -> HttpResponse:
    return _probe_answer(200, {"status": "ok"})


def readyz() -> HttpResponse:
    checks = readiness()
    failed = sorted(name for name, outcome in checks.items() if outcome != "ok")
    body: dict[str, Any] = {"status": "ready" if not failed else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    return _probe_answer(503 if failed else 200, body)


PROBES: dict[str, Callable[[], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers GET/HEAD of the exact probe paths before any other middleware; passes on the rest."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is None or request.method not in {"GET", "HEAD"}:
            return self.get_response(request)
        return probe()

"""Probes for orchestrators: /healthz and /readyz answer plain HTTP by the pod's address, without
a session, under production settings (DEBUG off, a secret key, ALLOWED_HOSTS=example.com), behind
gunicorn as deployed; nothing else is exposed that way. /readyz names what is down: a database
that is unreachable or not migrated, a broker or cache that does not answer (real private
PostgreSQL and Redis instances, stopped by the test).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from django.test import Client

from core import probes
from tests.processes import (
    free_port,
    manage,
    missing_binaries,
    private_folder,
    private_postgres,
    private_redis,
    python_process,
    wait_for,
)

BY_ADDRESS = {"Host": "10.1.2.3"}  # a probe by pod address: not a host the site is served under
METRICS_TOKEN = "metrics-" + "t" * 40
READY = {"status": "ready", "checks": {"database": "ok", "broker": "ok", "cache": "ok"}}


def production_env(*, database_url: str, queue_dir: Path, redis_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a production web process: no DEBUG, a strong key, one public host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_", "METRICS_", "SENTRY_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="production-" + "s" * 50,
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=database_url,
        CELERY_QUEUE_DIR=str(queue_dir),
        LOG_FORMAT="json",
        **extra,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@contextlib.contextmanager
def production_web(env: dict[str, str], log: Path) -> Iterator[str]:
    """gunicorn serving the project with `env`, on a free loopback port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with python_process(env, log, "-m", "gunicorn", "partnerinsights.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"):
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=60, what="gunicorn", log=log)
        yield base


def _answers(url: str) -> bool:
    try:
        return requests.get(url, headers=BY_ADDRESS, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=30, **kwargs)


def readyz(base: str) -> tuple[int, dict]:
    response = get(f"{base}/readyz", headers=BY_ADDRESS)
    return response.status_code, response.json()


@pytest.fixture
def scratch() -> Iterator[Path]:
    with private_folder() as folder:
        yield folder


def test_probes_answer_plain_http_by_pod_address_and_nothing_else_does(scratch):
    env = production_env(
        database_url=f"sqlite:///{scratch / 'db.sqlite3'}", queue_dir=scratch / "queue", METRICS_TOKEN=METRICS_TOKEN
    )
    manage(env, "migrate", "-v", "0")
    with production_web(env, scratch / "web.log") as base:
        health = get(f"{base}/healthz", headers=BY_ADDRESS)
        assert (health.status_code, health.json(), health.headers["Cache-Control"]) == (
            200,
            {"status": "ok"},
            "no-store",
        )
        assert requests.head(f"{base}/healthz", headers=BY_ADDRESS, timeout=30).status_code == 200
        assert readyz(base) == (200, READY)
        # The Prometheus scrape comes by address too, with its token.
        metrics = get(f"{base}/metrics", headers={**BY_ADDRESS, "Authorization": f"Bearer {METRICS_TOKEN}"})
        assert (metrics.status_code, metrics.headers["Content-Type"].split(";")[0]) == (200, "text/plain")
        assert get(f"{base}/metrics", headers=BY_ADDRESS).status_code == 401

        # Everything else still meets host validation and the HTTPS redirect.
        assert get(f"{base}/accounts/login/", headers=BY_ADDRESS).status_code == 400
        assert get(f"{base}/healthz/", headers=BY_ADDRESS).status_code == 400
        assert get(f"{base}/healthz?x=1", headers=BY_ADDRESS).status_code == 200  # same path, same answer
        assert requests.post(f"{base}/healthz", headers=BY_ADDRESS, timeout=30).status_code == 400
        assert get(f"{base}/admin/", headers=BY_ADDRESS).status_code == 400
        public = get(f"{base}/accounts/login/", headers={"Host": "example.com"})
        assert (public.status_code, public.headers["Location"]) == (301, "https://example.com/accounts/login/")


def test_readiness_names_a_database_that_is_not_migrated(scratch):
    env = production_env(database_url=f"sqlite:///{scratch / 'empty.sqlite3'}", queue_dir=scratch / "queue")
    with production_web(env, scratch / "web.log") as base:
        status, body = readyz(base)
        assert (status, body["status"], body["failed"]) == (503, "unavailable", ["database"])
        assert body["checks"]["database"].endswith("migrations not applied")
        assert int(body["checks"]["database"].split()[0]) > 20
        assert get(f"{base}/healthz", headers=BY_ADDRESS).status_code == 200  # alive, not ready


def test_readiness_gives_up_on_a_broker_that_never_answers(db, settings):
    """A Redis that accepts connections and never answers (hung, or a black-holed route)."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        response = Client().get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert response.json()["checks"]["broker"] in {"unreachable", f"no answer within {probes.TIMEOUT:g} s"}


@pytest.mark.postgresql
@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
    reason="runs where PostgreSQL and Redis are (CI sets DATABASE_URL and REDIS_URL)",
)
@pytest.mark.skipif(bool(missing_binaries()), reason=f"private instances: {missing_binaries()}")
def test_readiness_names_redis_and_postgresql_when_they_go_down(scratch):
    with private_postgres("pi_probes") as postgres, private_redis() as redis_url:
        with postgres.connect("postgres") as connection:
            connection.execute('CREATE DATABASE "pi_probes_empty"')
        env = production_env(database_url=postgres.url("pi_probes"), redis_url=redis_url, queue_dir=scratch / "q")
        manage(env, "migrate", "-v", "0")
        empty = {**env, "DATABASE_URL": postgres.url("pi_probes_empty")}
        with production_web(env, scratch / "web.log") as base, production_web(empty, scratch / "empty.log") as fresh:
            assert readyz(base) == (
                200,
                {"status": "ready", "checks": {"database": "ok", "broker": "ok", "cache": "ok"}},
            )
            status, body = readyz(fresh)
            assert (status, body["failed"]) == (503, ["database"])
            assert body["checks"]["database"].endswith("migrations not applied")

            redis.Redis.from_url(redis_url).shutdown(nosave=True)
            status, body = readyz(base)
            assert status == 503
            assert "broker" in body["failed"]
            assert "database" not in body["failed"]
            assert body["checks"]["broker"] == "unreachable"

            postgres.stop()
            status, body = readyz(base)
            assert status == 503
            assert {"database", "broker"} <= set(body["failed"])
            assert body["checks"]["database"] == "unreachable"
            assert "127.0.0.1" not in str(body)  # reasons name the part, never an address
            assert get(f"{base}/healthz", headers=BY_ADDRESS).status_code == 200

"""The deployment files, checked as files: no container engine runs here (`docker` is a client
only, images cannot be pulled), so `docker-compose.yml` is read with PyYAML and checked for the
promises of docs/operations.md, as are the Dockerfile, .dockerignore, gunicorn's configuration and
.env.example. The workers' and beat's health check commands run against real Celery processes;
tests/test_proxy.py runs the proxy configuration and gunicorn's for real.
"""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import RequestFactory

from core.clients import client_address
from tests.processes import ROOT, celery_process, private_folder, private_redis, project_env, wait_for

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
APP_SERVICES = {name for name, service in SERVICES.items() if service.get("image") == "partnerinsights:latest"}


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def env_example() -> dict[str, str]:
    """Every variable .env.example names, set or commented out, with its value."""
    pairs = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    return dict(pairs)


def test_the_services_are_the_documented_ones():
    workers = {"worker-recompute", "worker-imports", "worker-reports", "worker-collection", "worker-default"}
    assert set(SERVICES) == {"proxy", "migrate", "web", "beat", "db", "redis", *workers}
    assert {"migrate", "web", "beat", *workers} == APP_SERVICES


def test_every_long_running_service_has_a_healthcheck_and_restarts():
    for name, service in SERVICES.items():
        if name == "migrate":
            continue  # a one-off: compose waits for it to exit, not to be healthy
        assert service["restart"] == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert len(test) > 1, name
    assert SERVICES["db"]["healthcheck"]["test"][1] == "pg_isready"
    assert SERVICES["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "/proxy-health" in " ".join(SERVICES["proxy"]["healthcheck"]["test"])
    assert "/proc/1/cmdline" in " ".join(SERVICES["beat"]["healthcheck"]["test"])


def test_migrations_run_once_before_anything_that_reads_the_database():
    migrate = SERVICES["migrate"]
    assert command_of(migrate) == "python manage.py migrate --no-input"
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in APP_SERVICES - {"migrate"}:
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "migrate" not in command_of(SERVICES[name]), name
    assert SERVICES["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_exactly_one_beat_and_one_worker_per_named_queue():
    beats = [name for name, service in SERVICES.items() if re.search(r"\bbeat\b|\s-B\b|--beat", command_of(service))]
    assert beats == ["beat"]
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    queues = {}
    for name, service in SERVICES.items():
        found = re.search(r"celery -A partnerinsights worker -Q (\S+) -n (\w+)@%h", command_of(service))
        if found:
            queues[found[1]] = name
            assert found[1] == found[2], name  # the node is named after its queue,
            assert f"inspect ping -d {found[2]}@$$HOSTNAME" in service["healthcheck"]["test"][1], name  # and pinged
    assert set(queues) == set(settings.CELERY_QUEUE_NAMES)  # each queue exactly once (one -Q name each)


def test_uploads_are_a_volume_shared_by_the_web_and_the_imports_worker():
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"]["MEDIA_ROOT"] == "/data/media", name
    sharing = {name for name, service in SERVICES.items() if "media:/data/media" in service.get("volumes", [])}
    assert sharing == {"web", "worker-imports"}
    assert "media" in COMPOSE["volumes"]


def test_only_the_proxy_is_published_and_the_cache_is_apart_from_the_broker():
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy"}
    environment = SERVICES["web"]["environment"]
    assert environment["REDIS_URL"] != environment["CACHE_URL"]
    mounts = SERVICES["proxy"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    assert "./deploy/certs:/etc/nginx/certs:ro" in mounts


def test_env_example_lists_every_variable_with_placeholders_only():
    example = env_example()
    read = set(
        re.findall(r"""(?:environ\.get\(|environ\[|env_bool\(|env_list\()\s*["']([A-Z][A-Z0-9_]+)""", _sources())
    )
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    read |= {name for service in SERVICES.values() for name in service.get("environment", {})}
    read -= {"POSTGRES_DB"}  # the database image's own, fixed in the file
    read -= {"EMAIL_BACKEND"}  # read only to refuse it at start-up: EMAIL_URL replaced it
    assert read - set(example) == set()
    assert "change-me" in example["SECRET_KEY"]
    assert "change-me" in example["POSTGRES_PASSWORD"]
    assert example["DEBUG"] == "false"


def _sources() -> str:
    files = [ROOT / "partnerinsights" / "settings.py", ROOT / "partnerinsights" / "gunicorn.conf.py"]
    return "\n".join(path.read_text() for path in files)


def test_sign_in_throttling_reads_the_client_the_proxy_names(settings):
    """As deploy/nginx.conf sends it (X-Forwarded-For overwritten with the client's address), with
    .env.example's TRUSTED_PROXY_COUNT applied as settings.py applies it."""
    settings.TRUSTED_PROXY_COUNT = int(env_example()["TRUSTED_PROXY_COUNT"])
    proxied = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="172.30.0.5")
    assert client_address(proxied) == "203.0.113.9"
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in (ROOT / "deploy" / "nginx.conf").read_text()


def test_the_image_runs_as_a_user_without_build_tools_or_local_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == ["python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert not re.search(r"apt-get install|build-essential|gcc", dockerfile)
    assert "DEBUG=false SECRET_KEY=collectstatic-only-not-used-at-runtime python manage.py collectstatic" in dockerfile
    assert 'CMD ["gunicorn", "--config", "partnerinsights/gunicorn.conf.py", "partnerinsights.wsgi"]' in dockerfile
    ignored = set((ROOT / ".dockerignore").read_text().split())
    needed = {".env", "db.sqlite3*", ".venv", "var/", "media/", ".git", "**/__pycache__", "bench/results", "tests/"}
    assert needed | {"deploy/certs/", ".pytest_cache", ".hypothesis", "staticfiles/"} <= ignored
    assert not {"requirements.txt", "manage.py", "partnerinsights", "partnerinsights/", "static/"} & ignored


def test_gunicorn_config_suits_the_workload():
    config = runpy.run_path(str(ROOT / "partnerinsights" / "gunicorn.conf.py"))
    assert config["worker_class"] == "sync"  # behind the buffering proxy (tests/test_proxy.py)
    assert config["workers"] >= 2
    assert 30 <= config["timeout"] < _proxy_read_timeout()
    assert 0 < config["graceful_timeout"] < int(SERVICES["web"]["stop_grace_period"].removesuffix("s"))
    assert config["max_requests"] > 0
    assert 0 < config["max_requests_jitter"] < config["max_requests"]
    assert (config["accesslog"], config["errorlog"]) == ("-", "-")
    assert config["forwarded_allow_ips"]


def _proxy_read_timeout() -> int:
    return int(re.search(r"proxy_read_timeout (\d+)s;", (ROOT / "deploy" / "nginx.conf").read_text())[1])


def test_the_proxys_body_limit_is_the_upload_limit():
    limit = re.search(r"client_max_body_size (\d+)m;", (ROOT / "deploy" / "nginx.conf").read_text())
    assert int(limit[1]) * 1024 * 1024 == settings.IMPORT_MAX_UPLOAD_BYTES


@pytest.mark.parametrize("path", ["deploy/certs/README.md", "deploy/nginx.conf", ".env.example"])
def test_the_files_the_docs_name_exist(path):
    assert (ROOT / path).is_file()
    assert f"`{path}`" in (ROOT / "docs" / "operations.md").read_text()


# --- the workers' and beat's health checks, run against real processes -------------------------------

needs_redis = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


def compose_command(service: str) -> list[str]:
    """The service's command as the container runs it, compose's `${VAR:-default}` taken as the default."""
    command = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command_of(SERVICES[service]))
    words = shlex.split(command)
    assert words[:3] == ["celery", "-A", "partnerinsights"]
    return words[3:]


def healthcheck(service: str, env: dict[str, str], *, pid: int | None = None, ping_timeout: int | None = None) -> int:
    """The service's health check command, run here (as CMD-SHELL or CMD); its exit status."""
    kind, *test = SERVICES[service]["healthcheck"]["test"]
    if pid is not None:  # in the container the service is PID 1
        test = [part.replace("/proc/1/", f"/proc/{pid}/") for part in test]
    if ping_timeout is not None:  # waiting for a node that will not answer: not 10 s
        test = [part.replace("--timeout 10", f"--timeout {ping_timeout}") for part in test]
    argv = ["/bin/sh", "-c", test[0].replace("$$", "$")] if kind == "CMD-SHELL" else test
    argv = [sys.executable if word == "python" else word for word in argv]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=60).returncode


@pytest.fixture
def celery_env() -> Iterator[dict[str, str]]:
    with private_redis() as url, private_folder() as folder:
        env = project_env(database_url=f"sqlite:///{folder / 'unused.sqlite3'}", redis_url=url)
        bin_folder = str(Path(sys.executable).parent)  # `celery` as on the image's PATH
        yield {
            **env,
            "CELERY_QUEUE_DIR": str(folder),
            "HOSTNAME": socket.gethostname(),
            "PATH": f"{bin_folder}:/usr/bin:/bin",
        }


WORKERS = ["worker-recompute", "worker-imports", "worker-reports", "worker-collection", "worker-default"]


@needs_redis
def test_each_workers_health_check_pings_its_own_node(celery_env, tmp_path):
    with contextlib.ExitStack() as running:
        logs = {service: tmp_path / f"{service}.log" for service in WORKERS}
        workers = {
            service: running.enter_context(celery_process(celery_env, log, *compose_command(service)))
            for service, log in logs.items()
        }
        for service, log in logs.items():
            wait_for(lambda log=log: "ready." in log.read_text(), timeout=60, what=service, log=log)
        assert [healthcheck(service, celery_env) for service in WORKERS] == [0] * len(WORKERS)

        workers["worker-recompute"].send_signal(signal.SIGTERM)  # a warm shutdown: it stops answering
        workers["worker-recompute"].wait(timeout=30)
        assert healthcheck("worker-recompute", celery_env, ping_timeout=2) != 0
        assert healthcheck("worker-default", celery_env) == 0  # its node was never the one answering


@needs_redis
def test_the_beat_health_check_is_a_process_check(celery_env, tmp_path):
    log = tmp_path / "beat.log"
    with celery_process(celery_env, log, *compose_command("beat")) as beat:
        wait_for(lambda: "beat: Starting" in log.read_text(), timeout=60, what="beat", log=log)
        assert healthcheck("beat", celery_env, pid=beat.pid) == 0
        os.kill(beat.pid, signal.SIGSTOP)
        try:
            assert healthcheck("beat", celery_env, pid=beat.pid) != 0
        finally:
            os.kill(beat.pid, signal.SIGCONT)

"""The deployment's proxy for real: Debian's nginx runs the repository's `deploy/nginx.conf` (only
its addresses and certificate paths moved to loopback and a scratch folder) in front of gunicorn
started with `partnerinsights/gunicorn.conf.py` and production settings (DEBUG off).

Slow clients, each sending one header line every 2 s, hold a sync worker each when they reach
gunicorn directly, so a normal request waits for all of them; through nginx it is answered while
they trickle. Skipped where nginx is missing, except in CI (`REQUIRE_NGINX=1`, set by .ci/run,
which installs it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.processes import ROOT, free_port, private_folder, python_process, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
pytestmark = pytest.mark.skipif(
    not os.path.exists(NGINX) and not os.environ.get("REQUIRE_NGINX"),
    reason="needs Debian's nginx (.ci/run installs it)",
)

WORKERS = 2  # gunicorn's sync workers here: fewer than the slow clients
SLOW_CLIENTS, SLOW_LINES, SLOW_PAUSE = 6, 3, 2.0  # each trickles for about 6 s
GUNICORN_CONFIG = "partnerinsights/gunicorn.conf.py"


@dataclass(frozen=True)
class Stack:
    folder: Path
    gunicorn_port: int
    http_port: int
    https_port: int

    @property
    def cert(self) -> str:
        return str(self.folder / "certs" / "fullchain.pem")

    def https(self, path: str) -> str:
        return f"https://127.0.0.1:{self.https_port}{path}"

    def direct(self, path: str) -> str:
        return f"http://127.0.0.1:{self.gunicorn_port}{path}"


def loopback_site(conf: str, *, folder: Path, http_port: int, https_port: int, upstream_port: int) -> str:
    """`deploy/nginx.conf` for this machine: every change is a literal replacement that must
    match, so the test breaks loudly when the file changes shape."""
    moves = {
        "server web:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80 default_server;": f"listen 127.0.0.1:{http_port} default_server;",
        "listen 443 ssl default_server;": f"listen 127.0.0.1:{https_port} ssl default_server;",
        "/etc/nginx/certs/": f"{folder}/certs/",
        "/var/log/nginx/access.log": f"{folder}/access.log",
    }
    for old, new in moves.items():
        assert old in conf, f"deploy/nginx.conf no longer holds {old!r}: update tests/test_proxy.py"
        conf = conf.replace(old, new)
    return conf


def main_config(folder: Path) -> str:
    """What the official image's /etc/nginx/nginx.conf does around conf.d/, with paths in `folder`."""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/access.log;
{temp}
    include {folder}/site.conf;
}}
"""


def write_nginx_config(folder: Path, *, http_port: int, https_port: int, upstream_port: int) -> Path:
    certs = folder / "certs"
    certs.mkdir()
    key, cert = certs / "privkey.pem", certs / "fullchain.pem"
    self_signed = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [OPENSSL, *self_signed, "-keyout", str(key), "-out", str(cert), *names], check=True, capture_output=True
    )
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    ports = {"http_port": http_port, "https_port": https_port, "upstream_port": upstream_port}
    (folder / "site.conf").write_text(loopback_site(site, folder=folder, **ports))
    (folder / "nginx.conf").write_text(main_config(folder))
    folder.chmod(0o755)  # nginx's workers (nobody, under root) reach their temporary folders through it
    return folder / "nginx.conf"


def nginx_command(config: Path, *extra: str) -> list[str]:
    return [NGINX, "-p", str(config.parent), "-c", str(config), "-e", str(config.parent / "error.log"), *extra]


@contextlib.contextmanager
def nginx(config: Path) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(nginx_command(config, "-g", "daemon off;"), stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # fast shutdown: the master stops its workers
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def production_env(folder: Path) -> dict[str, str]:
    """A production web process: DEBUG off, collected static files, a database nobody reads here."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "SECURE_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{folder / 'unused.sqlite3'}",
        CELERY_QUEUE_DIR=str(folder / "celery"),
        WEB_CONCURRENCY=str(WORKERS),
        LOG_LEVEL="WARNING",
    )
    return env


def _answers(url: str, **kwargs: object) -> bool:
    try:
        return requests.get(url, timeout=5, allow_redirects=False, **kwargs).status_code < 500
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with private_folder() as folder:
        env = production_env(folder)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
        )
        ports = {"http_port": free_port(), "https_port": free_port(), "upstream_port": free_port()}
        config = write_nginx_config(folder, **ports)
        bind = f"127.0.0.1:{ports['upstream_port']}"
        gunicorn = ("-m", "gunicorn", "--config", GUNICORN_CONFIG, "--bind", bind, "partnerinsights.wsgi")
        with python_process(env, folder / "gunicorn.log", *gunicorn), nginx(config):
            running = Stack(folder, ports["upstream_port"], ports["http_port"], ports["https_port"])
            log = folder / "gunicorn.log"
            wait_for(lambda: _answers(running.direct("/accounts/login/")), timeout=60, what="gunicorn", log=log)
            proxy = running.https("/accounts/login/")
            wait_for(lambda: _answers(proxy, verify=running.cert), timeout=30, what="nginx", log=folder / "error.log")
            yield running


def test_the_repositorys_proxy_config_parses_with_debians_nginx(stack):
    result = subprocess.run(nginx_command(stack.folder / "nginx.conf", "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


class SlowClients:
    """Sockets that each send a request's header one line every SLOW_PAUSE seconds; `finished` is
    set once every one of them has sent its last line."""

    def __init__(self, port: int, *, tls_cert: str | None = None) -> None:
        self.port, self.tls_cert = port, tls_cert
        self.finished = threading.Event()
        self.connected = threading.Barrier(SLOW_CLIENTS + 1)
        self.threads = [threading.Thread(target=self._trickle, daemon=True) for _ in range(SLOW_CLIENTS)]

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        threading.Thread(target=self._watch, daemon=True).start()
        self.connected.wait(timeout=30)
        time.sleep(0.5)  # their first lines are read: the direct server's workers have taken two of them
        return self

    def __exit__(self, *exc: object) -> None:
        self.finished.wait(timeout=SLOW_LINES * SLOW_PAUSE + 30)

    def _trickle(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        if self.tls_cert:
            sock = ssl.create_default_context(cafile=self.tls_cert).wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            sock.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.connected.wait(timeout=30)
            for line in range(SLOW_LINES):
                time.sleep(SLOW_PAUSE)
                sock.sendall(f"X-Slow-{line}: still here\r\n".encode())
            sock.sendall(b"\r\n")

    def _watch(self) -> None:
        for thread in self.threads:
            thread.join()
        self.finished.set()


def test_slow_clients_starve_gunicorn_alone_but_not_behind_nginx(stack):
    with SlowClients(stack.https_port, tls_cert=stack.cert) as slow:
        page = requests.get(stack.https("/accounts/login/"), verify=stack.cert, timeout=60)
        answered_while_they_trickle = not slow.finished.is_set()
    assert page.status_code == 200
    assert answered_while_they_trickle

    with SlowClients(stack.gunicorn_port) as slow:
        page = requests.get(stack.direct("/accounts/login/"), timeout=60, allow_redirects=False)
        answered_while_they_trickle = not slow.finished.is_set()
    assert page.status_code == 301  # answered at last (to HTTPS: nothing said it came through TLS)
    assert not answered_while_they_trickle


def test_the_proxy_tells_the_app_the_scheme_and_the_client_address(stack):
    # Through TLS the app sees X-Forwarded-Proto: https (no redirect); directly, plain HTTP is redirected.
    assert requests.get(stack.https("/accounts/login/"), verify=stack.cert, timeout=10).status_code == 200
    assert requests.get(stack.direct("/accounts/login/"), timeout=10, allow_redirects=False).status_code == 301
    # A client at 127.0.0.2 forging X-Forwarded-For: the app is told 127.0.0.2 (nginx itself is 127.0.0.1).
    with tls_socket(stack, source="127.0.0.2") as client:
        client.sendall(b"GET /accounts/password/reset/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
    log = stack.folder / "gunicorn.log"
    line = wait_for(lambda: _log_line(log, "/accounts/password/reset/"), timeout=10, what="the access log line")
    assert line.startswith("127.0.0.2 127.0.0.1 ")
    assert "6.6.6.6" not in line


def test_access_logs_hold_no_query_string_and_no_token_of_a_password_link(stack):
    links = ("/accounts/reset/MQ/cb5-0f1e2d3c4b5a69788796a5b4c3d2e1f0/", "/accounts/invitation/eyJpIjoxfQ:1xa:sig/")
    for path in links:
        requests.get(stack.https(f"{path}?next=/leaked-query"), verify=stack.cert, timeout=10, allow_redirects=False)
    logs = {name: stack.folder / name for name in ("gunicorn.log", "access.log")}
    for name, log in logs.items():
        wait_for(lambda log=log: log.read_text().count("[redacted] HTTP/1.1") == 2, timeout=10, what=f"{name}'s lines")
        text = log.read_text()
        assert "/accounts/reset/[redacted]" in text
        assert "/accounts/invitation/[redacted]" in text
        for secret in ("0f1e2d3c4b5a69788796a5b4c3d2e1f0", "eyJpIjoxfQ", "leaked-query"):
            assert secret not in text, name


def tls_socket(stack: Stack, *, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=10, source_address=(source, 0))
    return ssl.create_default_context(cafile=stack.cert).wrap_socket(raw, server_hostname="127.0.0.1")


def _log_line(log: Path, path: str) -> str:
    return next((line for line in log.read_text().splitlines() if f"GET {path} " in line), "")


def test_plain_http_is_redirected_to_https_except_the_proxys_health(stack):
    health = requests.get(f"http://127.0.0.1:{stack.http_port}/proxy-health", timeout=10)
    assert (health.status_code, health.text) == (200, "ok\n")
    page = requests.get(f"http://127.0.0.1:{stack.http_port}/customers/", timeout=10, allow_redirects=False)
    assert page.status_code == 301
    assert page.headers["Location"] == "https://127.0.0.1/customers/"


@pytest.mark.parametrize(("path", "content_type"), [("/api/imports/", "application/json"), ("/imports/", "text/plain")])
def test_an_upload_declared_over_the_limit_is_refused_before_its_body(stack, path, content_type):
    declared = settings.IMPORT_MAX_UPLOAD_BYTES + 1
    with tls_socket(stack) as raw:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/zip\r\n"
        raw.sendall(f"{head}Content-Length: {declared}\r\n\r\n".encode() + b"PK")  # 2 bytes of 200 MiB
        answer = raw.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 ")
    assert f"Content-Type: {content_type}" in answer
    assert "larger than the limit of 200 MiB; nothing was imported." in answer

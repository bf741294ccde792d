"""Real processes for the tests that need them: private PostgreSQL and Redis instances that a
test may stop or kill, Celery workers and beats, management commands run as in production.

Everything listens on loopback ports chosen free at start; every process started here is
stopped by the context manager that started it. The machine's shared services are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
QUEUES = ("default", "recompute", "imports", "reports", "collection")  # settings.CELERY_QUEUE_NAMES


def missing_binaries() -> str:
    """Why private instances cannot start here ("" when they can)."""
    needed = [PG_BIN / "initdb", PG_BIN / "pg_ctl"]
    missing = [str(path) for path in needed if not path.exists()]
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    return f"missing {', '.join(missing)}" if missing else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, log: Path | None = None) -> object:
    """Polls `condition` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{tail}")


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pi-faults-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), on a free loopback port.
    As root, the server runs as the `postgres` OS user, which owns the folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pi-faults-pg-"))
        self.data, self.log, self.port = self.folder / "data", self.folder / "server.log", free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        options = ("-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), *options)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session at once (their transactions roll back); `immediate` is a crash."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=autocommit, connect_timeout=5)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(database: str) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        with server.connect("postgres") as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of its own, without persistence; yields its URL (database 0)."""
    folder = tempfile.mkdtemp(prefix="pi-faults-redis-")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*command, "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        wait_for(lambda: _answers(client), timeout=10, what="the private redis-server")
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def project_env(*, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production process of this project, pointed at the given services."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    return {**env, "DEBUG": "true", "DATABASE_URL": database_url, "REDIS_URL": redis_url, **extra}


def manage(env: dict[str, str], *args: str) -> str:
    """Runs a management command as in production; returns its stderr (fails on a non-zero exit)."""
    return manage_all(env, args)[0]


def manage_all(env: dict[str, str], *commands: tuple[str, ...]) -> list[str]:
    """Runs management commands side by side (each in its own process); returns their stderr."""
    running = [
        subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    outputs = [process.communicate(timeout=120) for process in running]
    for args, process, (out, err) in zip(commands, running, outputs, strict=True):
        assert process.returncode == 0, f"manage.py {' '.join(args)} failed:\n{out}\n{err}"
    return [err for _, err in outputs]


@contextlib.contextmanager
def python_process(env: dict[str, str], log: Path, *arguments: str) -> Iterator[subprocess.Popen]:
    """`python <arguments>` in the project, in a session of its own, output in `log`; on exit the
    whole session (a worker's pool children included) is SIGKILLed."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def celery_process(
    env: dict[str, str], log: Path, *arguments: str
) -> contextlib.AbstractContextManager[subprocess.Popen]:
    """`celery -A partnerinsights <arguments>`, as `python_process`."""
    return python_process(env, log, "-m", "celery", "-A", "partnerinsights", *arguments)


def celery_worker(
    env: dict[str, str], log: Path, *, pool: str = "solo", concurrency: int = 1, queue: str = ",".join(QUEUES)
) -> contextlib.AbstractContextManager[subprocess.Popen]:
    return celery_process(
        env,
        log,
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-Q",
        queue,
        "-n",
        f"{queue.replace(',', '-')}-{os.getpid()}@%h",
        "--loglevel=info",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    )


@contextlib.contextmanager
def web_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """The web application behind gunicorn, as deployed, on a free loopback port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with python_process(env, log, "-m", "gunicorn", "partnerinsights.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"):
        wait_for(lambda: _serves(f"{base}/accounts/login/"), timeout=60, what="gunicorn", log=log)
        yield base


def _serves(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False

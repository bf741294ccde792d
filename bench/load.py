#!/usr/bin/env python3
"""The load test: N concurrent staff users against gunicorn on loopback, for a fixed duration.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pi_load .venv/bin/python bench/load.py --prepare S

Serves the database named by DATABASE_URL with gunicorn as production does (DEBUG off, a secret
key, allowed hosts, HTTPS redirect on, collected and compressed static files), on a free port of
127.0.0.1, as if behind a TLS proxy (`X-Forwarded-Proto: https`). Each simulated user signs in
through the login form as one of the demo partner's staff and walks the customer list, one
customer's insights, the portfolio analytics and the family-grain CSV export once (the warm-up);
then, for --duration seconds, walks again and again, signing in again every 5 walks. Counted as
errors: any unexpected status (every 5xx), a failed sign-in, a broken connection or timeout, and
any response holding the second partner's marker (the preparation renames its customers
`Northwind-only …`). The RSS of every gunicorn worker is sampled throughout; "flat" compares the
peak of the measured load's first half with its second half's. Prints one table and writes JSON
under bench/results/.

`--prepare XS|S` first migrates an empty database and generates the two demo partners (S: 200
customers, 100,000 users, 35 days, like the benchmark's S; about 10 minutes on 2 cores); without
it the database must hold them already. The database's name must contain "load": the second
partner's customers are renamed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import NotRequired, TypedDict
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MARKER = "Northwind-only"  # the second partner's customers' names start with it (mark_second_partner)
FOREIGN_MARKERS = (MARKER, "Northwind Solutions")
ENDPOINTS = ("login", "customers", "insights", "analytics", "export")
SKIPPABLE = ("insights", "analytics", "export")
WALKS_PER_SESSION = 5  # a user signs in again (a new session) after this many walks
REQUEST_TIMEOUT = 120.0
SAMPLE_EVERY = 0.5  # seconds between two RSS samples
WARM_UP_TIMEOUT = 600.0  # seconds for every user's first walk  # seconds; a request slower than this is an error


@dataclass(frozen=True)
class DataSize:
    customers: int
    users: int
    days: int = 35
    metrics_days: int = 1


SIZES = {"XS": DataSize(8, 240), "S": DataSize(200, 100_000)}


# --- the server -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def production_env(database_url: str, port: int) -> dict[str, str]:
    """The environment of a production web process (SPEC §5), on loopback."""
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECURE_SSL_REDIRECT"}}
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=HOST,
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="partnerinsights.settings",
        LOG_LEVEL="WARNING",
    )
    return env


def collect_static(env: dict[str, str]) -> None:
    """What the image does before serving: the compressed, hashed static files and their manifest."""
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)


@contextlib.contextmanager
def gunicorn(database_url: str, *, workers: int = 3, timeout: int = 30) -> Iterator[Server]:
    """gunicorn serving `database_url` on a free loopback port; stopped (then killed) on exit."""
    port = free_port()
    env = production_env(database_url, port)
    collect_static(env)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "partnerinsights.wsgi",
            f"--bind={HOST}:{port}",
            f"--workers={workers}",
            f"--timeout={timeout}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    server = Server(process, port)
    try:
        server.wait_ready(workers)
        yield server
    finally:
        server.stop()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"https://{HOST}:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's children (gunicorn's workers), from /proc."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        pids.append(int(entry.name))
        return sorted(pids)

    def wait_ready(self, workers: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                status = Client(self).get("/accounts/login/").status
                if status == 200 and len(self.worker_pids()) == workers:
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- one user ---------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Client:
    """A browser-like client: its own cookies, one connection per request, as if behind a TLS proxy.

    The cookies are `Secure` (DEBUG off), so they are kept here rather than in a cookie jar that
    would refuse to send them over the loopback's plain HTTP.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Response:
        headers = {
            "Host": f"{HOST}:{self.server.port}",
            "X-Forwarded-Proto": "https",
            "User-Agent": "partner-insights-load",
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.server.base,
                "Referer": self.server.base + path,
            }
        connection = http.client.HTTPConnection(HOST, self.server.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            raw = connection.getresponse()
            response = Response(raw.status, raw.msg, raw.read())
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def login(self, username: str, password: str) -> Response:
        self.cookies.clear()
        form_page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page.text)
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1) if token else ""}
        return self.request("POST", "/accounts/login/", form)


# --- the run ----------------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ENDPOINTS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    samples: list[str] = field(default_factory=list)  # the first few errors, described
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if error:
                self.errors[endpoint] += 1
                if len(self.samples) < 20:
                    self.samples.append(f"{endpoint}: {error}")


def check(endpoint: str, response: Response) -> str | None:
    """What is wrong with a response of `endpoint`, if anything."""
    if endpoint == "login":
        if response.status != 302 or response.headers.get("Location") != "/customers/":
            return f"sign-in failed: {response.status} {response.headers.get('Location', '')}"
    elif response.status != 200:
        return f"status {response.status}"
    text = response.text
    for marker in FOREIGN_MARKERS:
        if marker in text:
            return f"the other partner's marker {marker!r} in the response"
    return None


@dataclass
class Phases:
    """Warm-up (every user signs in and walks once), then `duration` seconds of measured load."""

    users: int
    duration: float
    measured_from: float = 0.0  # time.monotonic() when the measured load began
    deadline: float = 0.0
    warm: threading.Barrier = field(init=False)

    def __post_init__(self) -> None:
        self.warm = threading.Barrier(self.users, action=self._start)

    def _start(self) -> None:
        self.measured_from = time.monotonic()
        self.deadline = self.measured_from + self.duration


class User(threading.Thread):
    """One staff member: signs in and walks once (warm-up), then walks again and again until the end."""

    def __init__(
        self, server: Server, stats: Stats, login: tuple[str, str], phases: Phases, seed: int, skip: frozenset[str]
    ) -> None:
        super().__init__(daemon=True)
        self.skip = skip
        self.client = Client(server)
        self.stats, self.login, self.phases = stats, login, phases
        self.random = random.Random(seed)  # noqa: S311 (which customer to open, not a secret)
        self.customer_ids: list[str] = []
        self.signed_in = False

    def timed(self, endpoint: str, call: Callable[[], Response]) -> Response | None:
        started = time.perf_counter()
        try:
            response = call()
            error = check(endpoint, response)
        except (OSError, http.client.HTTPException) as exc:
            response, error = None, f"{type(exc).__name__}: {exc}"
        self.stats.record(endpoint, time.perf_counter() - started, error)
        return None if error else response

    def run(self) -> None:
        self.session_walk(0)
        self.phases.warm.wait(timeout=WARM_UP_TIMEOUT)
        walks = 1
        while time.monotonic() < self.phases.deadline:
            if not self.session_walk(walks):
                time.sleep(0.5)  # a failed sign-in is counted; do not hammer
            walks += 1

    def session_walk(self, walks: int) -> bool:
        """One walk, signing in first (a new session) when needed; False when the sign-in failed."""
        if not self.signed_in or walks % WALKS_PER_SESSION == 0:
            self.signed_in = self.timed("login", lambda: self.client.login(*self.login)) is not None
            if not self.signed_in:
                return False
        self.walk()
        return True

    def walk(self) -> None:
        listing = self.timed("customers", lambda: self.client.get("/customers/"))
        if listing and not self.customer_ids:
            self.customer_ids = sorted(set(re.findall(r'href="/customers/(\d+)/insights/"', listing.text)))
        if self.customer_ids and "insights" not in self.skip:
            customer = self.random.choice(self.customer_ids)
            self.timed("insights", lambda: self.client.get(f"/customers/{customer}/insights/"))
        if "analytics" not in self.skip:
            self.timed("analytics", lambda: self.client.get("/analytics/"))
        if "export" not in self.skip:
            self.timed("export", lambda: self.client.get("/analytics/export.csv?grain=family"))


class MemorySampler(threading.Thread):
    """RSS of each gunicorn worker, every `interval` seconds, until stopped."""

    def __init__(self, server: Server, interval: float = SAMPLE_EVERY) -> None:
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, dict[int, int]]] = []  # (seconds since start, {pid: RSS KiB})
        self.done = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        started = self.started
        while not self.done.is_set():
            sample = {}
            for pid in self.server.worker_pids():
                with contextlib.suppress(OSError):
                    sample[pid] = rss_kib(pid)
            self.samples.append((time.monotonic() - started, sample))
            self.done.wait(self.interval)


class MemorySummary(TypedDict):
    workers: int
    first_half_peak_mib: float
    second_half_peak_mib: float
    growth_mib: float
    per_worker_peaks_mib: dict[str, list[float]]
    timeline_mib: list[float]


def memory_summary(samples: list[tuple[float, dict[int, int]]], since: float) -> MemorySummary:
    """Peak total worker RSS in the first and the second half of the measured load (after `since`
    seconds of warm-up), in MiB, and the total every second of the whole run."""
    middle = (since + samples[-1][0]) / 2
    halves = [[s for t, s in samples if since <= t < middle], [s for t, s in samples if t >= middle]]
    peaks = [max(sum(sample.values()) for sample in half) / 1024 for half in halves]
    pids = sorted({pid for _, sample in samples for pid in sample})
    per_worker = {
        str(pid): [round(max((s.get(pid, 0) for s in half), default=0) / 1024, 1) for half in halves] for pid in pids
    }
    return {
        "workers": len(pids),
        "first_half_peak_mib": round(peaks[0], 1),
        "second_half_peak_mib": round(peaks[1], 1),
        "growth_mib": round(peaks[1] - peaks[0], 1),
        "per_worker_peaks_mib": per_worker,
        "timeline_mib": [round(sum(sample.values()) / 1024, 1) for _, sample in samples[:: round(1 / SAMPLE_EVERY)]],
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else sum(values)


class EndpointFigures(TypedDict):
    requests: int
    errors: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None


class LoadResult(TypedDict):
    """The figures of a load run, as written to its JSON file."""

    users: int
    duration_s: float
    skipped: list[str]
    endpoints: dict[str, EndpointFigures]
    errors: int
    error_samples: list[str]
    warm_up_s: float
    memory: MemorySummary
    workers_replaced: bool
    threads_still_running: int
    facts: NotRequired[dict[str, object]]  # added by main()


def run_load(
    server: Server, logins: list[tuple[str, str]], *, users: int, duration: float, skip: frozenset[str] = frozenset()
) -> LoadResult:
    """`users` simulated users (cycling through `logins`) for `duration` seconds, leaving out the
    pages in `skip`; the figures."""
    stats, sampler, phases = Stats(), MemorySampler(server), Phases(users, duration)
    workers_before = server.worker_pids()
    sampler.start()
    threads = [User(server, stats, logins[i % len(logins)], phases, seed=i, skip=skip) for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WARM_UP_TIMEOUT + duration + REQUEST_TIMEOUT + 30)
    sampler.done.set()
    sampler.join()
    endpoints: dict[str, EndpointFigures] = {
        name: {
            "requests": len(times),
            "errors": stats.errors[name],
            "p50_ms": round(statistics.median(times) * 1000) if times else None,
            "p95_ms": round(p95(times) * 1000) if times else None,
            "max_ms": round(max(times) * 1000) if times else None,
        }
        for name, times in stats.latencies.items()
    }
    return {
        "users": users,
        "duration_s": duration,
        "skipped": sorted(skip),
        "endpoints": endpoints,
        "errors": sum(stats.errors.values()),
        "error_samples": stats.samples,
        "warm_up_s": round(phases.measured_from - sampler.started, 1),
        "memory": memory_summary(sampler.samples, since=phases.measured_from - sampler.started),
        "workers_replaced": workers_before != server.worker_pids(),
        "threads_still_running": sum(thread.is_alive() for thread in threads),
    }


def print_table(result: LoadResult) -> None:
    print(f"\n{result['users']} users for {result['duration_s']:g} s after a warm-up of {result['warm_up_s']:g} s")
    if result["skipped"]:
        print("left out:", ", ".join(result["skipped"]))
    print(f"{'endpoint':12} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    print("-" * 57)
    for name, row in result["endpoints"].items():
        cells = [row["requests"], row["errors"], row["p50_ms"], row["p95_ms"], row["max_ms"]]
        widths = (9, 7, 8, 8, 8)
        print(f"{name:12} " + " ".join(f"{'' if c is None else c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    memory = result["memory"]
    print(
        f"\nworker RSS (total of {memory['workers']}): first half peak {memory['first_half_peak_mib']} MiB, "
        f"second half peak {memory['second_half_peak_mib']} MiB, growth {memory['growth_mib']} MiB"
    )
    for sample in result["error_samples"]:
        print("error:", sample)


# --- data -------------------------------------------------------------------------------------------------


def prepare(size: DataSize) -> None:
    """Migrate, generate both demo partners at `size` and mark the second partner's customers."""
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django_scopes import scopes_disabled

    from customers.models import Customer

    call_command("migrate", verbosity=0)
    with scopes_disabled():
        if Customer.objects.filter(partner__slug="demo").exists():
            raise CommandError("The demo partner has data already: --prepare needs an empty database.")
    call_command(
        "generate_demo_data",
        f"--customers={size.customers}",
        f"--users={size.users}",
        f"--days={size.days}",
        f"--metrics-days={size.metrics_days}",
    )
    mark_second_partner()


def mark_second_partner() -> int:
    """Rename Northwind's customers `Northwind-only <name>`: its demo customers reuse Contoso's names,
    so only a marked name seen by Contoso's staff proves a leak."""
    from django.db.models import Value
    from django.db.models.functions import Concat
    from django_scopes import scopes_disabled

    from customers.models import Customer

    with scopes_disabled():
        customers = Customer.objects.filter(partner__slug="northwind").exclude(name__startswith=MARKER)
        return customers.update(name=Concat(Value(MARKER + " "), "name"))


def demo_logins() -> list[tuple[str, str]]:
    from imports.management.commands.generate_demo_data import DEMO_PASSWORD, DEMO_STAFF

    return [(email, DEMO_PASSWORD) for email in DEMO_STAFF.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60, help="Seconds of load.")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the image runs 3).")
    parser.add_argument(
        "--skip", action="append", default=[], choices=SKIPPABLE, help="Leave a page out of the walk (repeatable)."
    )
    parser.add_argument("--prepare", choices=SIZES, help="Generate the demo data at this size first.")
    parser.add_argument("--output", type=Path, help="The JSON file (default: bench/results/load-<time>.json).")
    args = parser.parse_args(argv)

    database_url = os.environ.get("DATABASE_URL", "")
    if "load" not in database_url.rsplit("/", 1)[-1]:
        parser.error('point DATABASE_URL at a PostgreSQL database whose name contains "load"')
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnerinsights.settings")
    os.environ.setdefault("DEBUG", "true")  # this process only prepares; the server runs with DEBUG off
    import django

    django.setup()
    from django.core.management.base import CommandError

    if args.prepare:
        try:
            prepare(SIZES[args.prepare])
        except CommandError as exc:
            parser.error(str(exc))
    mark_second_partner()
    with gunicorn(database_url, workers=args.workers) as server:
        result = run_load(server, demo_logins(), users=args.users, duration=args.duration, skip=frozenset(args.skip))
    result["facts"] = facts()
    print_table(result)
    output = args.output or ROOT / "bench" / "results" / f"load-{time.strftime('%Y%m%dT%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nWritten to {output}")
    return 1 if result["errors"] else 0


def facts() -> dict[str, object]:
    from django_scopes import scopes_disabled

    from bench.run import machine_facts
    from customers.models import Customer, EndUser

    with scopes_disabled():
        demo = {"partner__slug": "demo"}
        return {
            **machine_facts(),
            "customers": Customer.objects.filter(**demo).count(),
            "end_users": EndUser.objects.filter(**demo).count(),
        }


if __name__ == "__main__":
    sys.exit(main())

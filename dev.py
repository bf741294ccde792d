#!/usr/bin/env python3
"""The two commands of the README, for a fresh clone with only Python and git.

    python3 dev.py run [ADDRESS:PORT]   install, migrate, load the demo data once, serve
    python3 dev.py test [PYTEST ARGS]   install, lint, run the whole test suite

`run` serves on ADDRESS:PORT, 127.0.0.1:8000 by default (`8001`: another port; `0.0.0.0:8000`:
reachable from other machines), with a Celery worker and its beat beside it. Ctrl+C or SIGTERM
stops all of them and exits 0. Extra arguments of `test` go to pytest.

Needs Python 3.11 or newer and, on SQLite (no DATABASE_URL), SQLite 3.35 or newer. Both commands
create `.venv/` (or use the virtualenv DEV_VENV names) and install the pinned requirements into it
when they changed. With no DATABASE_URL / REDIS_URL they use an SQLite file and a Celery broker on
the file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import venv
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("DEV_VENV") or ROOT / ".venv")
PYTHON = VENV / "bin" / "python"
PYTHON_NEEDED = (3, 11)
SQLITE_NEEDED = (3, 35)  # RETURNING and the JSON functions the imports use
DEMO_LOGINS = """
  Demo logins (password for all: demo-password-2024)
    global.admin@demo.example   Global admin
    user.admin@demo.example     User management admin
    admin.agent@demo.example    Admin agent
    sales.agent@demo.example    Sales agent
    global.admin@northwind.example   Global admin of a second partner (tenancy)
"""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE = 20  # seconds children get to stop before they are killed


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in {"run", "test"}:
        print(f"Unknown command {argv[0]!r}.\n{__doc__}", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run" and rest[:1] and rest[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    python = (sys.version_info.major, sys.version_info.minor, sys.version_info.micro)
    missing = missing_requirements(python, sqlite3.sqlite_version_info, os.environ.get("DATABASE_URL", ""))
    if missing:
        print(missing, file=sys.stderr)
        return 1
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    install("requirements-dev.txt" if command == "test" else "requirements.txt")
    return test(rest, env) if command == "test" else run(rest, env)


def missing_requirements(python: tuple[int, ...], sqlite: tuple[int, ...], database_url: str) -> str:
    """What this machine lacks, in plain words ("" when nothing)."""
    if tuple(python[:2]) < PYTHON_NEEDED:
        return (
            f"Partner Insights needs Python {'.'.join(map(str, PYTHON_NEEDED))} or newer; this is "
            f"{'.'.join(map(str, python[:3]))}. Install it (e.g. the python3.11 package) and run "
            f"`python3.11 dev.py …`."
        )
    on_sqlite = not database_url or database_url.startswith("sqlite")
    if on_sqlite and tuple(sqlite[:2]) < SQLITE_NEEDED:
        return (
            f"Partner Insights needs SQLite {'.'.join(map(str, SQLITE_NEEDED))} or newer; this Python has "
            f"{'.'.join(map(str, sqlite[:3]))}. Use a Python built with a newer SQLite, or set DATABASE_URL "
            f"to a PostgreSQL database."
        )
    return ""


def install(requirements: str) -> None:
    """Creates the virtualenv and installs `requirements` unless they are installed already
    (the development requirements include the runtime ones)."""
    if not PYTHON.exists():
        print(f"Creating {VENV} …", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    stamps = {name: (VENV / f".installed-{name}", _digest(name)) for name in {requirements, "requirements-dev.txt"}}
    done = [name for name, (stamp, digest) in stamps.items() if stamp.exists() and stamp.read_text() == digest]
    if requirements in done or "requirements-dev.txt" in done:
        return
    print(f"Installing {requirements} …", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(ROOT / requirements)], check=True)
    stamp, digest = stamps[requirements]
    stamp.write_text(digest)


def _digest(requirements: str) -> str:
    files = [ROOT / "requirements.txt", ROOT / requirements]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def run(args: list[str], env: dict[str, str]) -> int:
    """Serves the product with a Celery worker and its beat schedule beside it (the nightly
    recompute), on the file-system broker unless REDIS_URL is set. Each child runs in a process
    group of its own, so stopping one stops everything it started (the worker's beat); a stop
    signal (Ctrl+C, SIGTERM, the terminal closing) stops them all and exits 0."""
    address = args[0] if args else "127.0.0.1:8000"
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping: list[int] = []  # the stop signals received

    def start(name: str, *command: str) -> subprocess.Popen[bytes]:
        children[name] = subprocess.Popen(list(command), cwd=ROOT, env=env, process_group=0)
        return children[name]

    def wait(processes: list[subprocess.Popen[bytes]]) -> None:
        """Until a stop signal arrives or one of `processes` ends."""
        while not stopping and all(process.poll() is None for process in processes):
            time.sleep(0.2)

    manage = (str(PYTHON), str(ROOT / "manage.py"))
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stopping.append(signum))
    try:
        for step in (("migrate", "--no-input"), ("generate_demo_data", "--if-missing")):
            done = start(step[0], *manage, *step)
            wait([done])
            if stopping or done.returncode:
                return 0 if stopping else done.returncode
        queues = "default,recompute,imports,reports,collection"  # every queue of settings.CELERY_QUEUE_NAMES
        celery = (str(PYTHON), "-m", "celery", "-A", "partnerinsights")
        serving = [
            start("the Celery worker", *celery, "worker", "--beat", "--pool=solo", "-Q", queues, "--loglevel=info"),
            start("runserver", *manage, "runserver", "--noreload", address),
        ]
        print(f"\nPartner Insights runs at http://{address}/ (Ctrl+C stops it)\n{DEMO_LOGINS}", file=sys.stderr)
        print(mail_destination(env), file=sys.stderr)
        wait(serving)
        if stopping:
            return 0
        name, ended = next(
            (name, child) for name, child in children.items() if child in serving and child.poll() is not None
        )
        print(f"{name} ended (exit {ended.returncode}): stopping the others", file=sys.stderr)
        return ended.returncode or 1
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        _stop_all(children)


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each child's process group, SIGKILL to what still runs after STOP_GRACE."""
    for child in children.values():
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for name, child in children.items():
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_GRACE} s: killed", file=sys.stderr)
        _signal_group(child, signal.SIGKILL)  # also whatever the child left behind in its group
        child.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has ended
        os.killpg(child.pid, signum)


def mail_destination(env: dict[str, str]) -> str:
    """Where mail goes, as partnerinsights/settings.py decides it, without the credentials."""
    url = urlsplit(env.get("EMAIL_URL", ""))
    if not url.scheme:
        return f"  Mail (invitations, password resets) is written to files in {ROOT / 'var' / 'mail'}/\n"
    return f"  Mail goes to {url.scheme}://{url.hostname or ''}{url.path if url.scheme == 'filemail' else ''}\n"


# The checks before the tests, in order; the first that fails stops the run.
CHECKS = (
    (str(PYTHON), "-m", "ruff", "check", "."),  # lint
    (str(PYTHON), "-m", "ruff", "format", "--check", "."),  # one format
    (str(VENV / "bin" / "lint-imports"),),  # the apps' layers, no import cycle (pyproject.toml)
    (str(PYTHON), "-m", "mypy"),  # type hints (pyproject.toml: strict on core, accounts, metrics)
)


def test(args: list[str], env: dict[str, str]) -> int:
    for check in CHECKS:
        print("$", *(Path(part).name if part.startswith("/") else part for part in check), file=sys.stderr)
        done = subprocess.run(check, cwd=ROOT, env=env)
        if done.returncode:
            return done.returncode
    return subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

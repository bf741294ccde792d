#!/usr/bin/env python3
"""The two commands of the README, for a fresh clone with only Python and git.

    python3 dev.py run    install, migrate, load the demo data once, serve http://127.0.0.1:8000/
    python3 dev.py test   install, lint, run the whole test suite (extra arguments go to pytest)

Both create `.venv/` and install the pinned requirements into it when they changed. With no
DATABASE_URL / REDIS_URL they use an SQLite file and a Celery broker on the file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
DEMO_LOGINS = """
  Demo logins (password for all: demo-password-2024)
    global.admin@demo.example   Global admin
    user.admin@demo.example     User management admin
    admin.agent@demo.example    Admin agent
    sales.agent@demo.example    Sales agent
    global.admin@northwind.example   Global admin of a second partner (tenancy)
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    install("requirements-dev.txt" if command == "test" else "requirements.txt")
    return test(rest, env) if command == "test" else run(rest, env)


def install(requirements: str) -> None:
    """Creates the virtualenv and installs `requirements` unless they are installed already."""
    if not PYTHON.exists():
        print("Creating .venv …", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"Installing {requirements} …", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(ROOT / requirements)], check=True)
    stamp.write_text(digest)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(PYTHON), str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)


def run(args: list[str], env: dict[str, str]) -> int:
    """Serves the product with a Celery worker and its beat schedule beside it (the nightly
    recompute), on the file-system broker unless REDIS_URL is set."""
    address = args[0] if args else "127.0.0.1:8000"
    manage("migrate", "--no-input", env=env)
    manage("generate_demo_data", "--if-missing", env=env)
    queues = "default,recompute,imports,reports"  # every queue of settings.CELERY_QUEUE_NAMES
    celery = [str(PYTHON), "-m", "celery", "-A", "partnerinsights"]
    worker = subprocess.Popen(
        [*celery, "worker", "--beat", "--pool=solo", "-Q", queues, "--loglevel=info"],
        cwd=ROOT,
        env=env,
    )
    print(f"\nPartner Insights runs at http://{address}/ (Ctrl+C stops it)\n{DEMO_LOGINS}", file=sys.stderr)
    print(mail_destination(env), file=sys.stderr)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            manage("runserver", "--noreload", address, env=env)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return 0


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

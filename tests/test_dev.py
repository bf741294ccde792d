"""`python3 dev.py run`, the embedded default, for real: it serves, and SIGTERM or SIGINT stops
every process it started (runserver, the Celery worker and the worker's beat) and exits 0. It
says plainly when Python or SQLite is too old, and documents its address argument.

It runs on a temporary SQLite file and queue folder (never the project's db.sqlite3 or var/),
migrated beforehand with a demo partner that has data, so the demo data is not generated.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.processes import ROOT, free_port, manage, private_folder, wait_for


def load_dev():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_too_old_python_or_sqlite_is_said_plainly():
    dev = load_dev()
    assert dev.missing_requirements((3, 11, 0), (3, 35, 0), "") == ""
    old_python = dev.missing_requirements((3, 9, 18), (3, 45, 1), "")
    assert old_python.startswith("Partner Insights needs Python 3.11 or newer; this is 3.9.18.")
    old_sqlite = dev.missing_requirements((3, 12, 1), (3, 31, 1), "")
    assert old_sqlite.startswith("Partner Insights needs SQLite 3.35 or newer; this Python has 3.31.1.")
    assert "DATABASE_URL" in old_sqlite
    assert dev.missing_requirements((3, 12, 1), (3, 31, 1), "postgres://db/pi") == ""  # SQLite unused


def test_the_usage_documents_the_address_argument():
    done = subprocess.run([sys.executable, "dev.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "python3 dev.py run [ADDRESS:PORT]" in done.stdout
    assert "127.0.0.1:8000 by default" in done.stdout
    unknown = subprocess.run([sys.executable, "dev.py", "serve"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert unknown.returncode == 2
    assert "Unknown command 'serve'" in unknown.stderr
    readme = (ROOT / "README.md").read_text()
    assert "python3 dev.py run 0.0.0.0:8001" in readme


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def demo_database() -> Iterator[dict[str, str]]:
    """The environment of `dev.py run` on a migrated temporary SQLite file whose demo partner has
    a customer (so `generate_demo_data --if-missing` has nothing to do)."""
    with private_folder() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_", "DATABASE_"))}
        env.update(
            DEBUG="true",
            DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
            CELERY_QUEUE_DIR=str(folder / "queue"),
            DEV_VENV=sys.prefix,  # the virtualenv running these tests
        )
        data = folder / "data"
        data.mkdir()
        (data / "customers.csv").write_text("customer_id,name\nC-1,Demo customer\n")
        manage(env, "migrate", "-v", "0")
        manage(env, "create_partner", "demo", "--name", "Demo")
        manage(env, "import_data", "--partner", "demo", str(data))
        yield {**env, "PI_TEST_FOLDER": str(folder)}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_run_serves_and_stops_every_child_on_a_signal(demo_database, stop):
    port = free_port()
    log = Path(demo_database["PI_TEST_FOLDER"]) / f"dev-{stop.name}.log"
    with log.open("wb") as output:
        dev = subprocess.Popen(
            [sys.executable, "dev.py", "run", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=demo_database,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children: set[int] = set()
    try:
        wait_for(lambda: _serves(f"http://127.0.0.1:{port}/healthz"), timeout=120, what="dev.py run", log=log)
        wait_for(lambda: "beat: Starting" in log.read_text(), timeout=60, what="the worker's beat", log=log)
        # runserver, the worker and its beat (a process of the worker's own)
        children |= wait_for(lambda: _at_least(_descendants(dev.pid), 3), timeout=30, what="the children", log=log)
        assert "Partner Insights runs at http://127.0.0.1:" in log.read_text()
        dev.send_signal(stop)
        assert dev.wait(timeout=60) == 0, log.read_text()[-3000:]
        still = [pid for pid in children if _alive(pid)]
        assert still == [], log.read_text()[-3000:]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.pid, signal.SIGKILL)
        for pid in children | _descendants(dev.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        dev.wait(timeout=10)


def _at_least(pids: set[int], count: int) -> set[int] | None:
    return pids if len(pids) >= count else None


def _serves(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        time.sleep(0.2)
        return False

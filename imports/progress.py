"""A running import's live state (phase, progress, heartbeat), kept in the shared `imports` cache.

An import writes in one transaction, which nobody sees until it ends; on SQLite, which has one
writer, nobody may even write the run's row meanwhile. So while a run runs, a thread of its
process writes its state to the `imports` cache (Redis when REDIS_URL is set, else files under
`var/cache/`) every BEAT_SECONDS — also while the import waits on one long SQL statement — and the
run's page, its API and the sweeper read it there. The row itself gets the state at each committed
point: when the run starts and when it ends. A process that dies stops beating: the sweeper
(`services.imports_sweep`) fails its run once the last beat is older than IMPORT_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone

from imports.models import ImportPhase, ImportRun, ImportStatus
from imports.pipeline.progress import Progress

logger = logging.getLogger(__name__)

CACHE = "imports"
BEAT_SECONDS = 2.0


@dataclass(frozen=True)
class Live:
    """Where a run stands: from the cache while it runs, else from its row."""

    phase: str
    rows_read: int
    files_done: int
    files_total: int
    heartbeat_at: dt.datetime | None

    @property
    def label(self) -> str:
        return str(ImportPhase(self.phase).label)


def cache_key(run: ImportRun) -> str:
    return f"imports:run:{run.pk}:{run.attempts}"


def live(run: ImportRun) -> Live:
    """The run's phase, progress and last sign of life."""
    stored = Live(run.phase, run.rows_read, run.files_done, run.files_total, run.heartbeat_at)
    if run.status != ImportStatus.RUNNING or run.heartbeat_at is None:
        return stored
    try:
        state = caches[CACHE].get(cache_key(run))
    except Exception:  # the cache is down: the row's state is what is known
        logger.warning("Could not read the progress of import %s", run.pk, extra={"run_id": run.pk})
        return stored
    # Written by this start of the run (the cache may hold an older one's after a reset).
    if not isinstance(state, dict) or state.get("since") != run.heartbeat_at.isoformat():
        return stored
    beat = dt.datetime.fromisoformat(state["beat"])
    return Live(state["phase"], state["rows_read"], state["files_done"], state["files_total"], beat)


class Tracker(Progress):
    """Keeps a running import's phase and progress, beats in the cache from a thread while the
    import runs (`with tracker:`), logs each phase with its duration, and passes the progress on
    to `forward` (the import_data command's terminal line)."""

    def __init__(self, run: ImportRun, forward: Progress | None = None) -> None:
        if run.heartbeat_at is None:
            raise ValueError("a run is tracked from its start, which sets its heartbeat")
        self.run, self._forward = run, forward or Progress()
        self._since = run.heartbeat_at.isoformat()
        self.phase = run.phase
        self.files_total = self.files_done = self.rows_read = 0
        self._rows: dict[str, int] = {}  # rows read of each file (the thread reads only the total)
        self._phase_started = self._started = time.monotonic()
        self._stopping, self._wake = False, threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name=f"import-{run.pk}-beat", daemon=True)
        self._cache_failed = False

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started

    def files(self, total: int) -> None:
        self.files_total = total
        self._forward.files(total)

    def rows(self, name: str, rows: int) -> None:
        self.rows_read += rows - self._rows.get(name, 0)  # a file read again (COPY fell back) counts once
        self._rows[name] = rows
        self._forward.rows(name, rows)

    def file_done(self, name: str) -> None:
        self.files_done += 1
        self._forward.file_done(name)

    def enter(self, phase: ImportPhase) -> None:
        """Moves on to `phase`, logging how long the previous one took."""
        now = time.monotonic()
        logger.info(
            "Import %s: %s took %.1f s (%d rows read)",
            self.run.pk,
            self.phase,
            now - self._phase_started,
            self.rows_read,
            extra=self.log_fields(phase=str(self.phase), seconds=round(now - self._phase_started, 3)),
        )
        self.phase, self._phase_started = phase, now
        self._wake.set()  # the thread writes it now; the import never waits for the cache

    def log_fields(self, **more: Any) -> dict[str, Any]:
        """The structured fields of the run's log lines (ids and figures only: no file content)."""
        fields = {
            "run_id": self.run.pk,
            "partner_id": self.run.partner_id,
            "origin": self.run.origin,
            "attempt": self.run.attempts,
            "rows": self.rows_read,
            "files_done": self.files_done,
            "files_total": self.files_total,
        }
        return fields | more

    def state(self) -> dict[str, Any]:
        return {
            "since": self._since,
            "beat": timezone.now().isoformat(),
            "phase": str(self.phase),
            "rows_read": self.rows_read,
            "files_done": self.files_done,
            "files_total": self.files_total,
        }

    def beat(self) -> None:
        """Writes the state to the cache; a cache that is down is logged once, never fatal."""
        timeout = max(3600, 3 * settings.IMPORT_STALE_SECONDS)
        try:
            caches[CACHE].set(cache_key(self.run), self.state(), timeout=timeout)
        except Exception:
            if not self._cache_failed:
                logger.warning("Could not write the progress of import %s", self.run.pk, extra=self.log_fields())
            self._cache_failed = True

    def store_on(self, run: ImportRun) -> None:
        """Copies the final figures onto the run's row (saved by the caller)."""
        run.phase = self.phase
        run.rows_read, run.files_done, run.files_total = self.rows_read, self.files_done, self.files_total
        run.heartbeat_at = timezone.now()

    def _beat_until_stopped(self) -> None:
        """The thread: a beat at once, then every BEAT_SECONDS or on a new phase; at the end the
        state is cleared (the run's row holds it by then)."""
        try:
            while not self._stopping:
                self.beat()
                self._wake.wait(BEAT_SECONDS)
                self._wake.clear()
            with contextlib.suppress(Exception):
                caches[CACHE].delete(cache_key(self.run))
        finally:
            caches[CACHE].close()

    def __enter__(self) -> Tracker:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=2 * BEAT_SECONDS + 5)  # a hung cache gives up after its socket timeout

"""Uploads are stored and queued, never read in the request; a worker runs them (here eagerly, at
the request's commit) with a live phase and progress; a run whose worker stopped is swept as
failed with a clear reason and starts again from its stored upload; uploads expire; a broker that
is down leaves a run that says so; every import logs its phases. The same with real processes
(gunicorn, a Celery worker killed mid-import): tests/test_import_worker.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import stat
import tracemalloc
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import StaffUser
from accounts.roles import Role
from customers.models import Customer
from imports import services, tasks
from imports.models import ImportPhase, ImportRun
from imports.pipeline.sources import source_from_path
from imports.pipeline.vendor_json import SHAPE_EXPECTED
from imports.progress import Tracker, live
from imports.services import NOT_QUEUED, data_import
from tests.conftest import client_for, committed, tenant_tables, token_client_for, upload
from tests.test_import import str_issue

CUSTOMERS = b"customer_id,name\nC1,Contoso\nC2,Fabrikam\n"
USERS = b"user_id,customer_id,upn\nU1,C1,ann@contoso.example\n"


@pytest.fixture
def importer(staff):
    return client_for(staff[Role.ADMIN_AGENT])


@pytest.fixture
def api(staff):
    return token_client_for(staff[Role.ADMIN_AGENT])


def queued_upload(client, *files: tuple[str, bytes]) -> ImportRun:
    """An upload through the page whose import no worker has run yet (its request not committed)."""
    answer = client.post("/imports/", {"files": [SimpleUploadedFile(name, content) for name, content in files]})
    assert answer.status_code == 302
    return ImportRun.objects.get(pk=int(answer["Location"].strip("/").split("/")[-1]))


def stopped(run: ImportRun, reason: str = "The worker running this import stopped.") -> ImportRun:
    ImportRun.objects.filter(pk=run.pk).update(status="failed", failure_reason=reason)
    run.refresh_from_db()
    return run


def test_an_upload_is_stored_privately_and_queued_without_being_read(importer, settings):
    run = queued_upload(importer, ("customers.csv", CUSTOMERS))
    (stored,) = run.upload_files
    assert stored == {"name": "customers.csv", "path": f"imports/{run.pk}/1.upload", "size": len(CUSTOMERS)}
    path = Path(settings.MEDIA_ROOT) / stored["path"]
    assert path.read_bytes() == CUSTOMERS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run.sha256 == hashlib.sha256(b"customers.csv\0" + CUSTOMERS).hexdigest()
    assert (run.status, run.phase, run.origin, run.attempts, run.source_name) == (
        "queued",
        "queued",
        "upload",
        1,
        "customers.csv",
    )
    assert Customer.objects.count() == 0
    assert importer.get(f"/media/{stored['path']}").status_code == 404  # nothing serves it


def test_hostile_upload_names_never_reach_the_storage(importer, settings):
    names = ("../../etc/cron.d/evil.csv", "..\\..\\boot.ini", "<img src=x onerror=alert(1)>.zip")
    run = queued_upload(importer, *((name, b"x") for name in names))
    assert [stored["path"] for stored in run.upload_files] == [f"imports/{run.pk}/{n}.upload" for n in (1, 2, 3)]
    assert [stored["name"] for stored in run.upload_files] == [
        "evil.csv",
        "boot.ini",
        "<img src=x onerror=alert(1)>.zip",
    ]
    stored = sorted(path.relative_to(settings.MEDIA_ROOT).as_posix() for path in Path(settings.MEDIA_ROOT).rglob("*"))
    assert stored == ["imports", f"imports/{run.pk}", *(f"imports/{run.pk}/{n}.upload" for n in (1, 2, 3))]


def test_a_store_that_breaks_half_way_leaves_no_run_and_no_file(partner, staff, settings, monkeypatch):
    save = default_storage.save

    def disk_full_at_the_second(name, content, **kwargs):
        if name.endswith("/2.upload"):
            raise OSError(28, "No space left on device")
        return save(name, content, **kwargs)

    monkeypatch.setattr(default_storage, "save", disk_full_at_the_second)
    files = [SimpleUploadedFile("customers.csv", CUSTOMERS), SimpleUploadedFile("users.csv", USERS)]
    with pytest.raises(OSError, match="No space left"):
        services.import_upload(partner=partner, files=files, origin="upload", started_by=staff[Role.GLOBAL_ADMIN])
    assert ImportRun.objects.count() == 0
    assert [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()] == []


def test_the_run_page_carries_no_inline_script(importer):
    run = queued_upload(importer, ("customers.csv", CUSTOMERS))
    html = importer.get(f"/imports/{run.pk}/").content.decode()
    assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.I)


def test_the_worker_imports_it_and_records_its_phase_and_progress(importer):
    _, page = upload(importer, [SimpleUploadedFile("customers.csv", CUSTOMERS), SimpleUploadedFile("users.csv", USERS)])
    run = page.context["run"]
    assert (run.status, run.phase, run.rows_read, run.files_done, run.files_total) == ("succeeded", "done", 3, 2, 2)
    assert run.heartbeat_at >= run.started_at
    assert "Import succeeded." in page.content.decode()
    assert "Start it again" not in page.content.decode()


def test_a_running_import_shows_its_live_phase_and_progress_on_its_page_and_in_the_api(importer, partner):
    run = ImportRun.objects.create(
        partner=partner, origin="upload", source_name="big.zip", status="running", heartbeat_at=timezone.now()
    )
    with Tracker(run) as tracker:  # as the worker keeps it while its transaction is open
        tracker.files(3)
        tracker.rows("activity.csv", 250_000)
        tracker.file_done("customers.csv")
        tracker.enter(ImportPhase.CHECKING)
        tracker.beat()  # as its thread does every 2 s
        html = importer.get(f"/imports/{run.pk}/").content.decode()
        body = importer.get(f"/api/imports/{run.pk}/").json()  # what the page's script polls
    assert '<strong data-field="phase">Checking the rows</strong>' in html
    assert '<span data-field="rows_read">250,000</span> rows read' in html
    assert '<span data-field="files_done">1</span> of <span data-field="files_total">3</span> files' in html
    assert (body["status"], body["phase"], body["phase_label"]) == ("running", "checking", "Checking the rows")
    assert {key: body["progress"][key] for key in ("rows_read", "files_done", "files_total")} == {
        "rows_read": 250_000,
        "files_done": 1,
        "files_total": 3,
    }
    assert live(run).phase == "queued"  # once it has ended, the row's state is what stands


def test_the_sweeper_fails_runs_whose_process_stopped_and_leaves_live_ones(importer, partner, settings):
    settings.IMPORT_STALE_SECONDS = 600
    now = timezone.now()
    upload_run = stopped(queued_upload(importer, ("customers.csv", CUSTOMERS)))
    ImportRun.objects.filter(pk=upload_run.pk).update(status="running", heartbeat_at=now - dt.timedelta(minutes=11))

    def run(**fields) -> ImportRun:
        return ImportRun.objects.create(partner=partner, origin="command", source_name="x", **fields)

    alive = run(status="running", heartbeat_at=now - dt.timedelta(hours=2))  # a long import, still beating
    legacy = run(status="running", started_at=now - dt.timedelta(days=3))  # "Running" forever, from before
    waiting = run(status="queued", heartbeat_at=now - dt.timedelta(hours=3))
    forgotten = run(status="queued", heartbeat_at=now - dt.timedelta(hours=25))
    with Tracker(alive) as tracker:
        tracker.beat()  # as its thread does every 2 s
        assert services.imports_sweep() == 3
    reasons = dict(ImportRun.objects.filter(status="failed").values_list("pk", "failure_reason"))
    assert reasons.keys() == {upload_run.pk, legacy.pk, forgotten.pk}
    since = (now - dt.timedelta(minutes=11)).astimezone(dt.UTC)
    assert reasons[upload_run.pk] == (
        f"The worker running this import stopped (no sign of life since {since:%Y-%m-%d %H:%M:%S} UTC); "
        "nothing was written. Start it again."
    )
    assert reasons[legacy.pk].startswith("The process running this import stopped (no sign of life since ")
    assert reasons[legacy.pk].endswith("nothing was written. Run the import again.")
    assert reasons[forgotten.pk] == (
        "No worker started this import within 24 hours (is a worker consuming the imports queue?). "
        "Run the import again."
    )
    assert {r.pk: r.status for r in (alive, waiting)} == dict(
        ImportRun.objects.filter(pk__in=[alive.pk, waiting.pk]).values_list("pk", "status")
    )
    page = importer.get(f"/imports/{upload_run.pk}/").content.decode()
    assert "Import failed." in page
    assert "Start it again" in page


def test_a_stopped_run_starts_again_from_its_stored_upload(importer):
    run = stopped(queued_upload(importer, ("customers.csv", CUSTOMERS)))
    answer = committed(importer.post, f"/imports/{run.pk}/restart/")
    assert answer["Location"] == f"/imports/{run.pk}/"
    run.refresh_from_db()
    assert (run.status, run.attempts, run.failure_reason, run.error_count) == ("succeeded", 2, "", 0)
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["C1", "C2"]
    again = importer.post(f"/imports/{run.pk}/restart/", follow=True)  # it succeeded: nothing to start
    assert "This import cannot be started again" in again.content.decode()
    run.refresh_from_db()
    assert run.attempts == 2


def test_the_api_starts_a_run_again_and_refuses_what_it_may_not(api, partner, importer):
    accepted = api.post("/api/imports/", {"file": SimpleUploadedFile("x.zip", zip_of(("customers.csv", CUSTOMERS)))})
    run = stopped(ImportRun.objects.get(pk=accepted.json()["id"]))
    assert api.get(f"/api/imports/{run.pk}/").json()["upload"]["restartable"] is True
    restarted = committed(api.post, f"/api/imports/{run.pk}/restart/")
    assert restarted.status_code == 202
    assert restarted["Location"] == f"http://testserver/api/imports/{run.pk}/"
    body = api.get(restarted["Location"]).json()
    assert (body["status"], body["attempts"], body["upload"]["restartable"]) == ("succeeded", 2, False)
    refused = api.post(f"/api/imports/{run.pk}/restart/")
    assert (refused.status_code, refused.json()) == (409, {"detail": "This import cannot be started again."})
    command = ImportRun.objects.create(partner=partner, origin="command", source_name="x", status="failed")
    assert api.post(f"/api/imports/{command.pk}/restart/").status_code == 409  # no stored upload


def test_a_queued_run_may_be_started_again_once_it_has_waited_long(importer, settings):
    run = queued_upload(importer, ("customers.csv", CUSTOMERS))
    assert not services.import_restartable(run)  # just queued: a worker will take it
    assert "Start it again" not in importer.get(f"/imports/{run.pk}/").content.decode()
    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=11))
    assert "Start it again" in importer.get(f"/imports/{run.pk}/").content.decode()  # its message may be lost


def test_a_message_of_an_earlier_start_is_ignored(importer):
    run = stopped(queued_upload(importer, ("customers.csv", CUSTOMERS)))
    services.import_restart(run=run)  # attempt 2, queued
    assert tasks.run_import(run_id=run.pk, attempt=1) == "skipped"
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("queued", 2)
    assert tasks.run_import(run_id=run.pk, attempt=2) == "succeeded"
    assert tasks.run_import(run_id=run.pk, attempt=2) == "skipped"  # a redelivery runs nothing twice


def test_a_broker_that_is_down_leaves_a_run_that_says_so_and_keeps_its_upload(importer, monkeypatch):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.run_import, "apply_async", broker_down)
    _, page = upload(importer, [SimpleUploadedFile("customers.csv", CUSTOMERS)])
    run = page.context["run"]
    assert (run.status, run.failure_reason, run.has_upload) == ("failed", NOT_QUEUED, True)
    html = page.content.decode()
    assert "could not be queued: the task queue is unreachable" in html
    assert "Start it again" in html
    monkeypatch.undo()  # the queue is back
    committed(importer.post, f"/imports/{run.pk}/restart/")
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Customer.objects.count() == 2


def test_uploads_are_removed_after_the_retention_period_and_the_run_says_so(importer, settings):
    settings.IMPORT_UPLOAD_RETENTION_DAYS = 7
    old = stopped(queued_upload(importer, ("customers.csv", CUSTOMERS)))
    recent = stopped(queued_upload(importer, ("users.csv", USERS)))
    ImportRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - dt.timedelta(days=8))
    assert services.imports_remove_old_uploads() == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.upload_removed_at is not None
    assert recent.upload_removed_at is None
    assert not (Path(settings.MEDIA_ROOT) / "imports" / str(old.pk)).exists()
    assert (Path(settings.MEDIA_ROOT) / recent.upload_files[0]["path"]).exists()
    page = importer.get(f"/imports/{old.pk}/").content.decode()
    assert f"removed on {timezone.localtime(old.upload_removed_at):%Y-%m-%d %H:%M} (kept 7 days)" in page
    assert "Start it again" not in page
    assert services.imports_remove_old_uploads() == 0


def test_a_run_whose_stored_upload_is_gone_fails_saying_so(importer, settings):
    run = queued_upload(importer, ("customers.csv", CUSTOMERS))
    (Path(settings.MEDIA_ROOT) / run.upload_files[0]["path"]).unlink()
    assert tasks.run_import(run_id=run.pk, attempt=1) == "failed"
    run.refresh_from_db()
    assert (
        run.failure_reason == "The stored upload is gone (customers.csv); nothing was imported. Upload the files again."
    )


def test_an_import_over_its_time_limit_fails_saying_so_and_writes_nothing(importer, monkeypatch):
    def too_long(**kwargs):
        raise SoftTimeLimitExceeded

    monkeypatch.setattr(services.checks, "run_checks", too_long)
    before = tenant_tables()
    _, page = upload(importer, [SimpleUploadedFile("customers.csv", CUSTOMERS)])
    run = page.context["run"]
    assert run.status == "failed"
    assert run.failure_reason.startswith("The import took longer than its limit of 120 minutes and was stopped")
    assert tenant_tables() == before


def test_each_import_logs_its_phases_with_durations_and_rows_and_never_the_data(importer, partner, caplog):
    caplog.set_level(logging.INFO, logger="imports")
    upload(importer, [SimpleUploadedFile("customers.csv", b"customer_id,name\nZQX-ID,Zqx Secret Name\n")])
    run = ImportRun.objects.get()
    records = [r for r in caplog.records if getattr(r, "run_id", None) == run.pk]
    phases = [r.phase for r in records if hasattr(r, "phase") and hasattr(r, "seconds")]
    assert phases == ["waiting", "reading", "checking", "writing", "recompute"]
    ends = [r for r in records if getattr(r, "status", None) == "succeeded"]
    assert len(ends) == 1
    assert (ends[0].partner_id, ends[0].rows, ends[0].rows_created, ends[0].files_done) == (partner.pk, 1, 1, 1)
    assert isinstance(ends[0].seconds, float)
    logged = json.dumps([{**vars(r), "msg": r.getMessage()} for r in caplog.records], default=str)
    assert "Zqx" not in logged
    assert "ZQX" not in logged


def test_a_huge_vendor_json_file_is_read_in_flat_memory(partner, tmp_path):
    """12 MB of deeply nested arrays take ~500 MB parsed whole; read item by item, it takes
    the memory of one item (the file is refused for its shape once read to its end)."""
    folder = tmp_path / "huge"
    folder.mkdir()
    item = "[" * 60 + "]" * 60
    (folder / "customers.json").write_text("[" + ",".join([item] * 100_000) + "]")
    tracemalloc.start()
    try:
        run = data_import(partner=partner, source=source_from_path(folder), origin="command")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [str_issue(error) for error in run.errors] == [f"customers.json:0:-: {SHAPE_EXPECTED} (value '')"]
    assert peak < 16 * 1024 * 1024


class TestAdmin:
    @pytest.fixture
    def operator(self, db):
        return client_for(StaffUser.objects.create_superuser("ops@platform.example", "x-Very-long-pass-1"))

    def test_import_runs_are_listed_across_partners_and_read_only(self, operator, importer, other_partner):
        run = queued_upload(importer, ("customers.csv", CUSTOMERS))
        ImportRun.objects.create(partner=other_partner, origin="command", source_name="theirs", status="succeeded")
        listing = operator.get("/admin/imports/importrun/")
        assert listing.status_code == 200
        assert listing.context["cl"].result_count == 2
        page = operator.get(f"/admin/imports/importrun/{run.pk}/change/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "customers.csv (40\xa0bytes)" in html
        assert run.upload_files[0]["path"] not in html  # listed, never linked or served
        assert 'name="_save"' not in html
        assert operator.get("/admin/imports/importrun/add/").status_code == 403
        assert operator.post(f"/admin/imports/importrun/{run.pk}/change/", {"status": "succeeded"}).status_code == 403
        assert operator.post(f"/admin/imports/importrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
        run.refresh_from_db()
        assert run.status == "queued"


def zip_of(*files: tuple[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files:
            archive.writestr(name, content)
    return buffer.getvalue()

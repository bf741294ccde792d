"""Uploads kept until a worker has imported them, in Django's default storage under
`imports/<run id>/` (MEDIA_ROOT, which nothing serves), and removed after
IMPORT_UPLOAD_RETENTION_DAYS.

A stored file's name is its number, never the uploaded name: the run's record keeps the uploaded
base name, which is the name the import reads the file by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import IO, Any, cast

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile

from imports.models import ImportRun
from imports.pipeline.sources import ImportSource, Opener, source_from_archive, source_from_named, upload_name


def store(run: ImportRun, uploads: Sequence[UploadedFile]) -> tuple[list[dict[str, Any]], str]:
    """Stores the uploads of `run` (saved already, for its id); returns their records and the
    sha256 of their names and bytes."""
    digest = hashlib.sha256()
    stored = []
    for number, upload in enumerate(uploads, start=1):
        name = upload_name(upload)
        digest.update(name.encode() + b"\0")
        for chunk in upload.chunks():
            digest.update(chunk)
        path = default_storage.save(f"imports/{run.pk}/{number}.upload", upload)
        stored.append({"name": name, "path": path, "size": upload.size or 0})
    return stored, digest.hexdigest()


def missing(run: ImportRun) -> list[str]:
    """The names of the run's uploaded files that are no longer stored."""
    return [stored["name"] for stored in run.upload_files if not default_storage.exists(stored["path"])]


def source(run: ImportRun) -> ImportSource:
    """The stored upload as the import reads it: the API's one .zip whatever its name, the page's
    archives and files by their names."""
    files = [(stored["name"], _opener(stored["path"])) for stored in run.upload_files]
    if run.origin == ImportRun.Origin.API and len(files) == 1:
        return source_from_archive(*files[0])
    return source_from_named(files)


def _opener(path: str) -> Opener:
    # A storage file is a binary file object, though the stubs do not call it an IO[bytes].
    return lambda: cast(IO[bytes], default_storage.open(path, "rb"))


def remove(run: ImportRun) -> None:
    """Deletes the stored files of `run`, anything else in its folder (a store that broke off
    half-way), and the folder (what is gone already is fine)."""
    folder = f"imports/{run.pk}"
    paths = {stored["path"] for stored in run.upload_files}
    if default_storage.exists(folder):
        paths |= {f"{folder}/{name}" for name in default_storage.listdir(folder)[1]}
    for path in sorted(paths):
        default_storage.delete(path)
    if default_storage.exists(folder):
        default_storage.delete(folder)

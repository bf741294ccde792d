"""Where import files come from: a folder, a .zip, or uploaded files — read as streams.

Archives are checked before anything is read: entries must stay inside the archive's folder,
and entry count (before the archive's directory is read), total size and compression ratio are
capped (zip bombs). Two inputs that one import would read as the same file (the same name in the
same place, ignoring case) are refused, naming both: one of them would silently not be read.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol, cast

from django.core.files.uploadedfile import UploadedFile

from imports.pipeline.issues import ImportIssue

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_TOTAL_BYTES = 20 * 1024**3
MAX_ZIP_RATIO = 200  # a CSV compresses about 5–30×; a bomb, thousands of times
_RATIO_APPLIES_ABOVE = 1024 * 1024
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What opening or reading a damaged entry raises (zipfile stops at the declared size, then checks
# the CRC; a bad header offset is a ValueError, flags it does not support NotImplementedError).
_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError)


Opener = Callable[[], IO[bytes]]


class UnreadableFile(Exception):
    """A file of the import broke off while being read (a damaged archive entry)."""

    def __init__(self, issue: ImportIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


@dataclass
class SourceFile:
    path: str  # relative to the import's root, "/"-separated
    open: Opener
    # The one folder an archive's entries all sat in, which the path leaves out ("export/",
    # or a customer's folder when only that one was zipped).
    archive_folder: str = ""
    # Where a problem of the file as a whole is reported (FILE, LINE), and how another names it.
    where: tuple[str, int] = ("", 0)
    described: str = ""

    @property
    def folder(self) -> str:
        """The name of the folder holding the file ("" at the import's root)."""
        return PurePosixPath(self.path).parent.name or self.archive_folder.strip("/")

    @property
    def place(self) -> str:
        """What the import reads the file as: its name and folder, ignoring case."""
        return (self.archive_folder + self.path).casefold()


def same_file(first: SourceFile, second: SourceFile) -> ImportIssue:
    """The problem of two inputs that one import reads as the same file."""
    reason = (
        f"{first.described} and {second.described} are one file to this import (the same name in the same "
        "place, ignoring case): remove or rename one"
    )
    return ImportIssue(*second.where, "path", reason, second.archive_folder + second.path)


def _refuse_same_files(source: ImportSource) -> None:
    seen: dict[str, SourceFile] = {}
    for source_file in source.files:
        first = seen.setdefault(source_file.place, source_file)
        if first is not source_file:
            source.problems.append(same_file(first, source_file))


@dataclass
class ImportSource:
    """The files of one import, plus problems found in the container itself."""

    name: str
    files: list[SourceFile] = field(default_factory=list)
    problems: list[ImportIssue] = field(default_factory=list)
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    def by_path(self) -> dict[str, SourceFile]:
        return {f.path: f for f in self.files}

    def open_hashed(self, source_file: SourceFile) -> IO[bytes]:
        """Opens a file so that what is read of it also feeds the import's sha256."""
        self._digest.update(source_file.path.encode() + b"\0")
        return io.BufferedReader(_Stream(source_file.open(), self._digest), buffer_size=256 * 1024)

    def open_again(self, source_file: SourceFile) -> IO[bytes]:
        """Opens a file that `open_hashed` already read to its end, for a second reading."""
        return io.BufferedReader(_Stream(source_file.open()), buffer_size=256 * 1024)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class _Closable(Protocol):
    def close(self) -> None: ...


class _Stream(io.RawIOBase):
    """A readable binary stream that may feed a digest and closes what it was opened from."""

    def __init__(self, stream: IO[bytes], digest: hashlib._Hash | None = None, *also_close: _Closable) -> None:
        super().__init__()
        self._stream, self._digest, self._also_close = stream, digest, also_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)  # the buffered reader's own, of bytes
        chunk = self._stream.read(len(view))
        if self._digest is not None:
            self._digest.update(chunk)
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            for closable in self._also_close:
                closable.close()
        super().close()


def source_from_path(path: Path) -> ImportSource:
    """A folder (its files, recursively) or a .zip archive."""
    if path.is_dir():
        source = ImportSource(name=str(path))
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path).as_posix()
            opener, described = _file_opener(file), f"'{relative}'"
            source.files.append(SourceFile(relative, opener, where=(relative, 0), described=described))
        _refuse_same_files(source)
        return source
    if path.is_file() and zipfile.is_zipfile(path):
        source = ImportSource(name=str(path))
        _add_zip(source, path.name, lambda: path.open("rb"))
        _refuse_same_files(source)
        return source
    source = ImportSource(name=str(path))
    reason = "not a folder or a .zip archive" if path.exists() else "no such file or folder"
    source.problems.append(ImportIssue(path.name or str(path), 0, "path", reason, str(path)))
    return source


def _file_opener(path: Path) -> Opener:
    return lambda: path.open("rb")


def source_from_uploads(uploads: Iterable[UploadedFile]) -> ImportSource:
    """Uploaded .zip archives and/or CSV files, named by their file names."""
    return source_from_named([(upload_name(upload), partial(_reopen, upload)) for upload in uploads])


def source_from_named(files: Sequence[tuple[str, Opener]]) -> ImportSource:
    """Uploads (in the request or stored) by their base names: a name ending in .zip is an
    archive, any other a file at the import's root."""
    source = ImportSource(name=", ".join(name for name, _ in files))
    for number, (name, opener) in enumerate(files, start=1):
        if name.lower().endswith(".zip"):
            _add_zip(source, name, opener)
        else:
            upload = f"upload {number} '{name}'" if len(files) > 1 else f"'{name}'"
            source.files.append(SourceFile(name, opener, where=(name, 0), described=upload))
    _refuse_same_files(source)
    return source


def source_from_zip_upload(upload: UploadedFile) -> ImportSource:
    """One uploaded .zip archive, whatever its file name says (the API checks the content)."""
    return source_from_archive(upload_name(upload), lambda: _reopen(upload))


def source_from_archive(name: str, opener: Opener) -> ImportSource:
    """One .zip archive (an API upload, stored or in the request), whatever its name says."""
    source = ImportSource(name=name)
    _add_zip(source, name, opener)
    _refuse_same_files(source)
    return source


def upload_name(upload: UploadedFile) -> str:
    """The upload's file name without any folder a browser may send."""
    name = PurePosixPath((upload.name or "upload").replace("\\", "/")).name
    return name if name not in {"", ".", ".."} else "upload"


def declared_upload_size(meta: Mapping[str, str]) -> int:
    """The request body's declared size (Content-Length), known before anything is read; 0 when
    absent or garbled (the uploaded files' own sizes are then checked after parsing)."""
    try:
        return max(int(meta.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _reopen(upload: UploadedFile) -> IO[bytes]:
    """A fresh stream over an upload each time; closing it leaves the upload intact."""
    if hasattr(upload, "temporary_file_path"):
        return open(upload.temporary_file_path(), "rb")
    upload.seek(0)
    return io.BytesIO(upload.read())


def _add_zip(source: ImportSource, archive_name: str, opener: Opener) -> None:
    try:
        with opener() as container:
            declared = _declared_entries(container)
            if declared > MAX_ZIP_ENTRIES:  # refused before its directory is read into memory
                reason = f"more than {MAX_ZIP_ENTRIES} files"
                source.problems.append(ImportIssue(archive_name, 0, "archive", reason, str(declared)))
                return
            with zipfile.ZipFile(container) as archive:
                entries = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:  # ValueError: a name not in UTF-8
        source.problems.append(ImportIssue(archive_name, 0, "archive", f"not a readable .zip archive: {error}"))
        return
    problems = _zip_problems(archive_name, entries)
    source.problems.extend(problems)
    if problems:
        return
    root = _common_folder([info.filename for info in entries])
    for number, info in enumerate(entries, start=1):
        relative = info.filename[len(root) :]
        opens = lambda i=info, w=(archive_name, number): _open_entry(opener, i, w)  # noqa: E731
        described = f"entry {number} '{info.filename}' of {archive_name}"
        source.files.append(
            SourceFile(relative, opens, archive_folder=root, where=(archive_name, number), described=described)
        )


def _declared_entries(container: IO[bytes]) -> int:
    """How many entries the archive's end record declares (0 when it has none: zipfile says
    what is wrong), read without reading its directory."""
    end_record = getattr(zipfile, "_EndRecData")(container)  # noqa: B009  (a private helper, stable since 2.x)
    container.seek(0)
    return int(end_record[zipfile._ECD_ENTRIES_TOTAL]) if end_record else 0  # type: ignore[attr-defined]


def _zip_problems(archive_name: str, entries: list[zipfile.ZipInfo]) -> list[ImportIssue]:
    problems = []
    if len(entries) > MAX_ZIP_ENTRIES:
        problems.append(
            ImportIssue(archive_name, 0, "archive", f"more than {MAX_ZIP_ENTRIES} files", str(len(entries)))
        )
    total = sum(info.file_size for info in entries)
    if total > MAX_ZIP_TOTAL_BYTES:
        problems.append(
            ImportIssue(archive_name, 0, "archive", f"unpacks to more than {MAX_ZIP_TOTAL_BYTES} bytes", str(total))
        )
    # Many entries each under the per-entry threshold can still make a bomb together.
    elif _too_compressed(total, sum(info.compress_size for info in entries)):
        reason = f"compressed more than {MAX_ZIP_RATIO}:1 as a whole (a zip bomb?)"
        problems.append(ImportIssue(archive_name, 0, "archive", reason, str(total)))
    for number, info in enumerate(entries, start=1):
        reason = _entry_problem(info)
        if reason:
            problems.append(ImportIssue(archive_name, number, "path", reason, info.filename))
    return problems


def _entry_problem(info: zipfile.ZipInfo) -> str:
    """Why an entry may not be read ("" when it may)."""
    path = PurePosixPath(info.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return "entry escapes the archive folder"
    if _too_compressed(info.file_size, info.compress_size):
        return f"compressed more than {MAX_ZIP_RATIO}:1 (a zip bomb?)"
    if info.flag_bits & 0x1:
        return "entry is encrypted: zip the files without a password"
    if info.compress_type not in _READABLE_METHODS:
        return f"entry is compressed with an unsupported method ({info.compress_type}): use deflate"
    return ""


def _too_compressed(unpacked: int, packed: int) -> bool:
    return unpacked > _RATIO_APPLIES_ABOVE and unpacked > MAX_ZIP_RATIO * max(packed, 1)


def _common_folder(names: list[str]) -> str:
    """An archive of one folder ("export/customers.csv", …) reads as if the files were at its root."""
    first_parts = {name.split("/", 1)[0] for name in names}
    if len(first_parts) == 1 and all("/" in name for name in names):
        return first_parts.pop() + "/"
    return ""


def _open_entry(opener: Opener, info: zipfile.ZipInfo, where: tuple[str, int]) -> IO[bytes]:
    """A stream of one entry; a damaged entry raises UnreadableFile, whenever it shows."""
    container = opener()
    archive = zipfile.ZipFile(container)
    try:
        # A raw stream is a binary file object, though the stubs do not call it an IO[bytes].
        return cast(IO[bytes], _EntryStream(archive.open(info), where, info.filename, archive, container))
    except _ENTRY_ERRORS as error:
        archive.close()
        container.close()
        raise _unreadable(where, info.filename, error) from error


class _EntryStream(_Stream):
    def __init__(self, stream: IO[bytes], where: tuple[str, int], name: str, *also_close: _Closable) -> None:
        super().__init__(stream, None, *also_close)
        self._where, self._name = where, name

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            return super().readinto(buffer)
        except _ENTRY_ERRORS as error:
            raise _unreadable(self._where, self._name, error) from error


def _unreadable(where: tuple[str, int], name: str, error: Exception) -> UnreadableFile:
    return UnreadableFile(ImportIssue(*where, "path", f"damaged archive entry: {error}", name))

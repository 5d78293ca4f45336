"""Readers for zip, 7z, tar (plain/gz/bz2/xz) and single compressed files, read in place.

Nothing is extracted beside the evidence. zip and tar members are streamed from the archive; a tar.gz
is a forward stream, so readers are cached per process (``reader_for``) and workers asking for members
in listing order decompress it about once. py7zr 1.1 extracts named members through a
``WriterFactory``, so a 7z member is read into a buffer capped at ``MAX_7Z_MEMBER`` (a larger member
is refused with a warning), held in memory up to ``SPOOL_IN_MEMORY`` for all the members of one
extraction and in a private, unlinked temporary file past it. A solid 7z is decompressed from the start of its
block for every member: correct, but slow for large solid archives (say so, extract, scan folder).
"""

from __future__ import annotations

import bz2
import calendar
import gzip
import io
import lzma
import stat
import struct
import tarfile
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
SEVENZ_MAGIC = b"7z\xbc\xaf\x27\x1c"
COMPRESSED_MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
BZ2_BLOCK = (b"1AY&SY", b"\x17rE8P\x90")  # after "BZh1".."BZh9": a block, or the end of an empty stream
UNSUPPORTED_MAGIC = {b"Rar!\x1a\x07": "RAR", b"MSCF": "CAB"}
ARCHIVE_SUFFIXES = (".zip", ".7z", ".tar", ".tgz", ".gz", ".tbz2", ".bz2", ".txz", ".xz")
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz")  # a pre-POSIX tar has no magic: these names say tar
MAX_7Z_MEMBER = 512 << 20
MAX_COPY = 256 << 20  # a nested archive in a member stream that cannot seek is copied up to this
# of that copy, the bytes held in memory before it spills to a private temporary file (workers set their
# engine chunk, from --memory-limit): the reader cache holds several such copies
SPOOL_IN_MEMORY = 16 << 20
CACHE_SIZE = 4


class ArchiveFormatError(OSError):
    """An archive or member that cannot be read: an OSError so workers report it as a warning."""


@dataclass(frozen=True)
class Member:
    locator: str  # what ``open`` needs: zip index, tar header offset, 7z name
    name: str  # the raw name as the archive gives it (attacker-controlled)
    size: int
    csize: int | None  # compressed size when the format says it
    kind: str  # file | dir | link | other
    mtime: float | None = None
    link: str | None = None


def sniff(head: bytes) -> str | None:
    """Archive format from the first bytes: zip | 7z | tar | gz | bz2 | xz (compressed streams)."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(SEVENZ_MAGIC):
        return "7z"
    if head[257:262] == b"ustar":
        return "tar"
    for magic, fmt in COMPRESSED_MAGIC.items():
        if head.startswith(magic) and (fmt != "bz2" or (head[3:4] in b"123456789" and head[4:10] in BZ2_BLOCK)):
            return fmt  # bz2's three magic bytes alone would claim a text file starting "BZh"
    return None


def unsupported(head: bytes) -> str | None:
    return next((name for magic, name in UNSUPPORTED_MAGIC.items() if head.startswith(magic)), None)


def _decompressor(fmt: str, stream: BinaryIO) -> BinaryIO:
    if fmt == "gz":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if fmt == "bz2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    return lzma.LZMAFile(stream)  # type: ignore[return-value]


FILETIME_UNIX = 11_644_473_600  # seconds from 1601-01-01 (Windows FILETIME) to 1970-01-01


LOCAL_ZIP_TIMES = ("member times without an NTFS or Unix time field are DOS times, the archiving machine's "
                   "local time with no zone: read as UTC (shift them by that machine's UTC offset)")


def zip_mtime(info: zipfile.ZipInfo) -> float | None:
    """A member's modification time in UTC: ``zip_utc_mtime``, else its DOS time, which is the
    archiving machine's local time (its zone is not recorded: read as UTC, and said, see
    ``ZipReader.local_times``). A zip made in New York had put its members' times 5 hours early."""
    utc = zip_utc_mtime(info)
    if utc is not None:
        return utc
    try:
        return float(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def zip_utc_mtime(info: zipfile.ZipInfo) -> float | None:
    """A member's modification time from its NTFS extra field (0x000A: FILETIME, written by 7-Zip
    and others on Windows) or its extended timestamp (0x5455 'UT': Unix seconds, Info-ZIP), else None."""
    extra, at = info.extra, 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + size]
        at += 4 + size
        if tag == 0x000A and len(body) >= 32 and struct.unpack_from("<HH", body, 4) == (1, 24):
            filetime = struct.unpack_from("<Q", body, 8)[0]
            if filetime:
                return filetime / 10_000_000 - FILETIME_UNIX
        elif tag == 0x5455 and len(body) >= 5 and body[0] & 1:
            return float(struct.unpack_from("<i", body, 1)[0])
    return None


class ZipReader:
    def __init__(self, stream: BinaryIO) -> None:
        self.zf = zipfile.ZipFile(stream)
        self.local_times = False  # a file member's time is a DOS time (local, no zone): the walk says so

    def members(self) -> Iterator[Member]:
        for i, info in enumerate(self.zf.infolist()):
            mode = info.external_attr >> 16
            kind = "dir" if info.is_dir() else "link" if stat.S_ISLNK(mode) else "file"
            mtime = zip_mtime(info)
            if kind == "file" and mtime is not None and zip_utc_mtime(info) is None:
                self.local_times = True
            yield Member(str(i), info.filename, info.file_size, info.compress_size, kind, mtime)

    def open(self, locator: str) -> BinaryIO:
        info = self.zf.infolist()[int(locator)]
        if info.flag_bits & 0x1:
            raise ArchiveFormatError("encrypted zip member: needs a password, not read")
        return self.zf.open(info)  # type: ignore[return-value]


class TarReader:
    def __init__(self, stream: BinaryIO) -> None:
        self.tf = tarfile.open(fileobj=stream, mode="r:*")  # noqa: SIM115 - cached, closed with the process
        self.listed: tarfile.TarInfo | None = None

    def members(self) -> Iterator[Member]:
        for info in self.tf:
            self.listed = info
            kind = ("file" if info.isreg() else "dir" if info.isdir()
                    else "link" if info.issym() or info.islnk() else "other")
            yield Member(str(info.offset), info.name, info.size, None, kind, float(info.mtime),
                         info.linkname or None)

    def open(self, locator: str) -> BinaryIO:
        """The member whose header is at offset ``locator``. The member just listed is opened from
        its header as read (seeking back to the header would rewind a compressed tar to its start)."""
        if self.listed is not None and str(self.listed.offset) == locator:
            return self._extract(self.listed, locator)
        fileobj = self.tf.fileobj
        assert fileobj is not None
        fileobj.seek(int(locator))
        at = self.tf.offset  # reading a header moves the listing's position: keep it
        try:
            info = tarfile.TarInfo.fromtarfile(self.tf)
        finally:
            self.tf.offset = at
        return self._extract(info, locator)

    def _extract(self, info: tarfile.TarInfo, locator: str) -> BinaryIO:
        if not info.isreg():
            raise ArchiveFormatError(f"tar member at offset {locator} is not a regular file")
        extracted = self.tf.extractfile(info)
        if extracted is None:
            raise ArchiveFormatError(f"tar member at offset {locator} has no data")
        # a compressed tar cut short inside the member: its bytes before the cut, then a warning. Read
        # under tarfile's own buffer (its reads of 8 KiB would each lose what they held at the cut)
        inner = getattr(extracted, "raw", extracted)
        return io.BufferedReader(CutShort(inner, 1 << 16), buffer_size=1 << 20)  # type: ignore[return-value]


class CompressedReader:
    """A single gzip/bz2/xz stream: one member, named after the container without its suffix."""

    def __init__(self, stream: BinaryIO, fmt: str, name: str) -> None:
        self.stream, self.fmt = stream, fmt
        self.name = name.rsplit(".", 1)[0] if "." in name else name + ".out"

    def members(self) -> Iterator[Member]:
        size = None
        if self.fmt == "gz":  # ISIZE trailer: size mod 2**32, a hint only (the read is bounded anyway)
            self.stream.seek(-4, io.SEEK_END)
            size = int.from_bytes(self.stream.read(4), "little")
            self.stream.seek(0)
        yield Member("0", self.name, size if size is not None else 0, None, "file")

    def open(self, locator: str) -> BinaryIO:
        self.stream.seek(0)
        return io.BufferedReader(CompressedStream(self.stream, self.fmt), buffer_size=1 << 20)  # type: ignore[return-value]


def problem_of(stream: Any, depth: int = 8) -> str | None:
    """Why a member stream ended early (``CompressedStream.problem``), looked for through the readers
    wrapped around it (``raw`` of a buffered reader, ``inner`` of a guard or a hashing reader)."""
    for _ in range(depth):
        if stream is None:
            return None
        problem = getattr(stream, "problem", None)
        if isinstance(problem, str):
            return problem
        stream = getattr(stream, "raw", None) or getattr(stream, "inner", None)
    return None


RATIO = 250  # content to compressed bytes: deflate on real IIS/Exchange logs and web pages stays below 100:1
RATIO_MIN_SIZE = 16 << 20  # less content than this cannot hurt whatever its ratio


class CutShort(io.RawIOBase):
    """A member stream read ``piece`` bytes at a time that ends where its archive was cut short
    (``EOFError`` from the decompressor under it), ``problem`` saying so: what came before the cut is
    kept (a read of many bytes at once had raised and lost it all). A read that meets the cut loses
    what it had decompressed; a stream that can seek is read again from there in pieces a sixteenth
    the size, down to single bytes (a tar.gz member: ``tarfile`` decompresses from the start to seek
    back, on this damaged path only), so every byte before the cut is kept."""

    def __init__(self, inner: Any, piece: int) -> None:
        self.inner = inner
        self.piece = piece
        self.produced = 0
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    def _read(self, size: int) -> bytes:
        return bytes(self.inner.read(min(size, self.piece)))

    def _retry(self) -> bool:
        """Whether the read that met the cut can be made again in smaller pieces."""
        if self.piece <= 1 or not getattr(self.inner, "seekable", lambda: False)():
            return False
        try:
            self.inner.seek(self.produced)
        except (OSError, EOFError, ValueError):
            return False
        self.piece = max(1, self.piece // 16)
        return True

    def readinto(self, buffer: Any) -> int:
        if self.problem is not None:
            return 0
        view = memoryview(buffer).cast("B")
        while True:
            try:
                data = self._read(len(view))
                break
            except EOFError:
                if not self._retry():
                    self.problem = (f"compressed stream cut short after {self.produced:,} bytes of its content: "
                                    "the rest is lost")
                    return 0
        view[: len(data)] = data
        self.produced += len(data)
        return len(data)


class CompressedStream(CutShort):
    """A gzip/bz2/xz stream's content, read one decompressed piece at a time, with two guards.

    A stream cut short (a collection copied while written, a download stopped) gives every byte it
    holds, then ends, and ``problem`` says why (``problem_of``: the reader's warning). A read of many
    bytes at once had raised ``EOFError`` and lost all it had decompressed: a log's readable lines,
    the attack in them; an error raised later would lose the same in the buffered readers above.
    Content that outgrows its compressed bytes ``RATIO`` times past ``RATIO_MIN_SIZE`` (a bomb: 5 GiB
    of zeros in 23 MB, a size field that holds only the low 32 bits) ends the same way, where a zip
    member's declared ratio is refused before it is read."""

    def __init__(self, source: BinaryIO, fmt: str) -> None:
        super().__init__(_decompressor(fmt, source), 1 << 20)
        self.source = source

    def _retry(self) -> bool:
        return False  # ``read1`` hands over each piece as decompressed: nothing was lost at the cut

    def _read(self, size: int) -> bytes:
        data = bytes(self.inner.read1(size))  # one piece as decompressed: nothing lost at a cut
        produced = self.produced + len(data)
        if produced > RATIO_MIN_SIZE and produced > RATIO * max(self.source.tell(), 1):
            self.problem = (f"content expands more than {RATIO}:1 over its compressed bytes after "
                            f"{produced:,} bytes: possible archive bomb, the rest not read")
        return data


class _Held:
    """One extraction's members in one private, unlinked temporary file, held in memory only up to
    ``SPOOL_IN_MEMORY`` (a 7z's members had been held in memory whole: up to 512 MiB per worker,
    whatever ``--memory-limit``). One file for all of them: a file each had run out of descriptors
    on an archive of a few thousand members. Never beside the evidence or in the case."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="exhunt-7z-")  # noqa: SIM115 - lives with the reader
        self.end = 0
        self.lock = threading.Lock()  # py7zr may write two folders' members from two threads

    def append(self, data: bytes | bytearray) -> int:
        with self.lock:
            at = self.end
            self.file.seek(at)
            self.file.write(data)
            self.end += len(data)
            return at

    def read_at(self, at: int, size: int) -> bytes:
        with self.lock:
            self.file.seek(at)
            return self.file.read(size)


class _SpoolWriter:
    """py7zr Py7zIO writer with a hard cap (``limit``): the member's bytes go to its extraction's
    ``_Held`` file, as extents (offset, length) in write order."""

    def __init__(self, limit: int, held: _Held) -> None:
        self.limit = limit
        self.held = held
        self.extents: list[list[int]] = []
        self.written = 0
        self.overflow = False
        self._reader = _MemberReader(self)  # py7zr's Py7zIO reads and seeks too

    def write(self, data: bytes | bytearray) -> int:
        if self.written + len(data) > self.limit:
            self.overflow = True
            return len(data)
        if data:
            at = self.held.append(data)
            if self.extents and self.extents[-1][0] + self.extents[-1][1] == at:
                self.extents[-1][1] += len(data)  # contiguous: one extent
            else:
                self.extents.append([at, len(data)])
            self.written += len(data)
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        return self._reader.read(-1 if size is None else size) or b""

    def read_at(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes of the member from ``position``."""
        parts, start = [], 0
        for at, length in self.extents:
            if size <= 0:
                break
            if position < start + length:
                offset = max(position - start, 0)
                piece = self.held.read_at(at + offset, min(length - offset, size))
                parts.append(piece)
                size -= len(piece)
                position += len(piece)
            start += length
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._reader.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        return None

    def stream(self) -> BinaryIO:
        """The member as a seekable stream, read from the shared file."""
        return io.BufferedReader(_MemberReader(self))  # type: ignore[return-value]


class _MemberReader(io.RawIOBase):
    def __init__(self, writer: _SpoolWriter) -> None:
        self.writer = writer
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.writer.read_at(self.position, len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.writer.written}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position


NTH = "\0#"  # in a 7z locator: "<name>\0#<n>" is the n-th member named <name> (n > 0)


class SevenZipReader:
    """``hold``: a 7z whose members expand to at most this many bytes in all (and that names no
    member twice) is decompressed once, into memory, at the first ``open`` (members read in place,
    one after the other; each is let go once opened). Otherwise each ``open`` extracts its one
    member, which decompresses a solid block from its start every time: bounded memory, slow for
    many members of a large solid archive."""

    def __init__(self, stream: BinaryIO, hold: int = 0) -> None:
        import py7zr

        self.py7zr = py7zr
        try:
            self.sz = py7zr.SevenZipFile(stream, mode="r")
        except py7zr.exceptions.PasswordRequired:  # its header is encrypted: not even the names can be read
            raise ArchiveFormatError("encrypted 7z archive (its member names too): needs a password, "
                                     "not read") from None
        self.hold = hold
        self.held: dict[str, _SpoolWriter] | None = None

    def members(self) -> Iterator[Member]:
        seen: dict[str, int] = {}
        for f in self.sz.files:
            kind = ("dir" if f.is_directory else "link" if (f.is_symlink or f.is_junction)
                    else "other" if f.is_socket else "file")
            # the locator is the name plus which of the members of that name it is: py7zr extracts
            # by name, and a second member of one name must not be read as the first
            nth = seen[f.filename] = seen.get(f.filename, -1) + 1
            mtime = None
            if f.lastwritetime is not None:
                try:
                    mtime = f.lastwritetime.totimestamp()
                except (ValueError, OverflowError, OSError):
                    mtime = None
            yield Member(f"{f.filename}{NTH}{nth}" if nth else f.filename, f.filename, int(f.uncompressed or 0),
                         None, kind, mtime)

    def _extract(self, targets: list[str] | None) -> list[tuple[str, _SpoolWriter]]:
        """Members (``targets``, or all) into capped spooled buffers, in archive order. py7zr hands
        the second member of one name over as ``name_0``: only the order tells copies apart."""
        from py7zr.io import WriterFactory

        writers: list[tuple[str, _SpoolWriter]] = []
        held = _Held()

        class Factory(WriterFactory):
            def create(self, filename: str) -> Any:
                writers.append((filename, _SpoolWriter(MAX_7Z_MEMBER, held)))
                return writers[-1][1]

        self.sz.reset()
        self.sz.extract(targets=targets, factory=Factory())
        return writers

    def _holdable(self) -> bool:
        """Small enough, and no name twice (held members are found by name)."""
        names = [f.filename for f in self.sz.files]
        return sum(int(f.uncompressed or 0) for f in self.sz.files) <= self.hold and len(set(names)) == len(names)

    def open(self, locator: str) -> BinaryIO:
        if self.sz.needs_password():
            raise ArchiveFormatError("encrypted 7z archive: needs a password, member not read")
        name, _, nth = locator.partition(NTH)
        index = int(nth) if nth.isdigit() else 0
        declared = [int(f.uncompressed or 0) for f in self.sz.files if f.filename == name]
        if index < len(declared) and declared[index] > MAX_7Z_MEMBER:  # refused before any byte is decompressed
            raise ArchiveFormatError(f"7z member declares {declared[index]:,} bytes, more than the {MAX_7Z_MEMBER:,} "
                                     "read into memory: not read (extract the archive and scan the folder)")
        if self.held is None and self._holdable():
            self.held = dict(self._extract(None))
        if self.held is not None:
            writer = self.held.pop(name, None) if index == 0 else None  # opened once: its memory goes too
        else:  # every member of that name, in archive order
            found = self._extract([name])
            writer = found[index][1] if index < len(found) else None
        if writer is None:
            raise ArchiveFormatError(f"7z member not found: {name!r}")
        if writer.overflow:
            raise ArchiveFormatError(f"7z member larger than {MAX_7Z_MEMBER} bytes: not read "
                                     "(extract the archive and scan the folder)")
        return writer.stream()


Reader = ZipReader | TarReader | CompressedReader | SevenZipReader


def is_archive(head: bytes, name: str) -> bool:
    """An archive by its first bytes, or a tar by its name (what ``make_reader`` opens)."""
    return sniff(head) is not None or name.lower().endswith(TAR_SUFFIXES)


def make_reader(stream: BinaryIO, name: str, hold_7z: int = 0) -> Reader:
    """Open ``stream`` (seekable) with the reader its magic bytes call for; ``name`` is the
    archive's file name (a single compressed stream's one member is named after it); ``hold_7z``
    see ``SevenZipReader``."""
    head = stream.read(512)
    stream.seek(0)
    fmt = sniff(head)
    if fmt is None and name.lower().endswith(TAR_SUFFIXES):
        return TarReader(stream)
    if fmt is None:
        raise ArchiveFormatError("not a supported archive (zip, 7z, tar, gz, bz2, xz)")
    if fmt == "zip":
        return ZipReader(stream)
    if fmt == "7z":
        return SevenZipReader(stream, hold_7z)
    if fmt in COMPRESSED_MAGIC.values():
        inner = _decompressor(fmt, stream).read(512)
        stream.seek(0)
        if inner[257:262] == b"ustar":
            return TarReader(stream)
        return CompressedReader(stream, fmt, name)
    return TarReader(stream)


_CACHE: OrderedDict[tuple[str, tuple[str, ...]], Reader] = OrderedDict()
_NAMES: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}  # member locator -> name, per archive


def reader_for(container: Path, chain: tuple[str, ...], open_file: Any) -> Reader:
    """The reader of ``container`` or of a nested archive inside it (``chain`` of member locators).

    Cached per process: reopening the central directory or rewinding a tar.gz for each member
    would make a big archive quadratic.
    """
    key = (str(container), chain)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if chain:
        parent = reader_for(container, chain[:-1], open_file)
        stream = seekable_copy(parent.open(chain[-1]))
        # a gz/bz2/xz member's one file is named after the member ("x.aspx.gz" -> "x.aspx"), not
        # after its locator (a zip index or tar offset), so path-based detections still see it
        names = _NAMES.get(key[:1] + (chain[:-1],))
        if names is None:  # once per archive, not once per nested member (a zip of 6,000 .gz logs)
            names = _NAMES[key[:1] + (chain[:-1],)] = {m.locator: m.name for m in parent.members()}
        reader = make_reader(stream, names.get(chain[-1], chain[-1]).rsplit("/", 1)[-1])
    else:
        reader = make_reader(open_file(container), container.name)
    _CACHE[key] = reader
    while len(_CACHE) > CACHE_SIZE:
        _NAMES.pop(_CACHE.popitem(last=False)[0], None)
    return reader


def seekable_copy(stream: BinaryIO, limit: int = MAX_COPY) -> BinaryIO:
    """A seekable stream for a reader: ``stream`` itself, or a copy of its bytes when it cannot seek,
    held in memory up to ``SPOOL_IN_MEMORY`` and in a private temporary file past it (the copies were
    all in memory: the reader cache's four nested archives of up to 256 MiB each had been 1 GiB per
    worker whatever ``--memory-limit``); refused past ``limit``."""
    if stream.seekable():
        return stream
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="exhunt-archive-")  # noqa: SIM115 - returned
    total = 0
    while piece := stream.read(1 << 20):
        total += len(piece)
        if total > limit:
            copy.close()
            raise ArchiveFormatError(f"archive in a stream that cannot seek and larger than {limit} bytes: not opened")
        copy.write(piece)
    copy.seek(0)
    return copy  # type: ignore[return-value]


def clear_cache() -> None:
    _CACHE.clear()
    _NAMES.clear()

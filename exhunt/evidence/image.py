"""Disk and VM images (E01, VMDK, VHD/VHDX, raw, split raw) read through dissect.target (extra ``exhunt[images]``).

dissect.target opens the container, the volume system and NTFS or FAT itself, read-only and without
mounting anything. Every volume is walked as a drive (``image_volumes``): the OS plugin's letter on
a system disk, D, E, ... for data volumes. Only the folders where Exchange, IIS and Windows keep what
exhunt reads are walked (``INTERESTING``), plus any top-level folder whose name says Exchange, IIS or
logs: a full walk of a server's system drive lists hundreds of thousands of files nobody parses.
Paths are presented as ``C/...`` like a KAPE or plain copy. An image that gives no file is a
warning with the reason, never an empty host.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from exhunt.errors import EvidenceError, MissingExtraError
from exhunt.evidence import image_edges
from exhunt.evidence.archive_members import GuardedStream
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.image_ntfs import broken_index_blocks
from exhunt.evidence.image_volumes import (
    Volume,
    boot_sector_kind,
    cut_volumes,
    dissect_log,
    notable,
    unread_reasons,
    volumes,
)
from exhunt.evidence.names import printable
from exhunt.evidence.readonly import open_readonly

SUFFIXES = (".e01", ".ex01", ".vmdk", ".vhd", ".vhdx", ".raw", ".dd", ".img", ".qcow2", ".vdi")
SPLIT_RAW = re.compile(r"\.001$")  # the first segment of a split raw image (x.001, x.dd.001)
MAGIC = (b"EVF\x09\x0d\x0a\xff\x00", b"LVF\x09\x0d\x0a\xff\x00", b"KDMV", b"# Disk DescriptorFile",
         b"vhdxfile", b"conectix", b"QFI\xfb")
INTERESTING = (
    "program files/microsoft/exchange server",
    "exchange server",
    "inetpub",
    "windows/system32/winevt/logs",
    "windows/system32/logfiles",
    "windows/temp",
    "programdata",
    "perflogs",
    # the other staging folders the post-exploitation checks name (HAFNIUM's C:\root\lsass.dmp)
    "root",
    "users/public",
)
TOP_KEYWORDS = ("exchange", "iis", "w3svc", "log")  # a top-level folder so named is walked whole (LogFiles too)
# top-level folders a responder or a collector leaves on a server (C:\IR\<host>, as this README advises)
COLLECTION_TOPS = frozenset({"ir", "kape", "triage", "collection", "collections", "evidence", "exports", "export"})
# a system drive's own top-level folders: no note for leaving them (or most of them) unwalked
SYSTEM_TOPS = frozenset({"$recycle.bin", "boot", "documents and settings", "program files", "program files (x86)",
                         "programdata", "recovery", "system volume information", "users", "windows", "config.msi",
                         "msocache", "$windows.~bt", "$windows.~ws", "$winreagent", "intel", "perflogs", "inetpub",
                         "root", "$sysreset", "onedrivetemp", "$getcurrent"})
MAX_DEPTH = 64
FAT_LOCAL_TIMES = ("FAT keeps file times in the writing machine's local time with no zone, and the last access "
                   "as a date: read as UTC (shift them by that machine's UTC offset)")
FEATURE = "reading disk and VM images (E01, VMDK, VHD/VHDX, raw)"


def _require() -> Any:
    if importlib.util.find_spec("dissect.target") is None:
        raise MissingExtraError(FEATURE, "images")
    from dissect.target import Target

    return Target


@dataclass(frozen=True)
class OpenedImage:
    target: Any
    volumes: list[Volume]
    notes: list[str]  # what dissect said while opening it that a responder should see
    edges: list[image_edges.EdgeWatch] = field(default_factory=list)  # the files its disks read from


_TARGETS: OrderedDict[str, OpenedImage] = OrderedDict()


def _member_stream(member: EvidenceFile) -> Any:
    """The file system's stream of ``member``; any failure to find or open it is an OSError."""
    try:
        opened = _target(member.root)
        volume = opened.volumes[int(member.locator[0])]
        return _WithinImage(volume.fs.path(member.locator[1]).open("rb"), opened.edges)
    except (EvidenceError, MissingExtraError) as exc:
        raise OSError(str(exc)) from exc
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise OSError(f"cannot read from image: {type(exc).__name__}: {exc}") from exc


class _WithinImage:
    """A member's stream that fails where its data lies past the end of a cut image (which dissect
    reads as zeros): the worker then warns, and the file counts as not read."""

    def __init__(self, inner: Any, edges: list[image_edges.EdgeWatch]) -> None:
        self.inner = inner
        self.edges = edges

    def read(self, size: int = -1) -> bytes:
        before = image_edges.hits(self.edges)
        data = self.inner.read(size)
        if self.edges and image_edges.hits(self.edges) != before:
            raise OSError(f"image {image_edges.describe(self.edges)}; this file's data is among it")
        return bytes(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SeekableMember(io.RawIOBase):
    """An image member's stream, read and seek errors of hostile file system data made OSError."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return bytes(self._guarded(self.inner.read, size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._guarded(self.inner.seek, offset, whence))

    def tell(self) -> int:
        return int(self._guarded(self.inner.tell))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.inner.close()
        super().close()

    @staticmethod
    def _guarded(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt file system data
            raise OSError(f"cannot read from image: {type(exc).__name__}: {exc}") from exc


def _target(root: str) -> OpenedImage:
    if root not in _TARGETS:
        target_cls = _require()
        with dissect_log() as records:
            try:
                target = target_cls.open(root, apply=False)
                edges = image_edges.watch(target)  # before the volumes are read
                target.apply()
            except Exception as exc:  # noqa: BLE001 - any loader failure on a hostile image
                said = "; ".join(notable(records)[:3])
                raise EvidenceError(f"cannot open image: {_reason(exc)}" + (f" ({said})" if said else "")) from exc
        notes = notable(records)
        found = volumes(target, notes)  # notes repeated partition entries
        _TARGETS[root] = OpenedImage(target, found, notes + unread_reasons(target) + cut_volumes(target), edges)
        while len(_TARGETS) > 2:
            _TARGETS.popitem(last=False)
    return _TARGETS[root]


def _reason(exc: BaseException) -> str:
    """dissect wraps the reason ("Failed to load target" <- container error <- EOFError): name them all."""
    chain: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 4:
        chain.append(str(cause) or ("the file ends early" if isinstance(cause, EOFError) else type(cause).__name__))
        cause = cause.__cause__
    return ": ".join(chain[1:] or chain)


def _wanted(lower: str) -> bool:
    """Whether a folder or file (path below the drive, lower case) is walked."""
    top = lower.split("/", 1)[0]
    return (any(i.startswith(lower) or lower.startswith(i) for i in INTERESTING)
            or "exchange" in lower
            or (not top.startswith("$")  # NTFS's own $LogFile, $Extend: not logs of anyone's
                and (any(k in top for k in TOP_KEYWORDS) or top in COLLECTION_TOPS)))


class _WalkedFolders:
    """The folders of one volume walked so far, by inode (NTFS record, FAT cluster). Folders have no
    hard links on NTFS or FAT: a folder met twice is a damaged or hostile file system whose entries
    point back up the tree, and walking it again would go on until MAX_DEPTH in every branch (two such
    entries per folder: 2**64 paths)."""

    def __init__(self, fs: Any) -> None:
        self.seen: set[int] = set()
        # an entry pointing at the root is a loop too; a root without stat information only loses that check
        with contextlib.suppress(Exception):
            self.first_visit(fs.path("/"))

    def first_visit(self, folder: Any) -> bool:
        inode = getattr(folder.lstat(), "st_ino", None)
        if inode is None:  # a file system without inodes: depth is the only bound
            return True
        if inode in self.seen:
            return False
        self.seen.add(inode)
        return True


def _seconds(st: Any, name: str) -> float | None:
    """A stat time in seconds from its exact nanoseconds where the file system gives them (dissect's
    float ``st_mtime`` is a microsecond off the folder copy's time on most files)."""
    nanoseconds = getattr(st, f"st_{name}_ns", None)
    if isinstance(nanoseconds, int):
        whole, part = divmod(nanoseconds, 1_000_000_000)
        return whole + part * 1e-9  # as CPython's os.stat makes a folder copy's float, bit for bit
    return getattr(st, f"st_{name}", None)


IMAGE_AT_LEAST = 1 << 20  # a file named like an image but smaller holds no drive worth opening


def image_kind(name: str, head: bytes, size: int) -> str | None:
    """What a file found inside the evidence is, when it is a disk or VM image (its magic bytes, a
    boot sector, or an image's name and size): such a file is only opened as evidence of its own."""
    if head.startswith(MAGIC):
        return "VM or forensic container"
    if size < IMAGE_AT_LEAST:  # most files: nothing more to look at
        return None
    kind = boot_sector_kind(head)
    if kind is not None and size >= IMAGE_AT_LEAST:
        return kind
    if name.lower().endswith(SUFFIXES) and size >= IMAGE_AT_LEAST:
        return "image named " + name.rsplit(".", 1)[-1].upper()
    return None


class ImageSource(Source):
    name = "image"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        _require()  # fail early with the name of the extra

    @classmethod
    def detect(cls, path: Path) -> bool:
        if not path.is_file():
            return False
        if path.name.lower().endswith(SUFFIXES):
            return True
        try:
            with open_readonly(path) as f:
                head = f.read(4096)
        except OSError:
            return False
        if head.startswith(MAGIC):
            return True
        # a bare volume or disk under any name; a ".001" with its ".002" (a lone one may be a rotated log)
        return boot_sector_kind(head) is not None or (
            SPLIT_RAW.search(path.name) is not None and path.with_name(path.name[:-3] + "002").is_file())

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        image = self.root.name
        try:
            opened = _target(str(self.root))
        except EvidenceError as exc:
            warn(image, f"image {image}: nothing read: {exc}")
            return
        if not opened.volumes:
            warn(image, f"image {image}: nothing read: " + "; ".join(opened.notes or ["no volume found"]))
            return
        for note in opened.notes:
            warn(image, f"image {image}: {note}")
        listed = 0
        tops_seen: list[str] = []
        not_walked: list[tuple[str, str]] = []
        for index, volume in enumerate(opened.volumes):
            try:
                tops = sorted(volume.fs.path("/").iterdir(), key=lambda p: p.name)
            except Exception as exc:  # noqa: BLE001
                warn(volume.drive, f"image {image}: cannot list {volume.describe()}: {type(exc).__name__}: {exc}")
                continue
            if volume.kind == "fat":  # dissect.fat lists the volume label entry as a file
                tops = [p for p in tops if p.name != volume.label]
            names = [p.name for p in tops]
            tops_seen.append(f"{volume.describe()}: " + (", ".join(names[:8]) or "empty")
                             + (", ..." if len(names) > 8 else ""))
            walked = _WalkedFolders(volume.fs)
            skipped = []
            before = listed
            for top in tops:
                if _wanted(top.name.lower()):
                    for file in self._walk(top, f"{volume.drive}/{top.name}", str(index), warn, 0, walked):
                        listed += 1
                        yield file
                elif top.name.lower() not in SYSTEM_TOPS and not top.name.startswith("$"):
                    skipped.append(top.name)
            if volume.kind == "fat" and listed > before:  # the times of what was listed
                warn(volume.drive, f"image {image}: {volume.describe()}: {FAT_LOCAL_TIMES}")
            if skipped:  # a folder the walk leaves out may be a relocated log folder or a collection
                not_walked.append((volume.drive, f"image {image}: {volume.describe()}: top-level folders not walked "
                                   f"(not where Exchange, IIS or Windows keep their logs): {', '.join(skipped[:12])}"
                                   f"{', ...' if len(skipped) > 12 else ''}; scan a copy of them to read them"))
        cut = image_edges.describe(opened.edges)
        if cut:  # folders listed as empty, files missing: no reader error tells
            warn(image, f"image {image}: {cut}")
        if not listed and tops_seen:  # this names every top-level folder
            warn(image, f"image {image}: nothing read: no Exchange, IIS or Windows log folder found on "
                 + "; ".join(tops_seen))
        else:
            for drive, message in not_walked:
                warn(drive, message)

    def _walk(self, path: Any, rel: str, volume: str, warn: Callable[[str, str], None],
              depth: int, walked: _WalkedFolders) -> Iterator[EvidenceFile]:
        lower = rel.split("/", 1)[1].lower() if "/" in rel else ""
        if not _wanted(lower):
            return
        shown = printable(rel)[0]
        if depth > MAX_DEPTH:
            warn(shown, f"folder nesting deeper than {MAX_DEPTH}: not descended")
            return
        try:
            if path.is_symlink():
                warn(shown, "symbolic link or junction not followed")
                return
            if path.is_file():
                st = path.lstat()
                yield EvidenceFile(self.name, str(self.root), shown, int(st.st_size),
                                   _seconds(st, "mtime"), _seconds(st, "ctime"), _seconds(st, "atime"),
                                   (volume, str(path)))
                return
            if not walked.first_visit(path):
                warn(shown, "folder already walked under another name (a loop in the file system): not descended")
                return
            children = sorted(path.iterdir(), key=lambda p: p.name)
            broken = broken_index_blocks(path.get())
        except Exception as exc:  # noqa: BLE001 - corrupt file system structures are warnings
            warn(shown, f"cannot read: {type(exc).__name__}: {exc}")
            return
        if broken is not None and broken[0]:
            warn(shown, f"folder index damaged: {broken[0]} of its {broken[1]} index blocks unreadable (zeroed or "
                        "overwritten): the files listed in them are not read (missing from this scan)")
        for child in children:
            yield from self._walk(child, f"{rel}/{child.name}", volume, warn, depth + 1, walked)

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        return io.BufferedReader(GuardedStream(_member_stream(member), member.size))  # type: ignore[return-value]

    @classmethod
    def open_seekable(cls, member: EvidenceFile) -> BinaryIO | None:
        """The file system's own stream (NTFS and FAT files seek), its errors made OSError: a big
        event log in an image goes in ranges like one in a folder."""
        return SeekableMember(_member_stream(member))  # type: ignore[return-value]

    def default_host(self) -> str:
        stem = self.root.stem
        return (stem.rsplit(".", 1)[0] if SPLIT_RAW.search(self.root.name) else stem) or "host"

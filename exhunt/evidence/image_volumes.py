"""The volumes of a disk image as drives, and why a volume gave nothing (what dissect only logs).

dissect.target mounts drive letters only where an OS plugin finds Windows on the image. An image
of a data volume (Exchange on D:, logs on E:, no Windows folder) has no OS, so dissect mounts its
one filesystem at ``/`` (several at ``fs0``, ``fs1``...). Every filesystem is presented as a drive
here: the OS plugin's letter where there is one, otherwise the next free letter from D in the
order dissect found them, so path-based checks see ``D/Program Files/Microsoft/Exchange Server/...``
as they would in a KAPE copy. A volume dissect cannot read is named with the reason, from its own
boot sector, never left silent.
"""

from __future__ import annotations

import importlib.util
import logging
import string
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

FIRST_DATA_DRIVE = "D"
EMPTY_PROBE = 1 << 20  # bytes of an unidentified volume read to tell "empty" from "unknown"
# dissect's own log lines that say nothing the warnings below do not say better
ROUTINE_LOG = ("Failed to find OS plugin", "Can't identify volume system", "Can't identify filesystem",
               "Failed to import", "Found volume with offset 0")
# dissect's words -> what they mean for the paths a responder reads
EXPLAINED = {"Failed to map drive letters": "Windows' drive letters could not be read from the registry (SYSTEM "
             "hive missing or damaged): volumes other than C are named D, E, ... in the order found"}
# filesystem -> the dissect module that reads it (dissect.target imports these lazily, and a
# missing one only shows in its log)
READERS = {"FAT": "dissect.fat", "exFAT": "dissect.fat", "ext2/3/4": "dissect.extfs", "XFS": "dissect.xfs",
           "Btrfs": "dissect.btrfs"}


@dataclass(frozen=True)
class Volume:
    drive: str  # the folder name artifacts see: "C", "D", ...
    fs: Any  # a dissect.target Filesystem
    kind: str  # dissect's filesystem type: "ntfs", "fat", ...
    label: str

    def describe(self) -> str:
        return f"{self.drive}: ({self.kind}" + (f", label {self.label!r})" if self.label else ")")


@contextmanager
def dissect_log() -> Iterator[list[tuple[int, str]]]:
    """Collect what dissect.target logs (INFO and up) while the block runs, and keep it off stderr."""
    records: list[tuple[int, str]] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                records.append((record.levelno, record.getMessage()))
            except Exception:  # noqa: BLE001 - a badly formatted log call must not stop the scan
                records.append((record.levelno, str(record.msg)))

    parent = logging.getLogger("dissect.target")
    children = [logging.getLogger(f"dissect.target.{name}") for name in ("target", "filesystem", "volume")]
    saved = parent.propagate, [c.level for c in children]
    handler = _Collect(logging.INFO)
    parent.addHandler(handler)
    parent.propagate = False
    for child in children:
        child.setLevel(logging.INFO)
    try:
        yield records
    finally:
        parent.removeHandler(handler)
        parent.propagate = saved[0]
        for child, level in zip(children, saved[1], strict=True):
            child.setLevel(level)


def notable(records: list[tuple[int, str]], limit: int = 10) -> list[str]:
    """dissect's warnings and errors worth a row (at most ``limit``, then a count); its routine notes
    on a data volume are left out."""
    out: list[str] = []
    for level, message in records:
        text = message.split(": ", 1)[1] if message.startswith("<Target") and ": " in message else message
        text = EXPLAINED.get(text, text)
        if level >= logging.WARNING and not text.startswith(ROUTINE_LOG) and text not in out:
            out.append(text)
    if len(out) > limit:
        return out[:limit] + [f"and {len(out) - limit} more warnings from dissect.target"]
    return out


def _label(fs: Any) -> str:
    try:
        if getattr(fs, "__type__", "") == "fat":
            return str(fs.fatfs.volume_label or "")
        if getattr(fs, "__type__", "") == "ntfs":
            return str(fs.ntfs.volume_name or "")
    except Exception:  # noqa: BLE001 - a damaged $Volume record only loses the label
        return ""
    return ""


def _extent(fs: Any) -> tuple[int, int, int, str] | None:
    """Where a filesystem lies on its disk (partition table, offset, size) and its type; None when
    dissect does not say."""
    volume = getattr(fs, "volume", None)
    vs, offset, size = getattr(volume, "vs", None), getattr(volume, "offset", None), getattr(volume, "size", None)
    if vs is None or not isinstance(offset, int) or not isinstance(size, int):
        return None
    return id(vs), offset, size, str(getattr(fs, "__type__", ""))


def volumes(target: Any, notes: list[str] | None = None) -> list[Volume]:
    """Every filesystem of the target once, with the drive letter it is presented under. Partition
    table entries that repeat another's extent are read once (a hostile table may repeat one entry
    thousands of times: every file would be listed, parsed and reported once per entry); ``notes``
    gets a line saying how many were left out."""
    letters: dict[int, str] = {}
    for mount, fs in getattr(target.fs, "mounts", {}).items():
        name = str(mount).lower()
        if len(name) == 2 and name[1] == ":" and name[0] in string.ascii_lowercase:
            letters.setdefault(id(fs), name[0].upper())
        elif name == "sysvol":
            letters.setdefault(id(fs), "C")
    filesystems: list[Any] = []
    ntfs_seen: set[int] = set()
    listed: set[int] = set()
    extents: set[tuple[int, int, int, str]] = set()
    repeated = 0
    for fs in target.filesystems:
        inner = getattr(fs, "ntfs", None)
        if id(fs) in listed:
            continue
        extent = _extent(fs)
        if extent is not None and extent in extents and id(fs) not in letters:
            repeated += 1
            continue
        if inner is not None:
            if getattr(fs, "__type__", "") != "ntfs" and id(inner) in ntfs_seen:
                continue  # dissect's virtual view of an NTFS volume listed already
            ntfs_seen.add(id(inner))
        filesystems.append(fs)
        listed.add(id(fs))
        if extent is not None:
            extents.add(extent)
    if repeated and notes is not None:
        notes.append(f"{repeated} partition table entries repeat another partition's extent: each read once")
    used = set(letters.values())
    free = iter(c for c in string.ascii_uppercase if c >= FIRST_DATA_DRIVE and c not in used)
    out: list[Volume] = []
    for fs in filesystems:
        drive = letters.get(id(fs)) or next(free, None)
        if drive is None:  # more than 23 unnamed volumes: name the rest by number
            drive = f"volume{len(out) + 1}"
        out.append(Volume(drive, fs, str(getattr(fs, "__type__", "unknown")), _label(fs)))
    return sorted(out, key=lambda v: (len(v.drive), v.drive))


def boot_sector_kind(head: bytes) -> str | None:
    """What a volume's or disk's first bytes say it holds (only the kinds a Windows server has)."""
    oem = head[3:11]
    if oem == b"NTFS    ":
        return "NTFS"
    if oem == b"EXFAT   ":
        return "exFAT"
    if oem == b"-FVE-FS-":
        return "BitLocker"
    if oem.startswith(b"ReFS"):
        return "ReFS"
    if head[510:512] == b"\x55\xaa" and (head[54:59] in (b"FAT12", b"FAT16") or head[82:87] == b"FAT32"):
        return "FAT"
    if head[512:520] == b"EFI PART":
        return "GPT partition table"
    if len(head) > 1082 and head[1080:1082] == b"\x53\xef":
        return "ext2/3/4"
    if head[:4] == b"XFSB":
        return "XFS"
    if head[510:512] == b"\x55\xaa" and _partition_entries_valid(head):
        return "MBR partition table"
    return None


def _partition_entries_valid(head: bytes) -> bool:
    """An MBR's four entries: status 0 or 0x80, and at least one typed entry with a start and a length
    (so a file that merely has 55 AA at byte 510 is not taken for a disk)."""
    entries = [struct.unpack_from("<B3sB3sII", head, 446 + 16 * i) for i in range(4)]
    if any(status not in (0, 0x80) for status, *_ in entries):
        return False
    typed = [(start, length) for _, _, kind, _, start, length in entries if kind]
    return bool(typed) and all(start > 0 and length > 0 for start, length in typed)


def unread_volume_reason(volume: Any) -> str | None:
    """Why dissect gave no filesystem for this volume; None when there is nothing to say."""
    try:
        volume.seek(0)
        head = volume.read(EMPTY_PROBE)
    except Exception as exc:  # noqa: BLE001 - a truncated image fails here
        return f"cannot read: {type(exc).__name__}: {exc}"
    kind = boot_sector_kind(head)
    if kind is not None and kind.endswith("partition table"):
        return None  # its partitions are volumes of their own
    size = getattr(volume, "size", None) or len(head)
    if getattr(volume, "vs", None) is None:
        where = f"no partition table, and the whole image ({size} bytes)"
    else:
        where = f"partition {getattr(volume, 'number', '?')} (offset {getattr(volume, 'offset', 0)}, {size} bytes)"
    if not head.strip(b"\x00"):
        return f"{where} holds only zeros: no filesystem"
    if kind is None:
        return f"{where}: filesystem not identified (no NTFS, FAT, exFAT or ReFS boot sector)"
    if kind == "BitLocker":
        return f"{where}: BitLocker-encrypted; decrypt it with the recovery key and scan the decrypted image"
    if kind == "ReFS":
        return f"{where}: ReFS, which dissect.target does not read; copy the files from a mounted copy instead"
    module = READERS.get(kind)
    if module and importlib.util.find_spec(module) is None:
        install = "'exhunt[images]'" if module == "dissect.fat" else module
        return (f"{where}: {kind} filesystem, but {module}, the dissect module that reads it, is not "
                f"installed (pip install {install})")
    return f"{where}: {kind} boot sector found, but dissect could not open the filesystem (damaged?)"


def declared_size(head: bytes) -> int | None:
    """The bytes an NTFS or FAT boot sector says its volume spans (None for other kinds)."""
    kind = boot_sector_kind(head)
    if kind not in ("NTFS", "FAT") or len(head) < 40:
        return None
    sector = struct.unpack_from("<H", head, 11)[0]
    if kind == "NTFS":
        return sector * struct.unpack_from("<Q", head, 40)[0]
    small, large = struct.unpack_from("<H", head, 19)[0], struct.unpack_from("<I", head, 32)[0]
    return sector * (small or large)


def cut_volumes(target: Any, limit: int = 10) -> list[str]:
    """Volumes that reach past the end of their image, a raw or split image copied in part (a
    container's own tables are watched by ``image_edges``): a partition the table sizes beyond the
    disk's end, or a bare volume whose boot sector counts more bytes than the image holds."""
    cut: list[str] = []
    for volume in getattr(target, "volumes", ()):
        disk = getattr(volume, "disk", None)
        offset, size = getattr(volume, "offset", 0) or 0, getattr(volume, "size", None)
        end = getattr(disk, "size", None)
        if not isinstance(size, int) or not isinstance(end, int):
            continue
        claimed = offset + size
        if getattr(volume, "vs", None) is None:  # no partition table: the filesystem says its size
            try:
                volume.seek(0)
                claimed = offset + (declared_size(volume.read(512)) or 0)
            except Exception:  # noqa: BLE001 - unreadable: unread_volume_reason says so
                continue
        if claimed > end and len(cut) < limit:
            cut.append(f"cut short (copied in part?): the volume at offset {offset:,} spans {claimed - offset:,} "
                       f"bytes, but the image ends {end - offset:,} bytes into it: what lies past the end is not "
                       "read (copy the image again)")
    return cut


def unread_reasons(target: Any, limit: int = 10) -> list[str]:
    """One line per volume dissect found but could not read as a filesystem, for the first ``limit``
    of them, then a count: a hostile partition table may list thousands of entries (each reason reads
    up to EMPTY_PROBE bytes and would add a line to the warning)."""
    reasons: list[str] = []
    more = 0
    for volume in getattr(target, "volumes", ()):
        if getattr(volume, "fs", None) is not None:
            continue
        if len(reasons) >= limit:
            more += 1
            continue
        reason = unread_volume_reason(volume)
        if reason:
            reasons.append(reason)
    return reasons + ([f"and {more} more volumes not read"] if more else [])

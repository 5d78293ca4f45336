"""Disk images built at test time: a tiny FAT16 writer, MBR, VHD, VMDK with no tools to install,
and NTFS through Debian's mkntfs and ntfs-3g where they are installed and may mount.

Writes long (VFAT) names for every entry, so ``Program Files/Microsoft/Exchange Server`` keeps its
case and spaces; short names are unique placeholders. FAT timestamps are local time without a zone:
they are written as the UTC wall clock of each file's mtime (dissect.fat reads them as UTC).
``mbr_disk`` and ``gpt_disk`` put volumes in partitions, so one disk can hold a D: and an E: volume; ``fixed_vhd``
and ``flat_vmdk`` wrap a disk the way Hyper-V and VMware store one uncompressed.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SECTOR = 512
ROOT_ENTRIES = 512
ENTRY = 32
ATTR_DIR, ATTR_ARCHIVE, ATTR_LABEL, ATTR_LFN = 0x10, 0x20, 0x08, 0x0F
MIN_CLUSTERS, MAX_CLUSTERS = 4085, 65524  # the FAT16 range: fewer is FAT12, more is FAT32
PARTITION_START = 2048  # sectors, as Windows aligns partitions


@dataclass
class _Node:
    name: str
    data: bytes | None = None  # None: a folder
    mtime: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)
    cluster: int = 0
    clusters: int = 0


def _fat_datetime(ts: float) -> tuple[int, int]:
    t = datetime.fromtimestamp(max(ts, 315532800.0), UTC)  # FAT starts at 1980
    return ((t.year - 1980) << 9) | (t.month << 5) | t.day, (t.hour << 11) | (t.minute << 5) | (t.second // 2)


def _short_name(n: int) -> bytes:
    return f"X{n:07d}   ".encode("ascii")


def _checksum(short: bytes) -> int:
    total = 0
    for b in short:
        total = (((total & 1) << 7) + (total >> 1) + b) & 0xFF
    return total


def _lfn_count(name: str) -> int:
    return math.ceil(len(name.encode("utf-16-le")) // 2 / 13)


def _entries(node: _Node, short: bytes) -> bytes:
    """The LFN entries (last part first) and the short entry naming ``node``."""
    units = node.name.encode("utf-16-le")
    count = _lfn_count(node.name)
    padded = units + b"\x00\x00" if len(units) // 2 % 13 else units
    padded += b"\xff\xff" * (count * 13 - len(padded) // 2)
    out = b""
    for seq in range(count, 0, -1):
        part = padded[(seq - 1) * 26: seq * 26]
        order = seq | (0x40 if seq == count else 0)
        out += (bytes([order]) + part[:10] + bytes([ATTR_LFN, 0, _checksum(short)]) + part[10:22]
                + b"\x00\x00" + part[22:26])
    return out + _dirent(short, node)


def _dirent(short: bytes, node: _Node | None, cluster: int | None = None) -> bytes:
    if node is None:  # "." / ".." entries
        date, time = _fat_datetime(0)
        return short + struct.pack("<BBBHHHHHHHI", ATTR_DIR, 0, 0, time, date, date, 0, time, date,
                                   cluster or 0, 0)
    date, time = _fat_datetime(node.mtime)
    attr = ATTR_DIR if node.data is None else ATTR_ARCHIVE
    size = 0 if node.data is None else len(node.data)
    return short + struct.pack("<BBBHHHHHHHI", attr, 0, 0, time, date, date, 0, time, date,
                               node.cluster, size)


def _dir_bytes(node: _Node) -> int:
    return ENTRY * (2 + sum(_lfn_count(c.name) + 1 for c in node.children.values()))


def _tree(files: Mapping[str, bytes | tuple[bytes, float]]) -> _Node:
    root = _Node("")
    for path, value in files.items():
        data, mtime = value if isinstance(value, tuple) else (value, 1614772800.0)
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        node = root
        for part in parts[:-1]:
            node = node.children.setdefault(part.lower(), _Node(part, mtime=mtime))
        node.children[parts[-1].lower()] = _Node(parts[-1], data, mtime)
    return root


def fat16_volume(files: Mapping[str, bytes | tuple[bytes, float]], label: str = "EXCHDATA") -> bytes:
    """A FAT16 volume holding ``files`` ('/'-separated path -> bytes or (bytes, mtime))."""
    root = _tree(files)
    nodes: list[_Node] = []
    stack = list(root.children.values())
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.children.values())
    sizes = [(_dir_bytes(n) if n.data is None else len(n.data)) for n in nodes]
    per_cluster = 1
    while sum(max(1, math.ceil(s / (SECTOR * per_cluster))) for s in sizes) > MAX_CLUSTERS - 64:
        per_cluster *= 2
    cluster_size = SECTOR * per_cluster
    next_cluster = 2
    for node, size in zip(nodes, sizes, strict=True):
        node.clusters = math.ceil(size / cluster_size)
        if node.clusters:
            node.cluster, next_cluster = next_cluster, next_cluster + node.clusters
    clusters = max(next_cluster - 2 + 16, MIN_CLUSTERS + 16)
    fat_sectors = math.ceil((clusters + 2) * 2 / SECTOR)
    root_sectors = ROOT_ENTRIES * ENTRY // SECTOR
    data_start = 1 + 2 * fat_sectors + root_sectors
    total = data_start + clusters * per_cluster
    image = bytearray(total * SECTOR)

    boot = bytearray(SECTOR)
    boot[0:3] = b"\xeb\x3c\x90"
    boot[3:11] = b"EXHUNTFT"
    struct.pack_into("<HBHBHHBHHHII", boot, 11, SECTOR, per_cluster, 1, 2, ROOT_ENTRIES,
                     total if total < 0x10000 else 0, 0xF8, fat_sectors, 63, 255, 0,
                     total if total >= 0x10000 else 0)
    struct.pack_into("<BBBI11s8s", boot, 36, 0x80, 0, 0x29, 0x2021_0303, label.upper().ljust(11)[:11].encode(),
                     b"FAT16   ")
    boot[510:512] = b"\x55\xaa"
    image[0:SECTOR] = boot

    fat = bytearray(fat_sectors * SECTOR)
    struct.pack_into("<HH", fat, 0, 0xFFF8, 0xFFFF)
    for node in nodes:
        for i in range(node.clusters):
            nxt = 0xFFFF if i == node.clusters - 1 else node.cluster + i + 1
            struct.pack_into("<H", fat, (node.cluster + i) * 2, nxt)
    for copy in range(2):
        start = (1 + copy * fat_sectors) * SECTOR
        image[start:start + len(fat)] = fat

    serial = 1

    def listing(folder: _Node) -> bytes:
        nonlocal serial
        out = b""
        for child in folder.children.values():
            out += _entries(child, _short_name(serial))
            serial += 1
        return out

    def put(cluster: int, data: bytes) -> None:
        start = (data_start + (cluster - 2) * per_cluster) * SECTOR
        image[start:start + len(data)] = data

    label_entry = label.upper().ljust(11)[:11].encode() + bytes([ATTR_LABEL]) + bytes(20)
    root_listing = label_entry + listing(root)
    if len(root_listing) > ROOT_ENTRIES * ENTRY:
        raise ValueError("too many entries in the root folder for this FAT16 writer")
    root_start = (1 + 2 * fat_sectors) * SECTOR
    image[root_start:root_start + len(root_listing)] = root_listing
    parents = {id(c): root for c in root.children.values()}
    for node in nodes:
        parents.update({id(c): node for c in node.children.values()})
    for node in nodes:
        if node.data is None:
            parent = parents[id(node)]
            dots = _dirent(b".          ", None, node.cluster) + _dirent(b"..         ", None, parent.cluster)
            put(node.cluster, dots + listing(node))
        elif node.data:
            put(node.cluster, node.data)
    return bytes(image)


def mbr_disk(*volumes: bytes) -> bytes:
    """An MBR disk holding ``volumes`` as primary partitions (type 0x06, FAT16), 1 MiB aligned."""
    if len(volumes) > 4:
        raise ValueError("an MBR holds four primary partitions")
    table = bytearray(SECTOR)
    disk = bytearray()
    lba = PARTITION_START
    layout = []
    for i, volume in enumerate(volumes):
        sectors = math.ceil(len(volume) / SECTOR)
        struct.pack_into("<B3sB3sII", table, 446 + 16 * i, 0, b"\xfe\xff\xff", 0x06, b"\xfe\xff\xff", lba, sectors)
        layout.append((lba, volume))
        lba += math.ceil(sectors / PARTITION_START) * PARTITION_START
    table[510:512] = b"\x55\xaa"
    disk = bytearray(lba * SECTOR)
    disk[0:SECTOR] = table
    for start, volume in layout:
        disk[start * SECTOR:start * SECTOR + len(volume)] = volume
    return bytes(disk)


BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")  # a Windows data partition's GPT type


def gpt_disk(*volumes: bytes) -> bytes:
    """A GPT disk (protective MBR, primary and backup tables) holding ``volumes`` as basic-data partitions."""
    entries = bytearray(128 * 128)
    lba, layout = PARTITION_START, []
    for i, volume in enumerate(volumes):
        sectors = math.ceil(len(volume) / SECTOR)
        struct.pack_into("<16s16sQQQ72s", entries, 128 * i, BASIC_DATA.bytes_le, uuid.UUID(int=i + 1).bytes_le,
                         lba, lba + sectors - 1, 0, f"Basic data partition {i + 1}".encode("utf-16-le"))
        layout.append((lba, volume))
        lba += math.ceil(sectors / PARTITION_START) * PARTITION_START
    last = lba + 33  # the backup table's 32 sectors of entries and its header
    disk = bytearray((last + 1) * SECTOR)

    def header(current: int, backup: int, table: int) -> bytes:
        fields = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, current, backup,
                             PARTITION_START, lba - 1, uuid.UUID(int=99).bytes_le, table, 128, 128,
                             zlib.crc32(entries))
        return fields[:16] + struct.pack("<I", zlib.crc32(fields)) + fields[20:]

    protective = bytearray(SECTOR)
    struct.pack_into("<B3sB3sII", protective, 446, 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, min(last, 0xFFFFFFFF))
    protective[510:512] = b"\x55\xaa"
    disk[0:SECTOR] = protective
    disk[SECTOR:SECTOR + 92] = header(1, last, 2)
    disk[2 * SECTOR:2 * SECTOR + len(entries)] = entries
    disk[(last - 32) * SECTOR:(last - 32) * SECTOR + len(entries)] = entries
    disk[last * SECTOR:last * SECTOR + 92] = header(last, 1, last - 32)
    for start, volume in layout:
        disk[start * SECTOR:start * SECTOR + len(volume)] = volume
    return bytes(disk)


def fixed_vhd(disk: bytes) -> bytes:
    """A fixed-size VHD: the disk followed by its 512-byte footer ("conectix")."""
    size = len(disk)
    cylinders = min(65535, size // (16 * 63 * SECTOR))
    footer = bytearray(struct.pack(">8sIIQI4sI4sQQHBBII16sB", b"conectix", 2, 0x00010000, 0xFFFFFFFFFFFFFFFF,
                                   0, b"exht", 0x00010000, b"Wi2k", size, size, cylinders, 16, 63, 2, 0,
                                   uuid.UUID(int=1).bytes, 0))
    footer += bytes(SECTOR - len(footer))
    struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
    return disk + bytes(footer)


def flat_vmdk(disk: bytes, descriptor: Path) -> Path:
    """A monolithic-flat VMDK: a text descriptor next to ``<name>-flat.vmdk`` holding the disk."""
    flat = descriptor.with_name(descriptor.stem + "-flat.vmdk")
    flat.write_bytes(disk)
    descriptor.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"
        f"RW {len(disk) // SECTOR} FLAT \"{flat.name}\" 0\n\n"
        "ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"lsilogic\"\n")
    return flat


class ToolMissing(Exception):
    """The Debian tools that build an NTFS volume are missing or cannot mount here (the test skips)."""


def ntfs_volume(files: Mapping[str, bytes | tuple[bytes, float]], work: Path, label: str = "EXCHDATA") -> bytes:
    """An NTFS volume holding ``files``, made by mkntfs and filled through an ntfs-3g (FUSE) mount."""
    mkntfs, ntfs3g = shutil.which("mkntfs") or shutil.which("mkntfs", path="/usr/sbin:/sbin"), shutil.which("ntfs-3g")
    if not mkntfs or not ntfs3g:
        raise ToolMissing("mkntfs/ntfs-3g not installed (Debian ntfs-3g; .ci/run installs it)")
    image, mount = work / "ntfs.img", work / "ntfs-mount"
    mount.mkdir()
    size = sum(len(v[0] if isinstance(v, tuple) else v) for v in files.values())
    with open(image, "wb") as f:
        f.truncate(max(8 << 20, size * 2 + (4 << 20)))
    subprocess.run([mkntfs, "-F", "-Q", "-q", "-L", label, str(image)], check=True, capture_output=True, timeout=60)
    # no_detach: the process ends only once ntfs-3g has written everything back at unmount
    daemon = subprocess.Popen([ntfs3g, str(image), str(mount), "-o", "no_detach"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not os.path.ismount(mount):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            err = (daemon.communicate()[1] or b"").decode(errors="replace").strip()
            raise ToolMissing(f"ntfs-3g cannot mount here: {err[-200:]}")
        time.sleep(0.05)
    try:
        for rel, value in files.items():
            data, mtime = value if isinstance(value, tuple) else (value, 1614772800.0)
            path = mount / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (mtime, mtime))
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, timeout=60).returncode:
            subprocess.run(["fusermount", "-u", str(mount)], capture_output=True, timeout=60)
        daemon.communicate(timeout=60)
    data = image.read_bytes()
    image.unlink()
    return data


def gpt_repeated_partition(volume: bytes, count: int) -> bytes:
    """A hostile GPT disk: ``count`` table entries (a table larger than the usual 128) that all point at
    the one ``volume``."""
    table_sectors = math.ceil(count * 128 / SECTOR)
    start = math.ceil((2 + table_sectors) / PARTITION_START) * PARTITION_START
    end = start + math.ceil(len(volume) / SECTOR) - 1
    entries = bytearray(table_sectors * SECTOR)
    for i in range(count):
        struct.pack_into("<16s16sQQQ", entries, 128 * i, BASIC_DATA.bytes_le, uuid.UUID(int=i + 1).bytes_le,
                         start, end, 0)
    last = end + 1
    disk = bytearray((last + 1) * SECTOR)
    fields = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, 1, last, start, end,
                         uuid.UUID(int=99).bytes_le, 2, count, 128, zlib.crc32(entries[:count * 128]))
    protective = bytearray(SECTOR)
    struct.pack_into("<B3sB3sII", protective, 446, 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, last)
    protective[510:512] = b"\x55\xaa"
    disk[0:SECTOR] = protective
    disk[SECTOR:SECTOR + 92] = fields[:16] + struct.pack("<I", zlib.crc32(fields)) + fields[20:]
    disk[2 * SECTOR:2 * SECTOR + len(entries)] = entries
    disk[start * SECTOR:start * SECTOR + len(volume)] = volume
    return bytes(disk)

"""A container image cut short (a VHDX, VMDK, qcow2 or VDI copied in part): dissect reads the blocks its
tables place past the file's end as nothing, so folders list as empty and files read as zeros, and a
compromised host came out clean with no warning. Each file the container reads from is watched: a read
that the file's end cuts short is counted, and the listing and the member reads say so.

Written here because dissect has no such check: its containers join whatever ``read`` returns.
"""

from __future__ import annotations

import io
import os
from typing import Any

FILE_TYPES = (io.BufferedReader, io.FileIO, io.BufferedRandom)
SLACK = 64 << 10  # a read past the end that starts this close to it is alignment, not a block
MAX_DEPTH = 4  # container -> format object -> extent list -> extent -> file


class EdgeWatch:
    """A file object that records reads ending past its end; everything else goes to the file."""

    def __init__(self, inner: Any, name: str, size: int) -> None:
        self._inner = inner
        self.name = name
        self.size = size
        self.hits = 0
        self.reach = 0  # the furthest byte a cut read asked for

    def read(self, size: int | None = -1) -> bytes:
        at = self._inner.tell()
        data = self._inner.read(size)
        if size is not None and size > 0 and len(data) < size:
            self._cut(at, size)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        at = self._inner.tell()
        n = int(self._inner.readinto(buffer) or 0)
        if n < len(buffer):
            self._cut(at, len(buffer))
        return n

    def _cut(self, at: int, size: int) -> None:
        # a block the tables place past the end, or across it. Not a read that starts within the
        # last ``SLACK`` bytes and runs past the end: the container's own aligned read of its last
        # sectors (a fixed VHD's footer probe reads 8 KiB there), which had called intact images cut
        if at + size > self.size and (at >= self.size or self.size - at > SLACK):
            self.hits += 1
            self.reach = max(self.reach, at + size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# containers that hold the disk's bytes as they are (a raw or split image): no table can point past
# their end, and a volume reaching past it is ``image_volumes.cut_volumes``'s to say
PLAIN_CONTAINERS = frozenset({"RawContainer", "SplitContainer"})


def watch(target: Any) -> list[EdgeWatch]:
    """Put an ``EdgeWatch`` in place of every file object of the target's disks (their containers'
    attributes, a few levels down: a VMDK's extents hold a file each)."""
    found: list[EdgeWatch] = []
    seen: set[int] = set()
    for disk in getattr(target, "disks", ()) or ():
        if type(disk).__name__ not in PLAIN_CONTAINERS:
            _replace(disk, found, seen, 0)
    return found


def _replace(node: Any, found: list[EdgeWatch], seen: set[int], depth: int) -> None:
    if depth > MAX_DEPTH or id(node) in seen:
        return
    seen.add(id(node))
    attributes = getattr(node, "__dict__", None)
    if isinstance(attributes, dict):
        for key, value in list(attributes.items()):
            wrapped = _wrapped(value, found)
            if wrapped is not None:
                attributes[key] = wrapped
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    wrapped = _wrapped(item, found)
                    if wrapped is not None:
                        value[index] = wrapped
                    else:
                        _replace(item, found, seen, depth + 1)
            elif type(value).__module__.startswith("dissect."):
                _replace(value, found, seen, depth + 1)


def _wrapped(value: Any, found: list[EdgeWatch]) -> EdgeWatch | None:
    if not isinstance(value, FILE_TYPES):
        return None
    try:
        size = os.fstat(value.fileno()).st_size
    except (OSError, ValueError):
        return None
    edge = EdgeWatch(value, os.path.basename(str(getattr(value, "name", "?"))), size)
    found.append(edge)
    return edge


def hits(edges: list[EdgeWatch]) -> int:
    return sum(e.hits for e in edges)


def describe(edges: list[EdgeWatch]) -> str | None:
    """What a cut image lost, or None when every read stayed inside its files."""
    cut = [e for e in edges if e.hits]
    if not cut:
        return None
    parts = [f"{e.name} holds {e.size:,} bytes, but its tables place data up to byte {e.reach:,}" for e in cut[:3]]
    return ("cut short (copied in part?): " + "; ".join(parts) + ". What lies past the end reads as empty: the "
            "folders and files stored there are not read (copy the image again)")

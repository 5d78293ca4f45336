"""Velociraptor offline-collector zip: ``uploads/<accessor>/<encoded device>/...`` mapped to ``C/...``.

The collector stores each uploaded file under its accessor (``auto``, ``ntfs``, ``file``) with the
path percent-encoded component by component: ``uploads/auto/C%3A/Program Files/...`` or
``uploads/ntfs/%5C%5C.%5CC%3A/...`` (the raw device ``\\\\.\\C:``). Paths are decoded and the drive
becomes its letter, so artifacts see the same names as in a KAPE or plain copy. The same file
uploaded by two accessors is read once. Collector metadata (``results/``, ``log.json``...) is kept
under its own name.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

from exhunt.evidence.archive import ArchiveSource, list_archive
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.names import safe_relative
from exhunt.evidence.readonly import open_readonly

MARKERS = ("collection_context.json", "uploads.json", "log.json", "client_info.json", "requests.json")
_DEVICE = re.compile(r"^(?:\\\\[.?]\\)?([A-Za-z]):?$")
_SHADOW = re.compile(r"^\\\\[.?]\\(?:GLOBALROOT\\Device\\)?(HarddiskVolumeShadowCopy\d+)$", re.I)


def upload_path(name: str) -> str | None:
    """Map one member name; None for a duplicate-accessor copy is decided by the caller."""
    return mapped_upload(name)[0]


def mapped_upload(name: str) -> tuple[str, str | None]:
    """The mapped name, and why it had to change beyond decoding (traversal, control characters...).
    Undecodable percent-escapes stay distinct (``%FF`` and ``%FE`` are two names, shown ``\\xff``)."""
    parts = name.split("/")
    if len(parts) < 4 or parts[0] != "uploads":
        return name, None
    device = unquote(parts[2], errors="surrogateescape")
    m = _DEVICE.match(device)
    if m:
        head = m.group(1).upper()
    else:
        shadow = _SHADOW.match(device)
        head = shadow.group(1) if shadow else device
    rest = [unquote(p, errors="surrogateescape") for p in parts[3:]]
    return safe_relative("/".join([head.replace("\\", "_"), *rest]))


class VelociraptorSource(ArchiveSource):
    name = "velociraptor"

    @classmethod
    def detect(cls, path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            with open_readonly(path) as f, zipfile.ZipFile(f) as zf:
                names = zf.namelist()
        except (OSError, zipfile.BadZipFile, ValueError):
            return False
        return any(n.startswith("uploads/") for n in names) and any(n in MARKERS for n in names)

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        seen: dict[str, str] = {}  # mapped name -> the accessor that uploaded it first

        def rename(clean: str) -> str | None:
            mapped, reason = mapped_upload(clean)
            if clean.startswith("uploads/"):
                accessor = clean.split("/", 2)[1]
                first = seen.setdefault(mapped.lower(), accessor)
                if first != accessor:  # the same file through another accessor: one copy is enough
                    warn(mapped, f"also uploaded as {clean!r} (another accessor): read once")
                    return None
                if reason:  # names of one accessor that map alike are kept apart by the archive lister
                    warn(mapped, f"upload name {clean!r} changed ({reason}): read as {mapped!r}")
            return mapped

        yield from list_archive(self.name, str(self.root), "", self.root, "", warn, rename)

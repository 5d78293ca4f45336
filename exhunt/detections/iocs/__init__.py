"""IOC lists in the formats responders have, behind one ``load_iocs(paths)``.

Readers are tried in this literal order; each has a cheap ``detect(path, head)`` and a
``read(path, text) -> IocSet``; the plain reader is the fallback. Bad lines are skipped with
their reason (they land in the document's ``rules`` report), never fatal.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from exhunt.detections.iocs import chirp, mscsv, plain, sigbase, stix
from exhunt.detections.iocs.model import Indicator, IocSet
from exhunt.errors import UsageError

READERS: tuple[ModuleType, ...] = (stix, chirp, mscsv, sigbase, plain)
LIST_SUFFIXES = (
    ".txt",
    ".csv",
    ".yaml",
    ".yml",
    ".json",
    ".lst",
    ".ioc",
    ".iocs",
    ".md5",
    ".sha1",
    ".sha256",
)
HEAD = 65536


def reader_for(path: Path, head: bytes) -> ModuleType:
    return next(r for r in READERS if r.detect(path, head))


def decode_list(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 (BOM, or a BOM-less UTF-16LE/BE text as PowerShell
    5's ``Out-File`` and Notepad write it); bytes that do not decode become U+FFFD."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    head = data[:512]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):  # ASCII as UTF-16: every other byte NUL
        even_nuls = head[0::2].count(0)
        return data.decode("utf-16-be" if even_nuls > head[1::2].count(0) else "utf-16-le", "replace")
    return data.decode("utf-8-sig", "replace")


def load_file(path: Path) -> IocSet:
    try:
        data = path.read_bytes()
    except OSError as exc:
        out = IocSet()
        out.skip(str(path), f"cannot read: {exc.strerror or exc}")
        return out
    text = decode_list(data)
    reader = reader_for(path, text[:HEAD].encode("utf-8", "replace"))
    result: IocSet = reader.read(path, text)
    return result


def load_iocs(paths: Sequence[Path]) -> IocSet:
    """Files, or folders searched recursively for list files (PDFs, YARA and licences are ignored)."""
    out = IocSet()
    for path in paths:
        if not path.exists():
            raise UsageError(f"--iocs {path}: no such file or folder")
        files = (
            [path]
            if path.is_file()
            else sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in LIST_SUFFIXES
                and "license" not in p.name.lower()
                and "readme" not in p.name.lower()
            )
        )
        for file in files:
            out.extend(load_file(file))
    return out


__all__ = ["Indicator", "IocSet", "READERS", "load_iocs"]

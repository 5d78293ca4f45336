"""Where evidence bytes come from: an explicit ordered registry of sources, directory last.

Specific layouts come before the generic ones they resemble: a Velociraptor collector zip before
any archive, a KAPE folder before any folder, images before single files.
"""

from __future__ import annotations

import os
from pathlib import Path

from exhunt.errors import EvidenceError
from exhunt.evidence.archive import ArchiveSource
from exhunt.evidence.archive_formats import sniff, unsupported
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.directory import DirectorySource
from exhunt.evidence.image import ImageSource
from exhunt.evidence.kape import KapeSource
from exhunt.evidence.readonly import open_readonly
from exhunt.evidence.single import SingleFileSource
from exhunt.evidence.velociraptor import VelociraptorSource

SOURCES: tuple[type[Source], ...] = (
    VelociraptorSource,
    ArchiveSource,
    ImageSource,
    KapeSource,
    SingleFileSource,
    DirectorySource,
)

ARCHIVE_NAMES = (".zip", ".7z", ".tar", ".tgz", ".rar", ".cab")


def _check_readable(path: Path) -> None:
    """One clear line for evidence that cannot be read at all (the CLI exits 2 on it)."""
    try:
        if path.is_dir():
            with os.scandir(path) as it:
                next(it, None)
            return
        with open_readonly(path) as f:
            head = f.read(512)
    except OSError as exc:
        raise EvidenceError(f"cannot read evidence {path}: {exc.strerror or exc} "
                            "(check the path and that this user may read it)") from exc
    kind = unsupported(head)
    if kind:
        raise EvidenceError(f"unsupported evidence format {kind}: {path} "
                            "(extract it, or repack it as zip, 7z or tar, and scan that)")
    if path.name.lower().endswith(ARCHIVE_NAMES) and sniff(head) is None:
        raise EvidenceError(f"unsupported or damaged archive: {path} (its first bytes are not "
                            "zip, 7z or tar; check the copy, or extract it and scan the folder)")


def open_evidence(path: Path) -> Source:
    """Pick the first source whose cheap ``detect`` accepts the path."""
    if not path.exists():
        raise EvidenceError(f"evidence not found: {path} (give a folder, a log file, an archive or an image)")
    _check_readable(path)
    for source in SOURCES:
        if source.detect(path):
            return source(path)
    raise EvidenceError(f"unsupported evidence: {path} (not a folder, file, archive or image)")


def source_by_name(name: str) -> type[Source]:
    for source in SOURCES:
        if source.name == name:
            return source
    raise EvidenceError(f"unknown evidence source: {name}")


__all__ = ["EvidenceFile", "Source", "SOURCES", "open_evidence", "source_by_name"]

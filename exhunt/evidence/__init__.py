"""Where evidence bytes come from: an explicit ordered registry of sources, directory last."""

from __future__ import annotations

from pathlib import Path

from exhunt.errors import EvidenceError
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.directory import DirectorySource
from exhunt.evidence.single import SingleFileSource

SOURCES: tuple[type[Source], ...] = (SingleFileSource, DirectorySource)


def open_evidence(path: Path) -> Source:
    """Pick the first source whose cheap ``detect`` accepts the path."""
    if not path.exists():
        raise EvidenceError(f"evidence not found: {path} (give a folder, a log file or an archive)")
    for source in SOURCES:
        if source.detect(path):
            return source(path)
    raise EvidenceError(f"unsupported evidence: {path} (not a folder, log file or known archive)")


def source_by_name(name: str) -> type[Source]:
    for source in SOURCES:
        if source.name == name:
            return source
    raise EvidenceError(f"unknown evidence source: {name}")


__all__ = ["EvidenceFile", "Source", "SOURCES", "open_evidence", "source_by_name"]

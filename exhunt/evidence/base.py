"""The evidence source protocol and the picklable handle a worker reopens a file with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar


@dataclass(frozen=True)
class EvidenceFile:
    """One file inside one evidence root. Picklable: workers reopen it through its source."""

    source: str  # name of the Source class that can reopen it
    root: str  # the evidence root as given on the command line
    rel: str  # '/'-separated path relative to the root, as the evidence names it
    size: int
    mtime: float | None = None
    ctime: float | None = None
    atime: float | None = None
    # how the source finds the bytes when ``rel`` (a cleaned, printable name) is not enough:
    # the real relative path, or (container, member, [nested member]) for archives
    locator: tuple[str, ...] = ()

    def open(self) -> BinaryIO:
        """Open read-only, through the source that listed the file."""
        from exhunt.evidence import source_by_name

        return source_by_name(self.source).open_member(self)

    def open_seekable(self) -> BinaryIO | None:
        """Open read-only as a stream that can seek (a big file's ranges read their own part), or None
        when the source cannot (an archive's compressed member is read from its start)."""
        from exhunt.evidence import source_by_name

        return source_by_name(self.source).open_seekable(self)

    @property
    def rel_lower(self) -> str:
        return self.rel.replace("\\", "/").lower()


class Source:
    """Base of evidence sources: ``detect`` is cheap, ``files`` lists, ``open_member`` reads."""

    name: ClassVar[str] = "base"

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def detect(cls, path: Path) -> bool:
        raise NotImplementedError

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        """Yield every regular file; problems go to ``warn(rel_path, message)``."""
        raise NotImplementedError

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        raise NotImplementedError

    @classmethod
    def open_seekable(cls, member: EvidenceFile) -> BinaryIO | None:
        """A raw stream of ``member`` that can seek, or None (see ``EvidenceFile.open_seekable``)."""
        return None

    def default_host(self) -> str:
        """A host name when none is given: the evidence folder or file stem."""
        return self.root.stem if self.root.is_file() else (self.root.resolve().name or "host")

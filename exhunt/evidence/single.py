"""A single file given on the command line (one log, one EVTX, one page)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.readonly import open_readonly as _open_readonly


class SingleFileSource(Source):
    name = "file"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_file()

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        try:
            st = self.root.stat()
        except OSError as exc:
            warn(self.root.name, f"cannot stat: {exc.strerror or exc}")
            return
        yield EvidenceFile(
            self.name, str(self.root.parent), self.root.name, st.st_size, st.st_mtime, st.st_ctime, st.st_atime
        )

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        return _open_readonly(Path(member.root) / member.rel)

    @classmethod
    def open_seekable(cls, member: EvidenceFile) -> BinaryIO | None:
        return _open_readonly(Path(member.root) / member.rel, buffered=False)

"""The artifact protocol: path globs, a cheap content sniff and one ``parse`` per family."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from exhunt.events.store import StoreWriter
from exhunt.evidence.base import EvidenceFile

MAX_WARNINGS_PER_FILE = 200
FACT_COLUMNS = ("host", "fact", "value", "source", "path", "line", "confidence")  # of ``fact``'s rows


@dataclass
class ParseContext:
    """What a parser may touch: its file, its host and the store writer. Nothing else."""

    host: str
    file: EvidenceFile
    writer: StoreWriter
    artifact: str = ""
    warnings: int = 0
    events: int = 0
    facts: list[tuple[str, str]] = field(default_factory=list)
    # set by ``encoding.utf8_stream`` when the parser reads a transcoding: its offsets -> the file's
    offset_map: Callable[[int], int | None] | None = None
    encoding: str = "utf-8"

    def warn(self, message: str, line: int | None = None, offset: int | None = None) -> None:
        """Bad input is data: one row in ``warnings`` (capped per file so a bad file stays small)."""
        if offset is not None and self.offset_map is not None:
            offset = self.offset_map(offset)
        self.warnings += 1
        if self.warnings > MAX_WARNINGS_PER_FILE:
            return
        if self.warnings == MAX_WARNINGS_PER_FILE:
            message = f"{message} (further warnings for this file suppressed)"
        self.writer.add(
            "warnings",
            {"host": self.host, "artifact": self.artifact, "path": self.file.rel,
             "line": line, "offset": offset, "message": message},
        )

    def warn_original(self, message: str, line: int | None, offset: int | None) -> None:
        """A warning whose ``offset`` is already a byte offset of the file as it is (the transcoder's)."""
        offset_map, self.offset_map = self.offset_map, None
        try:
            self.warn(message, line, offset)
        finally:
            self.offset_map = offset_map

    def event(self, row: dict[str, Any]) -> None:
        row["host"] = self.host
        row["path"] = self.file.rel
        row.setdefault("source", self.artifact)
        self.events += 1
        self.writer.add("events", row)

    def fact(self, fact: str, value: str, line: int | None = None, confidence: str = "high") -> None:
        if (fact, value) in self.facts:
            return
        self.facts.append((fact, value))
        self.writer.table("host_facts").add_values(  # a tuple, not a dict: EVTX triage writes 3 a file
            FACT_COLUMNS, (self.host, fact, value, self.artifact, self.file.rel, line, confidence))


class Artifact:
    """Base of artifact families. Subclasses set ``name`` and ``path_globs`` and implement ``parse``.

    ``claims`` is the cheap applicability predicate: a path glob (lower-case, '/' separated) or a
    look at the first bytes of the file.
    """

    name: ClassVar[str] = "artifact"
    path_globs: ClassVar[tuple[str, ...]] = ()
    # A log (text log, event log or export): its rows are the evidence, so its bytes are YARA-scanned
    # only when the user brings rules or asks (--yara-logs); its own checks run over the rows.
    is_log: ClassVar[bool] = False
    # Windows events (EVTX or an export of them): counts as event-log coverage of a host.
    is_event_log: ClassVar[bool] = False
    # The W3C dialect (``w3c_fast.Dialect`` factory) when a big file may be parsed in byte ranges.
    range_dialect: ClassVar[Any] = None
    # What every head this artifact claims holds, as ``choose`` sees it (a NUL-free UTF-8 head,
    # lower-cased): one of ``head_marks`` anywhere, or a match of ``head_start`` at its start. Both
    # empty: ``claims`` looks at the path alone. A head none of them fits skips every content sniff.
    head_marks: ClassVar[tuple[bytes, ...]] = ()
    head_start: ClassVar[bytes] = b""

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return any(fnmatch.fnmatchcase(rel_lower, g) for g in cls.path_globs)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        raise NotImplementedError

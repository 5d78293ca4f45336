"""What the file-hunting parts share: a findings sink and per-list check metadata."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from exhunt.detections.base import EXCERPT_CHARS, Check, Hit
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits

if TYPE_CHECKING:
    import duckdb

SHELL_REMEDIATION = (
    "Preserve the file (hash, copy, timestamps), then remove it; search every Exchange server for the same "
    "SHA-256 and name.",
    "Review IIS/HttpProxy logs for requests to the page and everything the requesting clients did.",
    "Reset credentials usable on the server and look for persistence (tasks, accounts, transport agents).",
)


def make_check(
    cid: str,
    title: str,
    severity: str,
    description: str,
    attack: tuple[str, ...] = (),
    remediation: tuple[str, ...] = SHELL_REMEDIATION,
    cves: tuple[str, ...] = (),
) -> Check:
    cls = type(
        "FileCheck",
        (Check,),
        {
            "id": cid,
            "title": title,
            "severity": severity,
            "description": description,
            "attack": attack,
            "remediation": remediation,
            "cves": cves,
        },
    )
    check: Check = cls()
    return check


def file_hit(check: Check, host: str, path: str, sha256: str | None, ts: datetime | None, excerpt: str,
             source: str, confidence: str = "high", key: str | None = None, **indicators: str) -> Hit:
    """A hit on one file of the evidence: keyed by its path unless said otherwise, citing its SHA-256
    and path as indicators (plus any others), the excerpt cut to the evidence size."""
    return Hit(check=check.id, host=host, key=path if key is None else key, path=path, source=source, ts=ts,
               excerpt=excerpt[:EXCERPT_CHARS], confidence=confidence,
               indicators={"sha256": sha256 or "", "file_path": path, **indicators})


class FileHuntContext:
    def __init__(self, con: duckdb.DuckDBPyConnection, hit_rows: list[dict]) -> None:
        self.con = con
        self.hit_rows = hit_rows
        self.findings: list[Finding] = []
        self.flagged: set[tuple[str, str]] = set()  # (host, path) with a YARA or IOC hit

    def emit(self, check: Check, hits: Iterable[Hit]) -> None:
        hits = list(hits)
        if hits:
            self.findings.extend(group_hits(check, hits, self.hit_rows))

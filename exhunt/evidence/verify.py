"""Re-hash the inputs a case recorded and list every difference (the ``exhunt verify`` logic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exhunt.evidence.manifest import InputRecord, _iso, load, real_path, regular_files, sha256_file
from exhunt.evidence.names import printable


@dataclass(frozen=True)
class Change:
    id: str
    path: str
    what: str  # changed | missing | added | unreadable | touched
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what.upper()} {self.id} {self.path}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    changes: tuple[Change, ...]

    @property
    def ok(self) -> bool:
        return not self.changes


def _check_file(record: InputRecord) -> list[Change]:
    path = real_path(record)
    if not path.exists():
        return [Change(record.id, record.path, "missing")]
    if record.sha256.startswith("unreadable"):
        return []
    try:
        sha, size = sha256_file(path)
        mtime = _iso(path.stat().st_mtime)
    except OSError as exc:
        return [Change(record.id, record.path, "unreadable", exc.strerror or str(exc))]
    if sha != record.sha256 or size != record.size:
        return [Change(record.id, record.path, "changed",
                       f"sha256 was {record.sha256} ({record.size} bytes), now {sha} ({size} bytes)")]
    if mtime != record.mtime:
        detail = f"same bytes, mtime was {record.mtime}, now {mtime}"
        return [Change(record.id, record.path, "touched", detail)]
    return []


def verify(case: Path) -> VerifyResult:
    records = load(case)
    changes: list[Change] = []
    checked = 0
    for root in (r for r in records if ":" not in r.id):
        members = [r for r in records if r.id.startswith(root.id + ":")]
        if root.kind != "folder":
            for record in (root, *members):
                checked += 1
                changes.extend(_check_file(record))
            continue
        folder = real_path(root)
        if not folder.is_dir():
            changes.append(Change(root.id, root.path, "missing", "evidence folder is gone"))
            continue
        for record in members:
            checked += 1
            changes.extend(_check_file(record))
        known = {r.rel for r in members}
        for rel in sorted(regular_files(folder)):
            shown = printable(rel)[0]
            if shown not in known:
                changes.append(Change(root.id, f"{root.path}/{shown}", "added", "file not in the manifest"))
    return VerifyResult(checked, tuple(changes))

"""Re-hash the inputs a case recorded and list every difference (the ``exhunt verify`` logic)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.evidence.manifest import InputRecord, load, real_path, regular_files, sha256_file
from exhunt.evidence.names import printable
from exhunt.utctime import iso_from_epoch


@dataclass(frozen=True)
class Change:
    id: str
    path: str
    what: str  # changed | missing | added | unreadable | touched | unverified
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what.upper()} {self.id} {self.path}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class VerifyResult:
    checked: int  # inputs re-hashed against a recorded hash (the unverified not among them)
    changes: tuple[Change, ...]
    # inputs the scan could not read: no hash was recorded, so nothing says they are unchanged
    unverified: tuple[Change, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.changes


def _check_file(record: InputRecord) -> list[Change]:
    path = real_path(record)
    if not path.exists():
        return [Change(record.id, record.path, "missing")]
    if record.sha256.startswith("unreadable"):
        why = record.sha256.removeprefix("unreadable: ")
        return [Change(record.id, record.path, "unverified", f"the scan could not read it ({why}): no hash to compare")]
    try:
        sha, size = sha256_file(path)
        mtime = iso_from_epoch(path.stat().st_mtime)
    except OSError as exc:
        return [Change(record.id, record.path, "unreadable", exc.strerror or str(exc))]
    if sha != record.sha256 or size != record.size:
        return [Change(record.id, record.path, "changed",
                       f"sha256 was {record.sha256} ({record.size} bytes), now {sha} ({size} bytes)")]
    if mtime != record.mtime:
        detail = f"same bytes, mtime was {record.mtime}, now {mtime}"
        return [Change(record.id, record.path, "touched", detail)]
    return []


def _manifest_copies_differ(case: Path, records: list[InputRecord]) -> list[Change]:
    """manifest.json against the copy the scan wrote into the store at the same moment: an edited
    (or emptied) manifest.json would otherwise verify whatever it now claims."""
    folder = case / "store" / "manifest"
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        return [] if records else [Change("-", "manifest.json", "changed", "records no input at all")]
    try:
        stored = pq.read_table(parts).to_pylist()
    except (OSError, pa.ArrowInvalid) as exc:
        return [Change("-", "store/manifest", "unreadable", str(exc).splitlines()[0])]
    def key(row: dict[str, object]) -> tuple[object, ...]:
        return (row.get("id"), row.get("path"), row.get("size"), row.get("sha256"))
    if sorted(map(key, stored), key=str) != sorted((key(asdict(r)) for r in records), key=str):
        return [Change("-", "manifest.json", "changed", "differs from the copy written into store/manifest")]
    return []


def verify(case: Path) -> VerifyResult:
    records = load(case)
    changes: list[Change] = _manifest_copies_differ(case, records)
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
    unverified = tuple(c for c in changes if c.what == "unverified")
    return VerifyResult(checked - len(unverified), tuple(c for c in changes if c.what != "unverified"), unverified)

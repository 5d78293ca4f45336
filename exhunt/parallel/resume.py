"""``--resume``: rescanning into the same case parses only files whose size or SHA-256 changed.

The chain-of-custody manifest already hashes every input before parsing, so the change test costs
no extra read: a file's fingerprint is its manifest SHA-256 and size (an archive or image member:
its container's SHA-256 plus its own name and size). The ``state`` store table keeps the
fingerprints of the last scan with a key of the tool version and rule options; a different key
means a full rescan.

Parts are shared by a batch of files, so instead of dropping whole parts, every parse table part
is filtered: rows of files that changed or vanished go, rows of unchanged files stay (every row
a file's parse writes carries its path, or ``path!member`` for archive members scanned in place).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exhunt.events.schema import TABLES
from exhunt.evidence import manifest
from exhunt.evidence.names import printable

STATE = "state"
# Raised whenever parsing writes other rows or columns for the same input (a new column, a mapping
# change), so --resume re-parses a case written before instead of keeping rows without them.
# 2: backend_cookie column, Level in event fields, '' and '-' kept in the Windows event columns.
# 3: mailbox audit log exports parsed (artifact mailbox_audit).
# 4: flat/Sentinel/Velociraptor/CSV event exports read; unrecognised structured files warned.
STORE_FORMAT = 4


def key(version: str, rule_files: Iterable[Path], yara_max: int, yara_logs: bool | None) -> str:
    """What else must match for a resumed scan to keep old parts: the tool version, the store
    format, the content of the YARA and IOC files (an edited rule file must run again), the YARA
    size limit in force and whether logs are content-scanned."""
    rules = [content_digest(p) for p in rule_files]
    return orjson.dumps([version, STORE_FORMAT, rules, yara_max, yara_logs]).decode()


def content_digest(path: Path) -> str:
    """SHA-256 over a rule file, or over every file of a rule folder (names and bytes, sorted)."""
    digest = hashlib.sha256()
    base = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(base).as_posix().encode("utf-8", "surrogateescape"))
        try:
            digest.update(file.read_bytes())
        except OSError as exc:  # unreadable: the scan itself reports it; the key just differs
            digest.update(str(exc).encode())
    return digest.hexdigest()


def drop_listing_parts(store: Path) -> None:
    """Listing warnings are written again by the new plan."""
    for path in store.glob("*/host=*/listing-*.parquet"):
        path.unlink()


def previous(store: Path) -> tuple[dict[tuple[str, str], str], str | None]:
    folder = store / STATE
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return {}, None
    rows = pq.read_table(folder).to_pylist()
    return {(r["host"], r["path"]): r["fingerprint"] for r in rows}, (rows[0]["key"] if rows else None)


def fingerprints(case: Path, work: Iterable[Any]) -> dict[tuple[str, str], str]:
    """(host, path) -> fingerprint of every listed file, from the manifest just written."""
    records = {(r.host, r.evidence, r.rel): r for r in manifest.load(case)}
    out: dict[tuple[str, str], str] = {}
    clashes: set[tuple[str, str]] = set()
    for hw in work:
        for f in hw.files:
            real = f.locator[0] if f.locator else f.rel
            own = records.get((hw.host, hw.evidence, printable(real)[0]))
            if own is not None and f.source in manifest.FOLDER_SOURCES:
                fp = f"{own.sha256}:{own.size}"
            else:  # a member of an archive or image: its container, then its own name and size
                container = own or records.get((hw.host, hw.evidence, ""))
                fp = f"{container.sha256}:{f.rel}:{f.size}" if container else ""
            if fp and not fp.startswith("unreadable") and out.setdefault((hw.host, f.rel), fp) != fp:
                clashes.add((hw.host, f.rel))
    for key in clashes:  # one host's two roots hold this path: its rows cannot be told apart, parse again
        del out[key]
    return out


def unchanged(current: dict[tuple[str, str], str], before: dict[tuple[str, str], str],
              key_now: str, key_before: str | None) -> frozenset[tuple[str, str]]:
    if key_now != key_before:
        return frozenset()
    return frozenset(k for k, fp in current.items() if before.get(k) == fp)


def keep_only(store: Path, keep: frozenset[tuple[str, str]],
              roots: Mapping[tuple[str, str], str] | None = None) -> None:
    """Filter every parse-table part down to the rows of ``keep`` files (empty parts are deleted).
    ``roots``: (host, path) -> the evidence root it is listed under now; a kept ``files`` row names
    that root, not the one of the earlier scan (evidence moved or mounted elsewhere)."""
    keys = pa.array(sorted(f"{h}\0{p}" for h, p in keep), pa.string())
    for table in TABLES:
        for path in sorted((store / table).glob("host=*/*.parquet")) if (store / table).exists() else []:
            head = pq.read_table(path, columns=["host", "path", "evidence"] if table == "files" else ["host", "path"])
            mask = _kept(head, keys)
            kept = pc.sum(mask).as_py() or 0
            moved = table == "files" and roots is not None and _rooted(head, roots) != _column(head, "evidence")
            if kept == head.num_rows and not moved:
                continue
            if kept == 0:
                path.unlink()
                continue
            data = pq.read_table(path)
            if moved and roots is not None:
                index = data.schema.get_field_index("evidence")
                data = data.set_column(index, "evidence", pa.array(_rooted(data, roots), pa.string()))
            data = data.filter(mask)
            tmp = path.with_suffix(".tmp")
            pq.write_table(data, tmp, compression="zstd")
            tmp.replace(path)


def _column(rows: pa.Table, name: str) -> list[str | None]:
    return rows.column(name).to_pylist()


def _rooted(rows: pa.Table, roots: Mapping[tuple[str, str], str]) -> list[str | None]:
    pairs = zip(_column(rows, "host"), _column(rows, "path"), _column(rows, "evidence"), strict=True)
    # a member scanned in place ("archive!member") is listed under its archive's root
    return [roots.get((h, p), roots.get((h, p.split("!", 1)[0]), e)) if h is not None and p is not None else e
            for h, p, e in pairs]


def _kept(head: pa.Table, keys: pa.Array) -> pa.Array:
    host = pc.fill_null(head.column("host"), "")
    rel = pc.fill_null(head.column("path"), "")
    base = pc.list_element(pc.split_pattern(rel, "!", max_splits=1), 0)
    whole = pc.is_in(pc.binary_join_element_wise(host, rel, "\0"), value_set=keys)
    member = pc.is_in(pc.binary_join_element_wise(host, base, "\0"), value_set=keys)
    return pc.or_(whole, member)


def save(store: Path, current: dict[tuple[str, str], str], key: str) -> None:
    folder = store / STATE
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"host": h, "path": p, "fingerprint": fp, "key": key} for (h, p), fp in sorted(current.items())]
    schema = pa.schema([("host", pa.string()), ("path", pa.string()), ("fingerprint", pa.string()),
                        ("key", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "all.parquet", compression="zstd")

"""``--resume``: rescanning into the same case parses only files whose size or SHA-256 changed.

A file's fingerprint is its SHA-256 and size (an archive or image member: its container's SHA-256
plus its own name and size). The ``state`` store table keeps the fingerprints of the last scan, each
file's listed size and mtime, and a key of the tool version and rule options; a different key means
a full rescan.

How a resumed scan learns what changed without reading every input twice (issue 18: the custody
hash now comes from the workers' one read, after parsing, so there is no hash before parsing to
compare): a size + mtime pre-check, then a hash that decides.

* A file whose listed size or mtime differs from the last scan, or that is new, changed: it goes
  to the workers, whose one read parses and hashes it. (A file touched without a change is parsed
  again: more work, never a wrong row.)
* A file whose size and mtime are the same is hashed here, before parsing (its one read in this
  scan: it is not parsed), and kept only when its SHA-256 equals the last scan's. So a file whose
  content changed with size and mtime kept (an editor that restores the mtime, a copy tool) is
  still parsed again: the guarantee is the same as when every input was hashed up front. Only
  such files are read twice (the check, then the parse).
* Containers (archives, images) are hashed before parsing, as their members' fingerprints need it.

size + mtime rather than ctime too: ctime is the creation time on Windows and changes on every copy
on Linux, so evidence moved to another disk would look changed; the hash decides anyway.

Parts are shared by a batch of files, so instead of dropping whole parts, every parse table part
is filtered: rows of files that changed or vanished go, rows of unchanged files stay (every row
a file's parse writes carries its path, or ``path!member`` for archive members scanned in place).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exhunt.events.schema import TABLES
from exhunt.events.store import write_whole
from exhunt.evidence import manifest
from exhunt.evidence.base import EvidenceFile

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


Key = tuple[str, str]  # (host, path as listed)


def previous(store: Path) -> tuple[dict[Key, str], dict[Key, str], str | None]:
    """The last scan's fingerprints, listed size:mtime per file and key."""
    folder = store / STATE
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return {}, {}, None
    rows = pq.read_table(folder).to_pylist()
    stats = {(r["host"], r["path"]): r["stat"] for r in rows if r.get("stat")}
    return ({(r["host"], r["path"]): r["fingerprint"] for r in rows}, stats,
            rows[0]["key"] if rows else None)


def stat_of(file: EvidenceFile) -> str:
    return f"{file.size}:{file.mtime!r}"


def listed_stats(work: Iterable[Any]) -> dict[Key, str]:
    return {(hw.host, f.rel): stat_of(f) for hw in work for f in hw.files}


def _own_files(hw: Any) -> Iterator[EvidenceFile]:
    """Files of a root that its workers read whole (folder files, a file given alone)."""
    single = manifest.single_file(hw.files)
    if single is not None:
        yield single
        return
    yield from (f for f in hw.files if f.source in manifest.FOLDER_SOURCES)


def check_unchanged_looking(work: Sequence[Any], stats_before: Mapping[Key, str], read: manifest.ReadHashes,
                            hashed: manifest.PathHashes, jobs: int) -> None:
    """Before parsing: hash the containers, and the files whose size and mtime are those of the last
    scan (into ``read``), so their fingerprints can decide whether they are parsed again."""
    hosts = [(hw.host, hw.evidence, hw.files) for hw in work]
    manifest.hash_paths(manifest.to_hash(hosts, read, containers_only=True), hashed, jobs)
    same = {}
    for hw in work:
        root = Path(hw.evidence).absolute()
        for f in _own_files(hw):
            if stats_before.get((hw.host, f.rel)) == stat_of(f):
                same[root / manifest.real_rel(f) if root.is_dir() else root] = (f.root, f.rel)
    checked: manifest.PathHashes = {}
    manifest.hash_paths(same, checked, jobs)
    read.update((key, checked[path]) for path, key in same.items())


def fingerprints(work: Iterable[Any], read: manifest.ReadHashes,
                 hashed: manifest.PathHashes) -> dict[Key, str]:
    """(host, path) -> fingerprint of every listed file whose hash is known (its own, or its
    container's): from the workers' reads, the pre-check hashes or the containers hashed here."""
    out: dict[Key, str] = {}
    clashes: set[Key] = set()
    for hw in work:
        root = Path(hw.evidence).absolute()
        single = manifest.single_file(hw.files)
        folder = {manifest.real_rel(f): f for f in hw.files if f.source in manifest.FOLDER_SOURCES}
        for f in hw.files:
            if f.source in manifest.FOLDER_SOURCES:
                own = read.get((f.root, f.rel))
                fp = f"{own[0]}:{own[1]}" if own else ""
            else:  # a member of an archive or image: its container, then its own name and size
                holder = folder.get(f.locator[0]) if root.is_dir() and f.locator else None
                if holder is not None:
                    container = read.get((holder.root, holder.rel))
                elif single is not None:
                    container = read.get((single.root, single.rel))
                else:
                    container = hashed.get(root)
                fp = f"{container[0]}:{f.rel}:{f.size}" if container else ""
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
            write_whole(data, path)


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


def save(store: Path, current: dict[Key, str], key: str, stats: Mapping[Key, str]) -> None:
    folder = store / STATE
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(current)
    # the key (about 1.3 KB with a rule pack's digests) once, as a dictionary: a copy per file row
    # cost 0.5-1 s for 20,000 pages
    table = pa.table({"host": pa.array([h for h, _ in keys], pa.string()),
                      "path": pa.array([p for _, p in keys], pa.string()),
                      "fingerprint": pa.array([current[k] for k in keys], pa.string()),
                      "key": pa.DictionaryArray.from_arrays(pa.array([0] * len(keys), pa.int32()),
                                                            pa.array([key], pa.string())),
                      "stat": pa.array([stats.get(k) for k in keys], pa.string())})
    write_whole(table, folder / "all.parquet")  # a scan killed here must not leave a state no read takes

"""Chain of custody: every input hashed as it is read and recorded in the case, re-checked by verify.

Each input is read once: the workers hash every file while they parse it (artifacts/files.py) and
hand the SHA-256 back; the manifest is built from those results when parsing ends, and written
then (a scan that dies midway leaves no manifest claiming hashes of files it never read). The main
process hashes only what no worker reads whole: containers (an archive's or image's own bytes; the
workers read members), image segments, and files listed but never processed (a timed-out file).

``case/manifest.json`` (and the ``manifest`` store table) holds one record per evidence root and,
for folders, one per regular file: path, size, SHA-256 and times. A folder root's hash is a tree
hash (SHA-256 over the sorted ``path\\0sha256`` lines of its files), so one changed byte anywhere
changes it. Archives and images are recorded as the container file(s): that is what was received.
The ``inputs`` store table maps every file the scan read to the manifest id findings cite.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.errors import CaseError, EvidenceError
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.directory import MAX_DEPTH
from exhunt.evidence.names import printable
from exhunt.evidence.readonly import open_readonly
from exhunt.utctime import iso_from_epochs, iso_utc

MANIFEST_VERSION = 1
CHUNK = 1 << 20
FOLDER_SOURCES = ("directory", "kape")
SINGLE_SOURCE = "file"
_SEGMENT = re.compile(r"^\.(e|ex|l)(0[2-9]|[1-9]\d|[a-z]{2})$", re.I)
_VMDK_EXTENT = re.compile(rb'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"\r\n]+)"', re.M)


@dataclass(frozen=True)
class InputRecord:
    id: str  # E1 for a root, E1:000003 for a file inside a folder root
    kind: str  # folder | file | file-in-folder
    host: str
    evidence: str  # the evidence path as given
    path: str  # absolute path of what was hashed
    rel: str  # real path under the folder root ('' for a root)
    size: int
    sha256: str
    mtime: str | None
    ctime: str | None
    atime: str | None
    fs_hex: str | None = None  # hex of the raw file-system name when ``path`` had to be escaped


# (evidence root as listed, rel) of a listed file -> (SHA-256 or "unreadable: why", bytes read)
ReadHashes = dict[tuple[str, str], tuple[str, int]]
# absolute path of a container (archive, image and its segments, a root file) -> (SHA-256, size)
PathHashes = dict[Path, tuple[str, int]]
Times = tuple[float | None, float | None, float | None]


def _iso(value: float | None) -> str | None:
    """``utctime.iso_from_epoch`` without its checks: called three times per file."""
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _record(rid: str, kind: str, host: str, evidence: str, path: Path | str, rel: str, size: int, sha: str,
            times: Times) -> dict[str, Any]:
    """One manifest record as a plain dict (the fields of ``InputRecord``, in its order)."""
    return _record_at(rid, kind, host, evidence, path, rel, size, sha, (_iso(times[0]), _iso(times[1]),
                                                                       _iso(times[2])))


def _record_at(rid: str, kind: str, host: str, evidence: str, path: Path | str, rel: str, size: int, sha: str,
               shown_times: tuple[str | None, str | None, str | None]) -> dict[str, Any]:
    """``_record`` with its times already written (``iso_from_epochs`` of a whole folder)."""
    shown_path, escaped = printable(str(path))
    return {"id": rid, "kind": kind, "host": host, "evidence": evidence, "path": shown_path,
            "rel": printable(rel)[0], "size": size, "sha256": sha, "mtime": shown_times[0],
            "ctime": shown_times[1], "atime": shown_times[2],
            "fs_hex": os.fsencode(str(path)).hex() if escaped else None}


def real_path(record: InputRecord) -> Path:
    return Path(os.fsdecode(bytes.fromhex(record.fs_hex))) if record.fs_hex else Path(record.path)


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open_readonly(path) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def hash_or_reason(path: Path) -> tuple[str, int]:
    """SHA-256 and size, or ``unreadable: why`` for a file gone or unreadable since it was listed."""
    try:
        return sha256_file(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}", 0


def tree_hash(files: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for rel, sha in sorted(files):
        digest.update(f"{rel}\0{sha}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _stat_times(path: Path) -> Times:
    try:
        st = path.stat()
    except OSError:
        return None, None, None
    return st.st_mtime, st.st_ctime, st.st_atime


def image_segments(path: Path) -> list[Path]:
    """Further files of a multi-file image, which belong to the input too: segments of a split
    E01/Ex01/L01 (``x.E02``...) or raw image (``x.002``...), the extents a VMDK descriptor names."""
    suffix = path.suffix.lower()
    if suffix == ".vmdk":
        return _vmdk_extents(path)
    if suffix == ".001":
        pattern = glob.escape(path.stem) + ".[0-9][0-9][0-9]"
        return sorted(p for p in path.parent.glob(pattern) if p != path)
    if suffix not in (".e01", ".ex01", ".l01"):
        return []
    pattern = glob.escape(path.stem) + ".*"  # a name like "srv[1].E01" is not a pattern
    return sorted(p for p in path.parent.glob(pattern) if _SEGMENT.match(p.suffix) and p != path)


def _vmdk_extents(descriptor: Path) -> list[Path]:
    try:
        with open_readonly(descriptor) as f:
            head = f.read(64 << 10)
    except OSError:
        return []
    if not head.startswith(b"# Disk DescriptorFile"):
        return []  # a sparse VMDK holds its own data
    names = (Path(m.decode("utf-8", "replace")).name for m in _VMDK_EXTENT.findall(head))
    return [p for p in dict.fromkeys(descriptor.with_name(n) for n in names if n) if p != descriptor and p.is_file()]


def real_rel(file: EvidenceFile) -> str:
    """The real path of a folder file under its root (``rel`` is the cleaned name artifacts see)."""
    return file.locator[0] if file.locator else file.rel


def single_file(files: Sequence[EvidenceFile]) -> EvidenceFile | None:
    """The listed file of a root that is itself the one file read (a log or page given alone)."""
    return files[0] if len(files) == 1 and files[0].source == SINGLE_SOURCE else None


def to_hash(hosts: Sequence[tuple[str, str, Sequence[EvidenceFile]]], read: ReadHashes,
            containers_only: bool = False) -> list[Path]:
    """What the main process must hash itself: containers (archives, images and their segments: the
    workers read their members, never the container's bytes) and, unless ``containers_only``, the
    inputs no worker read whole (a timed-out file, one listed but never processed)."""
    paths: list[Path] = []
    for _host, evidence, files in hosts:
        root = Path(evidence).absolute()
        if root.is_dir():
            if not containers_only:
                paths.extend(root / real_rel(f) for f in files
                             if f.source in FOLDER_SOURCES and (f.root, f.rel) not in read)
            continue
        single = single_file(files)
        if single is None or (not containers_only and (single.root, single.rel) not in read):
            paths.append(root)
        paths.extend(p.absolute() for p in image_segments(root))
    return paths


def hash_paths(paths: Iterable[Path], hashed: PathHashes, jobs: int = 1) -> None:
    """SHA-256 of every path not yet in ``hashed``, on threads (hashlib releases the GIL)."""
    todo = [p for p in dict.fromkeys(paths) if p not in hashed]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        hashed.update(zip(todo, pool.map(hash_or_reason, todo), strict=True))


@dataclass
class Prepared:
    """The part of the manifest no hash decides: each folder root's file records (size and SHA-256
    still to fill) and every ``inputs`` row. ``prepare`` makes it from the listing alone, so a scan
    builds it while its workers parse (``custody.prepare_inputs``); ``build`` fills in the hashes."""

    # per folder root (1-based index): its listed folder files as (read key, real path under the root
    # (hashed in this process when no worker read it whole), listed size, record)
    folders: dict[int, list[tuple[tuple[str, str], str, int, dict[str, Any]]]]
    refs: dict[int, list[dict[str, str]]]  # per root: its ``inputs`` rows


def prepare(hosts: Sequence[tuple[str, str, Sequence[EvidenceFile]]]) -> Prepared:
    """The records and ``inputs`` rows of folder roots, without sizes read or hashes (see ``build``)."""
    prepared = Prepared({}, {})
    for n, (host, evidence, files) in enumerate(hosts, start=1):
        root_id = f"E{n}"
        root = Path(evidence).absolute()
        if not root.is_dir():
            continue
        folder = [f for f in files if f.source in FOLDER_SOURCES]
        ids = {real_rel(f): f"{root_id}:{i:06d}" for i, f in enumerate(folder, start=1)}
        members = []
        base = os.path.join(root, "")  # a string join per file: tens of thousands of pages
        # every file's three times written at once (one ``datetime`` each was half of this loop)
        shown_times = iter(iso_from_epochs([t for f in folder for t in (f.mtime, f.ctime, f.atime)]))
        for f in folder:
            real = real_rel(f)
            shown = base + (real if os.sep == "/" else real.replace("/", os.sep))
            members.append(((f.root, f.rel), real, f.size,  # a Path only where needed: 3 us a file
                             _record_at(ids[real], "file-in-folder", host, evidence, shown, real, 0, "",
                                        (next(shown_times), next(shown_times), next(shown_times)))))
        prepared.folders[n] = members
        refs = []
        for f in files:
            rid = ids.get(real_rel(f)) if f.source in FOLDER_SOURCES else ids.get(f.locator[0])
            refs.append({"host": host, "path": f.rel, "input": rid or root_id})
        prepared.refs[n] = refs
    return prepared


def build(hosts: Sequence[tuple[str, str, Sequence[EvidenceFile]]], read: ReadHashes,
          hashed: PathHashes | None = None, jobs: int = 1,
          prepared: Prepared | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The manifest from what the scan read. ``hosts``: (host, evidence path as given, files listed
    from it); ``read``: the hashes of the workers' one read of each file; ``hashed``: containers
    hashed before; ``prepared``: ``prepare(hosts)`` made earlier (else made here). Whatever neither
    ``read`` nor ``hashed`` holds is hashed here (both are completed in place).

    Returns the manifest records (dicts, ``InputRecord`` fields) and the ``inputs`` rows (host,
    path, input id) that findings cite.
    """
    hashed = {} if hashed is None else hashed
    prepared = prepare(hosts) if prepared is None else prepared
    hash_paths(to_hash(hosts, read), hashed, jobs)
    records: list[dict[str, Any]] = []
    refs: list[dict[str, str]] = []
    for n, (host, evidence, files) in enumerate(hosts, start=1):
        root_id = f"E{n}"
        root = Path(evidence).absolute()
        if n in prepared.folders:
            members = []
            for key, real, listed, record in prepared.folders[n]:
                sha, size = read.get(key) or hashed[root / real]
                read[key] = (sha, size)
                record["size"] = listed if sha.startswith("unreadable") else size
                record["sha256"] = sha
                members.append(record)
            total = sum(m["size"] for m in members)
            records.append(_record(root_id, "folder", host, evidence, root, "", total,
                                   tree_hash((m["rel"], m["sha256"]) for m in members), _stat_times(root)))
            records.extend(members)
            refs.extend(prepared.refs[n])
            continue
        single = single_file(files)
        sha, size = (read.get((single.root, single.rel)) if single else None) or hashed[root]
        if sha.startswith("unreadable"):
            raise EvidenceError(f"cannot read evidence {root}: {sha.removeprefix('unreadable: ')}")
        times = (single.mtime, single.ctime, single.atime) if single else _stat_times(root)
        records.append(_record(root_id, "file", host, evidence, root, "", size, sha, times))
        for i, segment in enumerate(image_segments(root), start=2):
            extent = segment.absolute()
            sha, size = hashed[extent]
            records.append(_record(f"{root_id}:{i:06d}", "file", host, evidence, extent, segment.name, size, sha,
                                   _stat_times(extent)))
        refs.extend({"host": host, "path": f.rel, "input": root_id} for f in files)
    return records, refs


def json_path(case: Path) -> Path:
    return case / "manifest.json"


def write(case: Path, store: Path, records: list[dict[str, Any]], refs: list[dict[str, str]],
          tool_version: str) -> Path:
    """manifest.json (written atomically) plus the ``manifest`` and ``inputs`` store tables."""
    doc = {"manifest_version": MANIFEST_VERSION, "tool_version": tool_version,
           "recorded_at": iso_utc(datetime.now(UTC)), "inputs": records}
    path = json_path(case)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    for table, rows in (("manifest", records), ("inputs", refs)):
        folder = store / table
        folder.mkdir(parents=True, exist_ok=True)
        if rows:  # column by column: one list per field, not a dict lookup per row and field in Arrow
            columns = {name: [r[name] for r in rows] for name in rows[0]}
            pq.write_table(pa.table(columns), folder / "all.parquet", compression="zstd")
    os.replace(tmp, path)  # last: manifest.json exists only once the store's copy does
    return path


def remove(case: Path, store: Path) -> None:
    """Drop the manifest of an earlier scan into this case: until this scan has read its inputs, no
    manifest may claim hashes for them."""
    (case / "manifest.json").unlink(missing_ok=True)
    for table in ("manifest", "inputs"):
        for part in (store / table).glob("*.parquet") if (store / table).is_dir() else ():
            part.unlink()


def load(case: Path) -> list[InputRecord]:
    path = case / "manifest.json"
    try:
        doc = orjson.loads(path.read_bytes())
        return [InputRecord(**r) for r in doc["inputs"]]
    except FileNotFoundError as exc:
        raise CaseError(f"no manifest in {case} (not a case folder written by exhunt scan --out)") from exc
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise CaseError(f"cannot read {path}: {exc}") from exc


def input_ids(store: Path, paths: Iterable[str] | None = None) -> dict[tuple[str, str], str]:
    """(host, path) -> manifest id, from the ``inputs`` store table ({} for cases without one).
    ``paths``: only those (findings cite a few of thousands of inputs; all of them cost ~30 ms)."""
    folder = store / "inputs"
    wanted = None if paths is None else sorted(set(paths))
    if wanted == [] or not folder.exists() or not any(folder.glob("*.parquet")):
        return {}
    table = pq.read_table(folder, filters=None if wanted is None else [("path", "in", wanted)])
    return id_map(table["host"].to_pylist(), table["path"].to_pylist(), table["input"].to_pylist())


def id_map(hosts: Iterable[str], paths: Iterable[str], inputs: Iterable[str]) -> dict[tuple[str, str], str]:
    """(host, path) -> input id of ``inputs`` rows; the same relative path in two inputs of one host
    (a folder and an archive of it) cites both, comma-separated."""
    ids: dict[tuple[str, str], str] = {}
    for h, p, i in zip(hosts, paths, inputs, strict=True):
        old = ids.get((h, p))
        ids[(h, p)] = i if old is None or i in old.split(",") else f"{old},{i}"
    return ids


def regular_files(root: Path, max_depth: int = MAX_DEPTH) -> Iterator[str]:
    """Real relative paths of regular files under a folder, links not followed (as the scan lists)."""
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > max_depth:
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), depth + 1))
            elif stat.S_ISREG(st.st_mode):
                yield os.path.relpath(entry.path, root).replace(os.sep, "/")

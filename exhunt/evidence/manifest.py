"""Chain of custody: every input hashed and recorded in the case before analysis, re-checked by verify.

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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.errors import CaseError, EvidenceError
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.directory import MAX_DEPTH
from exhunt.evidence.names import printable
from exhunt.evidence.readonly import open_readonly
from exhunt.utctime import iso_from_epoch, iso_utc

MANIFEST_VERSION = 1
CHUNK = 1 << 20
FOLDER_SOURCES = ("directory", "kape")
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


def _named(rid: str, kind: str, host: str, evidence: str, path: Path, rel: str, size: int, sha: str,
           st: os.stat_result | None) -> InputRecord:
    shown_path, escaped = printable(str(path))
    fs_hex = os.fsencode(str(path)).hex() if escaped else None
    stamps = (st.st_mtime, st.st_ctime, st.st_atime) if st else (None, None, None)
    mtime, ctime, atime = (iso_from_epoch(t) for t in stamps)
    return InputRecord(rid, kind, host, evidence, shown_path, printable(rel)[0], size, sha, mtime, ctime, atime, fs_hex)


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


def tree_hash(files: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for rel, sha in sorted(files):
        digest.update(f"{rel}\0{sha}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _file_record(rid: str, kind: str, host: str, evidence: str, path: Path, rel: str) -> InputRecord:
    st: os.stat_result | None = None
    try:
        st = path.stat()
        sha, size = sha256_file(path)
    except OSError as exc:  # a file of a folder gone or unreadable since it was listed: recorded as such
        if kind != "file-in-folder":
            raise EvidenceError(f"cannot read evidence {path}: {exc.strerror or exc}") from exc
        sha, size = f"unreadable: {exc.strerror or exc}", st.st_size if st else 0
    return _named(rid, kind, host, evidence, path, rel, size, sha, st)


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


def _real_rel(file: EvidenceFile) -> str:
    return file.locator[0] if file.locator else file.rel


def build(hosts: Sequence[tuple[str, str, Sequence[EvidenceFile]]], jobs: int = 1) -> tuple[
        list[InputRecord], list[dict[str, str]]]:
    """Hash every input. ``hosts``: (host, evidence path as given, files listed from it).

    Returns the manifest records and the ``inputs`` rows (host, path, input id) that findings cite.
    """
    records: list[InputRecord] = []
    refs: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # hashlib releases the GIL
        for n, (host, evidence, files) in enumerate(hosts, start=1):
            root_id = f"E{n}"
            root = Path(evidence).absolute()
            if root.is_dir():
                folder = [f for f in files if f.source in FOLDER_SOURCES]
                ids = {_real_rel(f): f"{root_id}:{i:06d}" for i, f in enumerate(folder, start=1)}
                members = list(pool.map(
                    lambda f, _r=root, _ids=ids, _h=host, _e=evidence: _file_record(  # type: ignore[misc]
                        _ids[_real_rel(f)], "file-in-folder", _h, _e, _r / _real_rel(f), _real_rel(f)),
                    folder))
                total = sum(m.size for m in members)
                records.append(_named(root_id, "folder", host, evidence, root, "", total,
                                      tree_hash((m.rel, m.sha256) for m in members), root.stat()))
                records.extend(members)
                for f in files:
                    rid = ids.get(_real_rel(f)) if f.source in FOLDER_SOURCES else ids.get(f.locator[0])
                    refs.append({"host": host, "path": f.rel, "input": rid or root_id})
            else:
                records.append(_file_record(root_id, "file", host, evidence, root, ""))
                for i, segment in enumerate(image_segments(root), start=2):
                    records.append(_file_record(f"{root_id}:{i:06d}", "file", host, evidence,
                                                segment.absolute(), segment.name))
                refs.extend({"host": host, "path": f.rel, "input": root_id} for f in files)
    return records, refs


def write(case: Path, store: Path, records: list[InputRecord], refs: list[dict[str, str]],
          tool_version: str) -> Path:
    """manifest.json (written atomically) plus the ``manifest`` and ``inputs`` store tables."""
    doc = {"manifest_version": MANIFEST_VERSION, "tool_version": tool_version,
           "recorded_at": iso_utc(datetime.now(UTC)), "inputs": [asdict(r) for r in records]}
    path = case / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
    for table, rows in (("manifest", [asdict(r) for r in records]), ("inputs", refs)):
        folder = store / table
        folder.mkdir(parents=True, exist_ok=True)
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), folder / "all.parquet", compression="zstd")
    return path


def load(case: Path) -> list[InputRecord]:
    path = case / "manifest.json"
    try:
        doc = orjson.loads(path.read_bytes())
        return [InputRecord(**r) for r in doc["inputs"]]
    except FileNotFoundError as exc:
        raise CaseError(f"no manifest in {case} (not a case folder written by exhunt scan --out)") from exc
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise CaseError(f"cannot read {path}: {exc}") from exc


def input_ids(store: Path) -> dict[tuple[str, str], str]:
    """(host, path) -> manifest id, from the ``inputs`` store table ({} for cases without one)."""
    folder = store / "inputs"
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return {}
    table = pq.read_table(folder)
    ids: dict[tuple[str, str], str] = {}
    for h, p, i in zip(table["host"].to_pylist(), table["path"].to_pylist(), table["input"].to_pylist(),
                       strict=True):
        # the same relative path in two inputs of one host (a folder and an archive of it): cite both
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

"""Test helpers: parse bytes or files into an in-memory view of the store."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import duckdb

from exhunt.events.store import connect
from exhunt.evidence.base import EvidenceFile
from exhunt.worker import process_file


def parse_bytes(tmp_path: Path, rel: str, data: bytes, host: str = "h") -> duckdb.DuckDBPyConnection:
    """Write ``data`` as evidence file ``rel`` and run the real per-file task on it."""
    evidence = tmp_path / "evidence"
    target = evidence / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return parse_paths(tmp_path, evidence, [rel], host)


def parse_paths(tmp_path: Path, root: Path, rels: list[str], host: str = "h") -> duckdb.DuckDBPyConnection:
    store = tmp_path / "store"
    for rel in rels:
        st = (root / rel).stat()
        file = EvidenceFile("directory", str(root), rel, st.st_size, st.st_mtime, st.st_ctime, st.st_atime)
        process_file(file, host, str(store))
    return connect(store)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A deflated zip of ``members`` (name -> bytes), built in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()

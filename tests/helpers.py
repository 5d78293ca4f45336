"""Test helpers: parse bytes or files into an in-memory view of the store; respell an EVTX file;
spell a text as SQL's caseless matching accepts it."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import duckdb
from hypothesis import strategies as st

from exhunt.artifacts.evtx_chunks import CHUNK, CHUNK_MAGIC, FILE_HEADER
from exhunt.events.store import connect
from exhunt.evidence.base import EvidenceFile
from exhunt.sqlfold import spellings
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


def evtx_respelled(data: bytes, old: str, new: str) -> bytes:
    """An EVTX file's bytes with every UTF-16LE ``old`` written ``new`` (as many code units), the
    checksums of each chunk made to hold again: its events read as if Windows had logged ``new``."""
    before, after = old.encode("utf-16-le"), new.encode("utf-16-le")
    assert len(before) == len(after) and before in data
    out = bytearray(data.replace(before, after))
    for at in range(FILE_HEADER, len(out) - CHUNK + 1, CHUNK):
        if out.startswith(CHUNK_MAGIC, at):
            free = struct.unpack_from("<I", out, at + 48)[0]
            struct.pack_into("<I", out, at + 52, zlib.crc32(out[at + 512 : at + free]))
            struct.pack_into("<I", out, at + 124, zlib.crc32(out[at + 128 : at + 512], zlib.crc32(out[at : at + 120])))
    return bytes(out)


def caseless_spellings(text: str) -> st.SearchStrategy[str]:
    """``text`` with each character as is, in the other ASCII case or as a character SQL's caseless
    matching takes for it (``exhunt.sqlfold``): every spelling a caseless SQL match of ``text`` accepts."""
    def forms(c: str) -> list[str]:
        return list(dict.fromkeys([*spellings(c), c.swapcase() if c.isascii() else c]))

    return st.tuples(*(st.sampled_from(forms(c)) for c in text)).map("".join)

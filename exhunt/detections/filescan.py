"""What a worker does with a file's bytes besides parsing: YARA, content heuristics, archive members.

Called from ``exhunt.worker`` after the file was read once (parsed and hashed); ``data`` is the
captured content when the file was under the YARA size limit, else ``None`` (hashed, not scanned:
said in a warning row so coverage shows it). Archives found by their magic bytes are walked member by
member in memory with the evidence layer's one member reader (``evidence.archive_members``) under
``ARCHIVE_LIMITS``; members become ``files`` rows (``<archive>!<member>``) so hash IOCs reach them too.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import yara_x

from exhunt.artifacts.base import ParseContext
from exhunt.artifacts.files import HEAD_BYTES
from exhunt.artifacts.pages import SERVER_PAGES
from exhunt.detections.pagescan import view_rows
from exhunt.detections.yara import FileScanner
from exhunt.evidence.archive import looks_like_archive
from exhunt.evidence.archive_formats import is_archive, make_reader, seekable_copy
from exhunt.evidence.archive_members import Limits, Walk, members, read_whole
from exhunt.evidence.base import EvidenceFile

# Members found in place are read whole into one worker's memory and YARA-scanned: fewer members
# and bytes than a listed archive, whose members are streamed; nested archives in memory cost only
# memory, so two levels below the outermost are opened.
ARCHIVE_LIMITS = Limits(members=20_000, total=2 << 30, depth=2)
HOLD_7Z = 512 << 20  # a 7z up to this is decompressed once for all its members (solid blocks: see SevenZipReader)
HEURISTIC_SCORE = 60
CHR_MARKERS = (b"hr(", b"HR(", b"hrW(", b"hrw(")  # Chr( chr( CHR( ChrW( chrw(
HEURISTIC_BYTES = 4 << 20
CONCAT = re.compile(rb"[\"']\s*[+&]\s*[\"']")
FILE_ATTRIBUTE_HIDDEN = 0x2
FILE_ATTRIBUTE_SYSTEM = 0x4
HAS_FILE_ATTRIBUTES = hasattr(os.stat_result, "st_file_attributes")  # Windows only: elsewhere no stat per file



def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (byte histogram by pyarrow: no Python loop over the data)."""
    if not data:
        return 0.0
    n = len(data)
    array = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(data)])
    counts = pc.value_counts(array).field("counts").to_pylist()
    return -sum(c / n * math.log2(c / n) for c in counts)


def obfuscation(data: bytes) -> dict[str, Any]:
    """Scores for a script page: entropy, long unbroken tokens (base64/hex blobs), escape and
    concatenation density (every signal computed; see ``_obfuscation``)."""
    scores = _obfuscation(data, 0)
    assert scores is not None  # a threshold of 0 is always reached
    return scores


DATA_IMAGE_RE = re.compile(rb"data:image/[a-z0-9+.-]{1,20};base64,[A-Za-z0-9+/=\s]{16,}", re.I)


def _obfuscation(data: bytes, threshold: int) -> dict[str, Any] | None:
    """The scores, or None as soon as they cannot reach ``threshold``. It runs on every page, so
    everything is a C-level bytes operation; entropy (the costliest, a pyarrow histogram) and the
    concatenation count are computed only when they could still tip the score over the threshold."""
    data = data[:HEURISTIC_BYTES]
    if b"data:image/" in data:  # an inline image (a branded logon page's logo) is no packed payload
        data = DATA_IMAGE_RE.sub(b"", data)
    n = max(len(data), 1)
    lines = data.split(b"\n")
    longest = max(map(len, lines))
    blobs = 0
    if longest >= 300:  # only long lines can hold a blob
        blobs = sum(len(t) for line in lines if len(line) >= 300 for t in line.split() if len(t) >= 300)
    escapes = data.count(b"&#") + sum(data.count(m) for m in CHR_MARKERS)
    if data.count(b"\\") >= 40:
        escapes += data.count(b"\\x") + data.count(b"\\u")
    score = 0
    score += 35 if blobs / n > 0.3 else 20 if blobs > 2000 else 0
    score += (50 if escapes / n > 0.05 else 30 if escapes / n > 0.02 else 0) if escapes > 40 else 0
    score += 10 if longest > 5000 else 0
    if score + 35 + 20 < threshold:  # entropy adds at most 35, concatenation 20
        return None
    ent = entropy(data)
    score += 35 if ent > 5.8 else 15 if ent > 5.4 else 0
    concat = 0
    if HEURISTIC_SCORE - 20 <= score < HEURISTIC_SCORE:  # concatenation can only tip the balance
        concat = len(CONCAT.findall(data))
        score += 20 if concat / n > 0.01 and concat > 30 else 0
    return {"score": min(score, 100), "entropy": round(ent, 3), "blob_bytes": blobs, "escapes": escapes,
            "concatenations": concat, "longest_line": longest}


def heuristic_row(host: str, path: str, rule: str, meta: dict[str, Any], sha256: str) -> dict[str, Any]:
    return {
        "host": host,
        "path": path,
        "engine": "heuristic",
        "rule": rule,
        "namespace": "exhunt.heuristics",
        "tags": "heuristic",
        "meta": orjson.dumps(meta).decode(),
        "strings": "[]",
        "sha256": sha256,
    }


def content_heuristics(host: str, rel: str, data: bytes, sha256: str) -> list[dict[str, Any]]:
    if not rel.lower().endswith(SERVER_PAGES):
        return []
    scores = _obfuscation(data, HEURISTIC_SCORE)
    if scores is None or scores["score"] < HEURISTIC_SCORE:
        return []
    return [heuristic_row(host, rel, "obfuscated_script_page", scores, sha256)]


def attribute_heuristics(file: EvidenceFile, host: str, sha256: str) -> list[dict[str, Any]]:
    """Hidden/system attributes, where the evidence keeps them (a live or mounted NTFS on Windows)."""
    if not HAS_FILE_ATTRIBUTES or file.source not in ("directory", "file"):
        return []
    try:
        st = os.stat(os.path.join(file.root, file.rel), follow_symlinks=False)
    except OSError:
        return []
    attrs = getattr(st, "st_file_attributes", None)
    if attrs is None or stat.S_ISLNK(st.st_mode):
        return []
    bits = (("hidden", FILE_ATTRIBUTE_HIDDEN), ("system", FILE_ATTRIBUTE_SYSTEM))
    flags = [name for name, bit in bits if attrs & bit]
    if not flags:
        return []
    return [heuristic_row(host, file.rel, "hidden_or_system_file", {"attributes": flags}, sha256)]


def scan_bytes(scanner: FileScanner, ctx: ParseContext, rel: str, data: bytes, sha256: str,
               yara: list[dict[str, Any]] | Exception | None = None) -> None:
    """``yara``: this file's scan already done (its rows, or what it raised), else scanned here."""
    try:
        if isinstance(yara, Exception):
            raise yara
        rows = scanner.scan(data, rel, ctx.host, sha256) if yara is None else yara
    except (yara_x.ScanError, yara_x.TimeoutError) as exc:
        _warn(ctx, f"YARA scan failed for {rel}: {exc}")
        return
    ctx.writer.extend("matches", rows)
    try:  # pages only, and only when the raw bytes hold obfuscation worth undoing
        ctx.writer.extend("matches", view_rows(scanner, rel, ctx.host, sha256, data, rows))
    except (yara_x.ScanError, yara_x.TimeoutError) as exc:
        _warn(ctx, f"YARA scan failed for the normalised view of {rel}: {exc}")
    ctx.writer.extend("matches", content_heuristics(ctx.host, rel, data, sha256))


def _warn(ctx: ParseContext, message: str) -> None:
    saved, ctx.artifact = ctx.artifact, "yara"
    ctx.warn(message)
    ctx.artifact = saved


def scan_file(
    scanner: FileScanner, ctx: ParseContext, file: EvidenceFile, data: bytes | None, sha256: str, head: bytes,
    yara: list[dict[str, Any]] | Exception | None = None,
) -> None:
    """The worker hook: YARA + heuristics on the captured bytes, then archive members (``yara``: the
    file's YARA scan, when the fast lane did it first: ``exhunt.smallfiles``)."""
    if data is None:
        _warn(ctx, f"larger than the YARA size limit ({scanner.max_size} bytes): hashed, not YARA-scanned")
    else:
        scan_bytes(scanner, ctx, file.rel, data, sha256, yara)
    ctx.writer.extend("matches", attribute_heuristics(file, ctx.host, sha256))
    if looks_like_archive(file.rel) and file.source != "file":
        return  # the evidence layer lists this archive's members as files of their own (parsed, not only scanned)
    if is_archive(head, file.rel):
        try:
            stream: BinaryIO = io.BytesIO(data) if data is not None else file.open()
        except OSError as exc:
            _warn(ctx, f"cannot reopen archive: {exc.strerror or exc}")
            return
        with stream:
            scan_archive(scanner, ctx, file, stream)


def scan_archive(scanner: FileScanner, ctx: ParseContext, file: EvidenceFile, stream: BinaryIO) -> None:
    """Every member in memory, never on disk, through the evidence layer's member walk (names,
    links, count, size, ratio and depth limits: ``ARCHIVE_LIMITS``); nested archives are met by
    their magic bytes and opened from the bytes already read."""
    name = file.rel.rsplit("/", 1)[-1]
    walk = Walk(ARCHIVE_LIMITS, lambda where, message: _warn(ctx, f"{where}: {message}"), "!",
                lambda e: e.data is not None and is_archive(e.data[:512], e.clean),
                lambda e: make_reader(io.BytesIO(e.data or b""), e.clean.rsplit("/", 1)[-1], HOLD_7Z))
    for entry in members(lambda: make_reader(seekable_copy(stream), name, HOLD_7Z), file.rel, file.rel, walk):
        member_path, size = entry.rel, entry.member.size
        if size > scanner.max_size:
            _warn(ctx, f"{member_path}: member of {size} bytes over the size limit, not read (neither parsed "
                       "nor scanned): extract the archive")
            continue
        try:
            data = read_whole(entry, scanner.max_size)
        except OSError as exc:  # any error on one member loses only that member
            _warn(ctx, f"{member_path}: cannot read member: {exc}")
            continue
        if _parsed(ctx, file, member_path, data, entry.member.mtime):
            continue
        sha256 = hashlib.sha256(data).hexdigest()
        ctx.writer.add("files", _member_row(ctx.host, file, member_path, data, sha256, entry.member.mtime))
        scan_bytes(scanner, ctx, member_path, data, sha256)


def _parsed(ctx: ParseContext, file: EvidenceFile, member_path: str, data: bytes, mtime: float | None) -> bool:
    """Whether this member is a log or an event log (an export included), now parsed: its rows,
    warnings and inventory row as a listed archive's member gets them. Archives the listing opens
    are named as such; one found here by its content (``Collection-EXCH01``, a gzip named
    ``u_ex210304.log``) held the attack's logs, which only hashed and scanned were missed. Other
    members (pages, tools, dumps) stay as they were: hashed and scanned."""
    from exhunt import worker
    from exhunt.artifacts import choose

    artifact = choose(member_path.lower(), data[:HEAD_BYTES])
    if artifact is None or not (artifact.is_log or artifact.is_event_log):
        return False
    member = EvidenceFile("archive", file.root, member_path, len(data), mtime)
    ctx.events += worker.process_bytes(member, ctx.host, ctx.writer, data).events
    return True


def _member_row(
    host: str, file: EvidenceFile, path: str, data: bytes, sha256: str, mtime: float | None
) -> dict[str, Any]:
    return {
        "host": host,
        "path": path,
        "size": len(data),
        "mtime": datetime.fromtimestamp(mtime, UTC) if mtime else None,
        "ctime": None,
        "atime": None,
        "sha256": sha256,
        "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324 - IOC lists use SHA-1/MD5
        "md5": hashlib.md5(data).hexdigest(),
        "magic": data[:16].hex(),  # noqa: S324
        "artifact": "archive_member",
        "evidence": file.root,
    }

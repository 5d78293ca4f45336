"""Evidence no artifact reads: named in a warning, never passed over in silence.

``unread_reason``: files where evidence is kept that nobody read: a disk image inside the evidence
(only opened as evidence of its own), a log in an Exchange or IIS log folder that no artifact
claims (no ``#Fields`` header in its head, another IIS log format, not text). The host's coverage
counts them as unread: no all-clear over them. (An archive found by its content, its name without
an archive extension, is opened by the content scan: ``filescan.scan_archive`` parses its members.)

``reason``: structured files no artifact reads.

Why: an event export in a shape exhunt does not know (a SIEM's JSON lines, a CSV, an XML dump)
would otherwise be inventoried and hashed, and the host called clean with none of its events read.
Only files no artifact claimed are looked at, only through the head bytes the worker already has,
and only where an analyst's export can lie: files inside a drive copy's system and application
folders (``Program Files``, ``Windows``, ``inetpub``, ``ProgramData``, profiles' ``AppData``) are
the server's own configuration (``web.config``, ``.xml`` settings), not evidence exports.
"""

from __future__ import annotations

import csv
import re

import orjson

from exhunt.evidence.archive_formats import sniff  # a compressed log: the content scan opens and parses it
from exhunt.evidence.image import image_kind

SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".tab", ".xml", ".txt", ".log")
CSV_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")  # a .log with commas is usually a plain text log
SYSTEM_FOLDERS = frozenset({"program files", "program files (x86)", "windows", "inetpub", "programdata",
                            "appdata", "$recycle.bin", "system volume information", "$extend"})
# Velociraptor collector bookkeeping at the top of a collection: not evidence of the host
COLLECTOR_FILES = frozenset({"collection_context.json", "uploads.json", "log.json", "client_info.json",
                             "requests.json"})
SHOWN_KEYS = 6
XML_ROOT_RE = re.compile(r"<([A-Za-z_][\w.:-]*)")
JSON_OBJECT_RE = re.compile(r'\{\s*"')
JSON_ARRAY_RE = re.compile(r'\[\s*\{\s*"')
CLIXML_TYPE_RE = re.compile(r"<T>([^<]{1,200})</T>")
WHY_EVENTS = "not recognised as Windows events (no event id with a channel or provider, and no known export shape)"


def _text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "replace").lstrip("\ufeff")
    if len(head) > 1 and head[1:2] == b"\x00" and head[:1] != b"\x00":  # UTF-16LE without a BOM
        return head.decode("utf-16-le", "replace")
    return head.decode("utf-8", "replace").lstrip("\ufeff")


def _keys(obj: object) -> str:
    if not isinstance(obj, dict) or not obj:
        return ""
    keys = [str(k) for k in list(obj)[:SHOWN_KEYS]]
    return " with keys " + ", ".join(keys) + (", …" if len(obj) > SHOWN_KEYS else "")


def _first_json(line: str) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _looks_like_csv(lines: list[str], header_only: bool) -> list[str] | None:
    """The header fields when the first lines split alike on one delimiter (2 fields or more);
    a lone header line counts only when ``header_only`` (a .csv named as such)."""
    sample = [ln.rstrip("\r") for ln in lines[:6] if ln.strip()]
    if not sample or (len(sample) < 2 and not header_only):
        return None
    for delimiter in (",", "\t", ";", "|"):
        try:
            rows = list(csv.reader(sample, delimiter=delimiter))
        except csv.Error:  # a stray carriage return or NUL: not a table
            return None
        width = len(rows[0])
        if width >= 2 and all(len(r) == width for r in rows[1:]):
            return [c.strip() for c in rows[0]]
    return None


LOG_FOLDERS = ("/logging/", "/logfiles/")  # Exchange's Logging tree, IIS's inetpub\logs\LogFiles


def warning(rel_lower: str, head: bytes, size: int) -> str | None:
    """The warning for a file no artifact claimed, or None: evidence left unread (``unread_reason``)
    or a structured file (``reason``). Its artifact is ``unrecognised`` (the host's coverage)."""
    why = unread_reason(rel_lower, head, size)
    if why is not None:
        return why
    why = reason(rel_lower, head, size <= len(head))
    return f"{why}: only inventoried and scanned as a file" if why is not None else None


def unread_reason(rel_lower: str, head: bytes, size: int) -> str | None:
    """Why this unclaimed file is evidence left unread, or None (see the module). Never raises."""
    try:
        return _unread_reason(rel_lower, head, size)
    except Exception:  # noqa: BLE001 - a sniff is a courtesy; the file is inventoried and scanned anyway
        return None


def _unread_reason(rel_lower: str, head: bytes, size: int) -> str | None:
    path = "/" + rel_lower.replace("\\", "/").replace("!", "/")  # an archive member's inner path too
    name = path.rsplit("/", 1)[-1]
    image = image_kind(name, head, size)
    if image is not None:
        return (f"a disk or VM image ({image}) inside the evidence is not opened: scan it as evidence of its "
                "own (exhunt scan IMAGE)")
    if not name.endswith(".log"):
        return None
    if any(folder in path for folder in LOG_FOLDERS) and sniff(head) is None:
        what = "not text" if b"\x00" in head[:512] else "no #Fields header in its first 4 KB, or another log format"
        return f"a log in an Exchange or IIS log folder that no artifact reads ({what}): not parsed, only inventoried"
    return None


def wanted(rel_lower: str) -> bool:
    """Whether a file at this path may be an analyst's export (and so deserves a look)."""
    parts = rel_lower.replace("\\", "/").split("/")
    name = parts[-1]
    if len(parts) == 1 and name in COLLECTOR_FILES:
        return False
    if any(p in SYSTEM_FOLDERS for p in parts[:-1]):
        return False
    return name.endswith(SUFFIXES) or "." not in name


def reason(rel_lower: str, head: bytes, complete: bool) -> str | None:
    """Why this unclaimed file is worth a warning, or None (not structured, or not an export's
    place). ``complete``: the head holds the whole file (no line was cut by the head's end).
    Never raises: hostile bytes must not cost the file its inventory row."""
    if not head or not wanted(rel_lower):
        return None
    try:
        return _reason(rel_lower, head, complete)
    except Exception:  # noqa: BLE001 - a sniff is a courtesy; the file is inventoried and scanned anyway
        return None


def _reason(rel_lower: str, head: bytes, complete: bool) -> str | None:
    text = _text(head).lstrip(" \t\r\n")
    lines = text.split("\n")
    if not complete and len(lines) > 1:
        lines.pop()  # cut by the end of the head
    first = lines[0].strip() if lines else ""
    if text.startswith("{"):
        obj = _first_json(first)
        if isinstance(obj, dict):
            return f"JSON lines{_keys(obj)} {WHY_EVENTS}"
        whole = _first_json(text) if complete else None
        if isinstance(whole, dict):
            return f"a JSON document{_keys(whole)} {WHY_EVENTS}"
        if not JSON_OBJECT_RE.match(text):
            return None
        return f"JSON (its first object is longer than the {len(head)}-byte head or spans lines) {WHY_EVENTS}"
    if JSON_ARRAY_RE.match(text):  # '[' then an object: a '[03/01/2021 ...]' text log is not one
        obj = _first_json(text) if complete else None
        inner = obj[0] if isinstance(obj, list) and obj else None
        return (f"a JSON array{' of objects' + _keys(inner) if isinstance(inner, dict) else ''}: exhunt reads "
                "event exports as JSON lines (one object per line), not arrays")
    if text.startswith("<") and not text.startswith("<!"):  # <?xml or an element; HTML doctypes are not
        root = None
        for match in XML_ROOT_RE.finditer(text):
            if match.group(1).lower() != "xml":
                root = match.group(1)
                break
        if root is None:
            return None
        if root == "Objs":
            kind = CLIXML_TYPE_RE.search(text)
            return (f"PowerShell CLIXML{' of ' + kind.group(1) if kind else ''} not read by any artifact "
                    "(exhunt reads the build from ExSetup/Get-ExchangeServer exports)")
        if root.split(":")[-1] in ("Events", "Event"):
            return f"XML <{root}> (an Event Viewer or wevtutil XML export) is not read: collect the .evtx file"
        return f"XML document <{root}> not recognised by any artifact"
    if rel_lower.endswith(CSV_SUFFIXES):
        header = _looks_like_csv(lines, header_only=not rel_lower.endswith(".txt"))
        if header:
            shown = ", ".join(header[:SHOWN_KEYS]) + (", …" if len(header) > SHOWN_KEYS else "")
            return (f"CSV with columns {shown} not recognised as a Windows event export "
                    "(no event id column with a time column)")
    return None

"""Indicator CSV feeds: Microsoft's March 2021 Exchange feed (``Indicator,IndicatorType``) and
the same shape under other headers (``value,type`` as in Volexity's list)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from exhunt.detections.iocs.model import HASH_PREFIX, Indicator, IocSet, classify, hash_kind, windows_path

VALUE_COLUMNS = ("indicator", "value", "ioc", "indicatorvalue")
TYPE_COLUMNS = ("indicatortype", "type", "ioc_type")
TYPE_MAP = {
    "sha256": "sha256",
    "sha1": "sha1",
    "md5": "md5",
    "filehash": "",
    "hash": "",
    "filepath": "path",
    "path": "path",
    "filename": "filename",
    "domainname": "domain",
    "domain": "domain",
    "ipaddress": "ip",
    "ip": "ip",
    "ipv4": "ip",
    "ipv6": "ip",
    "url": "url",
    "useragent": "user_agent",
    "user-agent": "user_agent",
}


def _columns(header: list[str]) -> tuple[int, int] | None:
    lower = [h.strip().lstrip("\ufeff").lower() for h in header]
    value = next((i for i, h in enumerate(lower) if h in VALUE_COLUMNS), None)
    kind = next((i for i, h in enumerate(lower) if h in TYPE_COLUMNS), None)
    return (value, kind) if value is not None and kind is not None else None


def detect(path: Path, head: bytes) -> bool:
    first = head.decode("utf-8", "replace").splitlines()[:1]
    return bool(first) and "," in first[0] and _columns(next(csv.reader(first))) is not None


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    origin = str(path)
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    cols = _columns(header)
    if cols is None:
        out.skip(origin, "no indicator/type columns")
        return out
    vi, ti = cols
    notes = next(
        (i for i, h in enumerate(header) if h.strip().lower() in ("notes", "description", "comment")), None
    )
    for n, row in enumerate(rows, 2):  # n: the row's number (a quoted field may span lines)
        if not any(c.strip() for c in row):  # an empty row
            continue
        if len(row) <= max(vi, ti):
            out.skip(origin, f"row without its indicator and type columns: {','.join(row)[:80]!r}", n)
            continue
        value, kind = row[vi].strip(), TYPE_MAP.get(row[ti].strip().lower().replace(" ", ""))
        name = row[notes].strip() if notes is not None and notes < len(row) else ""
        item: Indicator | None = None
        if kind is None:
            out.skip(origin, f"unknown indicator type {row[ti]!r}", n)
            continue
        if kind == "":
            bare = HASH_PREFIX.sub("", value)
            hk = hash_kind(bare)
            item = Indicator(hk, bare.lower(), origin, name) if hk else None
        elif kind == "path":
            item = Indicator("path", windows_path(value), origin, name) if value.strip('"\\/ ') else None
        else:
            hint = "filename" if kind == "filename" else "user_agent" if kind == "user_agent" else ""
            item = classify(value, origin, name, hint)
        if item is None:
            out.skip(origin, f"unrecognised {row[ti].strip()} value {value[:80]!r}", n)
        out.add(item)
    return out

"""signature-base / LOKI lists: ``hash;description`` and ``regex;score[;false-positive regex]``.

As in LOKI the kind comes from the file name (``hash`` / ``filename``; ``c2`` lists are plain
values and go to the plain reader). Filename regexes are matched case-sensitively against the
Windows form of the path unless they start with ``(?i)``, exactly as the list's own header says.
"""

from __future__ import annotations

import re
from pathlib import Path

from exhunt.detections.iocs.model import Indicator, IocSet, hash_kind
from exhunt.detections.iocs.plain import HASH_LINE as HASH_VALUE

HASH_LINE = re.compile(rb"^\s*[0-9a-fA-F]{32,64}\s*;", re.M)
REGEX_LINE = re.compile(rb"^[^#\r\n][^;\r\n]*;\s*\d{1,3}\s*(;|$)", re.M)


def detect(path: Path, head: bytes) -> bool:
    name = path.name.lower()
    return ("hash" in name and bool(HASH_LINE.search(head))) or (
        "filename" in name and bool(REGEX_LINE.search(head))
    )


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    origin = str(path)
    is_hash = "hash" in path.name.lower()
    comment = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comment = line.lstrip("# ").strip() or comment
            continue
        if is_hash:
            listed = HASH_VALUE.match(line)  # also "HASH  name", "HASH,comment" lines in the same list
            value, desc = (listed["value"], listed["rest"]) if listed else line.partition(";")[::2]
            kind = hash_kind(value)
            if kind is None:
                out.skip(origin, f"not an MD5/SHA-1/SHA-256: {value[:80]!r}", n)
                continue
            out.add(Indicator(kind, value.strip().lower(), origin, desc.strip() or comment))
            continue
        parts = line.split(";")
        if len(parts) < 2 or not parts[1].strip().isdigit():
            out.skip(origin, "expected REGEX;SCORE[;FP-REGEX]", n)
            continue
        regex, score, exclude = parts[0], int(parts[1]), (parts[2] if len(parts) > 2 and parts[2] else None)
        try:
            re.compile(regex)
            if exclude:
                re.compile(exclude)
        except re.error as exc:
            out.skip(origin, f"invalid regex: {exc}", n)
            continue
        out.add(Indicator("filename_regex", regex, origin, comment, score, exclude))
    return out

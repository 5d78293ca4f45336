"""Plain lists: one value per line, ``#`` comments, optional ``value;comment`` or ``value,comment``.

The kind of each line is recognised from the value (hash length, IP, domain, URL, Windows path);
the file name decides what cannot be told from the value alone: ``*agent*`` files hold user
agents, ``*name*`` files hold file names (the HAFNIUM community lists use both).
"""

from __future__ import annotations

from pathlib import Path

from exhunt.detections.iocs.model import IocSet, classify

SUFFIXES = (".txt", ".csv", ".lst", ".list", ".ioc", ".iocs", ".md5", ".sha1", ".sha256", "")


def detect(path: Path, head: bytes) -> bool:
    return True  # the fallback reader


def hint_for(path: Path) -> str:
    name = path.name.lower()
    if "agent" in name or name.startswith("ua"):
        return "user_agent"
    if "name" in name:
        return "filename"
    if "path" in name:
        return "path"
    return ""


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    hint = hint_for(path)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith(("#", "//", ";")):
            continue
        value, comment = line, ""
        if hint != "user_agent":
            for sep in (";", "\t", ","):
                if sep in line:
                    value, _, comment = line.partition(sep)
                    break
        if hint == "path" and value.endswith(("\\", "/")):
            out.skip(str(path), f"folder {value!r} is a location, not an indicator", n)
            continue
        indicator = classify(value, str(path), comment.strip(), hint)
        if indicator is None:
            out.skip(str(path), f"unrecognised value {value[:80]!r}", n)
        out.add(indicator)
    return out

"""Plain lists as people write them: one value per line, with whatever follows it.

The kind of each line is recognised from the value (hash length, IP, domain, URL, Windows path);
the file name decides what cannot be told from the value alone: ``*agent*`` files hold user
agents, ``*name*`` files hold file names (the HAFNIUM community lists use both).

A line is a value and an optional comment: ``sha256sum``/``md5sum`` output (``HASH  name``,
``HASH *name`` in binary mode), ``HASH,comment``, ``HASH;comment``, ``HASH # comment``,
``HASH<TAB>comment``, leading and trailing spaces; IPs, domains and URLs may be defanged
(``hxxps://evil[.]example``, see ``model.refang``); a hash may carry its algorithm's name
(``sha256:HASH``, ``MD5=HASH``). Whole-line comments start with ``#``, ``//``
or ``;``. A line that still cannot be read is listed with its line number.
"""

from __future__ import annotations

import re
from pathlib import Path

from exhunt.detections.iocs.model import HASH_NAME, Indicator, IocSet, classify

SUFFIXES = (".txt", ".csv", ".lst", ".list", ".ioc", ".iocs", ".md5", ".sha1", ".sha256", "")
# a hash and whatever follows it: sha256sum's "  name" / " *name" (a leading \ when the name was
# escaped), or a separator and a comment
HASH_LINE = re.compile(
    r"^\\?(?:" + HASH_NAME + ")?"  # "sha256:HASH", "MD5=HASH"
    r"(?P<value>[0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32})(?![0-9a-f])(?:\s*[,;|\t#]|\s+\*?|$)(?P<rest>.*)$",
    re.I,
)
# a value without spaces (IP, domain, URL) and a comment after a separator or a space
TOKEN_LINE = re.compile(r"^(?P<value>[^\s,;|]+)(?:\s*[,;|\t]|\s+#|\s+|$)(?P<rest>.*)$")
SEPARATORS = (";", "\t", ",")
NETWORK_KINDS = ("ip", "domain", "url")


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


def parse_line(line: str, hint: str, origin: str) -> tuple[str, Indicator | None]:
    """(value, indicator or None). User agents are whole lines; a hash, IP, domain or URL ends at
    the first separator or space; paths and file names (which may hold spaces) only at ``;``, TAB
    or ``,``."""
    if hint == "user_agent":
        return line, classify(line, origin, "", hint)
    match = HASH_LINE.match(line)
    if match:
        return match["value"], classify(match["value"], origin, match["rest"].strip(), hint)
    if hint not in ("path", "filename"):
        match = TOKEN_LINE.match(line)
        if match:
            comment = match["rest"].strip().lstrip("#").strip()
            indicator = classify(match["value"], origin, comment, hint)
            if indicator is not None and indicator.kind in NETWORK_KINDS:
                return match["value"], indicator
            after = line[len(match["value"]):].lstrip(" ")
            # a file name alone or with a marked comment ("wscript.exe /b /E:jscript" is a command line)
            if indicator is not None and indicator.kind == "filename_regex" and after[:1] in ("", "#", "\t"):
                return match["value"], indicator
    value, comment = line, ""
    for sep in SEPARATORS:
        if sep in line:
            value, _, comment = line.partition(sep)
            break
    value = value.strip()
    if hint == "path":
        value = re.sub(r"\s+\([^)]*\)$", "", value)  # "\\x\\ (any .aspx file under it)": prose after
        if value.endswith(("\\", "/")) or re.search(r'[<>*?|"]', value.strip('"')):
            return value, None
    return value, classify(value, origin, comment.strip(), hint)


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    hint, origin = hint_for(path), str(path)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().lstrip("\ufeff").strip()
        if not line or line.startswith(("#", "//", ";")):
            continue
        value, indicator = parse_line(line, hint, origin)
        if indicator is None:
            folder = hint == "path" and value.endswith(("\\", "/"))
            wild = hint == "path" and re.search(r'[<>*?|"]', value.strip('"'))
            reason = (f"folder {value!r} is a location, not an indicator" if folder else
                      f"{value[:80]!r} is a description (<, >, *, ?, | are no path's), not a path" if wild else
                      f"unrecognised value {value[:80]!r}")
            out.skip(origin, reason, n)
        out.add(indicator)
    return out

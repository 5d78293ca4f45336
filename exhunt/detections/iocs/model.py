"""Indicators as read from any list format, and the value classification every reader shares."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$", re.I)
KINDS = ("md5", "sha1", "sha256", "filename_regex", "path", "ip", "domain", "user_agent", "url")
# how reports defang network values so nobody clicks them: hxxp(s), [.] (.) {.} [dot], [:] [://], [at]
DEFANGED = re.compile(
    r"^h[x*]{2}p(s?)(?=[\[:])|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\[:\]|\[://\]|\[at\]|\(at\)|\[@\]", re.I
)
REFANGED = {"[.]": ".", "(.)": ".", "{.}": ".", "[dot]": ".", "(dot)": ".", "[:]": ":", "[://]": "://",
            "[at]": "@", "(at)": "@", "[@]": "@"}


@dataclass(frozen=True)
class Indicator:
    kind: str  # one of KINDS
    value: str  # normalized: hashes lower-case, domains lower-case, paths '\\'-separated without drive
    source: str  # the list file it came from
    name: str = ""  # description, campaign or rule title from the list
    score: int | None = None  # signature-base score, CHIRP confidence ...
    exclude: str | None = None  # signature-base false-positive regex (filename lists)


@dataclass
class IocSet:
    indicators: list[Indicator] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # origin, line, reason
    yara_rules: list[tuple[str, str]] = field(default_factory=list)  # (origin, rule text) from CHIRP

    def add(self, indicator: Indicator | None) -> None:
        if indicator is not None:
            self.indicators.append(indicator)

    def skip(self, origin: str, reason: str, line: int | None = None) -> None:
        self.skipped.append({"origin": origin, "line": line, "reason": reason})

    def of(self, *kinds: str) -> list[Indicator]:
        return [i for i in self.indicators if i.kind in kinds]

    def extend(self, other: IocSet) -> None:
        self.indicators.extend(other.indicators)
        self.skipped.extend(other.skipped)
        self.yara_rules.extend(other.yara_rules)

    def report(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for ind in self.indicators:
            counts[ind.kind] = counts.get(ind.kind, 0) + 1
        return {
            "loaded": len(self.indicators),
            "by_kind": counts,
            "yara_rules": len(self.yara_rules),
            "skipped_count": len(self.skipped),
            "skipped": self.skipped[:200],
            "files": sorted({i.source for i in self.indicators}),
        }


def hash_kind(value: str) -> str | None:
    value = value.strip()
    return HASH_KINDS.get(len(value)) if HEX_RE.match(value) else None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def windows_path(value: str) -> str:
    """``C:\\Program Files\\x`` or ``/Program Files/x`` -> ``\\program files\\x`` (no drive, lower)."""
    text = value.strip().strip('"').replace("/", "\\")
    text = re.sub(r"^[A-Za-z]:", "", text)
    text = re.sub(r"^%[A-Za-z_]+%", "", text)
    if not text.startswith("\\"):
        text = "\\" + text
    return text.lower()


def _refang_one(match: re.Match[str]) -> str:
    text = match.group(0)
    return "http" + match.group(1) if text[:1] in "hH" else REFANGED[text.lower()]


def refang(value: str) -> str:
    """``hxxps://evil[.]example[:]443`` -> ``https://evil.example:443``; other text unchanged."""
    return DEFANGED.sub(_refang_one, value) if ("[" in value or "(" in value or "{" in value
                                                 or value[:1] in "hH") else value


def classify(value: str, source: str, name: str = "", hint: str = "") -> Indicator | None:
    """A bare value: hash by length, IP, domain, URL, path; a hint (from the file name) decides the rest.
    IPs, domains and URLs are refanged first; paths and file names are taken as written (``[.]`` is
    a regex class there)."""
    v = value.strip()
    if not v:
        return None
    if hint == "user_agent":
        return Indicator("user_agent", v.replace("+", " "), source, name)
    kind = hash_kind(v)
    if kind:
        return Indicator(kind, v.lower(), source, name)
    net = refang(v)
    if is_ip(net):
        return Indicator("ip", net, source, name)
    if re.match(r"^[a-z][a-z0-9+.-]*://", net, re.I):
        return Indicator("url", net, source, name)
    if hint == "filename":
        return Indicator("filename_regex", r"(?i)\\" + re.escape(v.strip("\\/")) + "$", source, name)
    if hint == "path" or re.match(r"^([A-Za-z]:|%[A-Za-z_]+%)?\\", v):
        return Indicator("path", windows_path(v), source, name)
    if DOMAIN_RE.match(net.rstrip(".")):
        return Indicator("domain", net.lower().rstrip("."), source, name)
    return None

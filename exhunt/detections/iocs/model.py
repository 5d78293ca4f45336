"""Indicators as read from any list format, and the value classification every reader shares."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$", re.I)
# a hash written with its algorithm's name: "sha256:HASH", "SHA-1=HASH", "md5: HASH"
HASH_NAME = r"(?:sha-?256|sha-?1|md5)\s*[:=]\s*"
HASH_PREFIX = re.compile("^" + HASH_NAME, re.I)
# a bare file name whose extension is no top-level domain (web shells, tools, dumps, scripts): a
# file name in a list of any name, never a domain ("shell.aspx" had been a domain, matched no file)
FILE_NAME_RE = re.compile(
    r"^[^\\/:*?\"<>|\s]+\.(?:aspx|ashx|asmx|asax|ascx|asp|cshtml|exe|dll|ps1|psm1|bat|cmd|vbs|vbe|jse|wsf|"
    r"jsp|jspx|php|hta|lnk|scr|sys|dmp|rar|7z|config|msi|tmp)$",
    re.I,
)
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
        if indicator is None:
            return
        if indicator.kind == "ip" and (why := too_broad(indicator.value)):
            self.skip(indicator.source, why)
            return
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


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# "v4:port" and "[v6]:port" (a proxy's or an IOC feed's "address:port"), "[v6]"
_PORTED = re.compile(r"^\[([^\]]+)\](?::[0-9]{1,5})?$|^([0-9]{1,3}(?:\.[0-9]{1,3}){3}):[0-9]{1,5}$")


def ip_key(text: str | None) -> IpAddress | None:
    """An address as a log or a list writes it, in one comparable form: brackets and port removed,
    the zone (``%12``) dropped, an IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, as IIS and the
    Security log write IPv4 clients of a dual-stack socket) as its IPv4 address; None if not one."""
    if not text:
        return None
    value = text.strip()
    ported = _PORTED.match(value)
    if ported:
        value = ported.group(1) or ported.group(2)
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_network(text: str) -> IpNetwork | None:
    """A CIDR range (``198.51.100.0/24``, ``2001:db8::/32``; host bits allowed) or None."""
    if "/" not in text:
        return None
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


# the broadest range taken as an indicator: a /0 or a /4 (a feed's bogon list, a slip) would make every
# client an attacker, every host suspicious and every mailbox the impact reads exposed
WIDEST_PREFIX = {4: 8, 6: 16}


def too_broad(value: str) -> str | None:
    """Why an IP range indicator is not used (broader than ``WIDEST_PREFIX``), or None."""
    network = ip_network(value)
    if network is None or network.prefixlen >= WIDEST_PREFIX[network.version]:
        return None
    return (f"range {value} is too broad to be an indicator (/{network.prefixlen}; at most "
            f"/{WIDEST_PREFIX[network.version]}): it would match most clients")


def ip_value(text: str) -> str | None:
    """An IP indicator's value: the canonical address (lower-case, compressed, IPv4-mapped as IPv4)
    or CIDR range (a /32 or /128 as its address); None if ``text`` is neither."""
    address = ip_key(text)
    if address is not None:
        return str(address)
    network = ip_network(text)
    if network is None:
        return None
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def is_ip(value: str) -> bool:
    return ip_value(value) is not None


def ip_texts(value: str) -> list[str]:
    """Texts one of which a log line holding an address of the IP indicator ``value`` holds (the
    triage prefilters' literals, matched caselessly): the address, compressed and, for IPv6, in full;
    for a range, the fixed leading octets (IPv4) or groups (IPv6) of its addresses."""
    network = ip_network(value)
    if network is None:
        address = ip_key(value)
        if address is None:
            return [value]
        return [str(address)] if address.version == 4 else [str(address), address.exploded]
    if network.version == 4:
        octets = str(network.network_address).split(".")
        full, rest = divmod(network.prefixlen, 8)
        head = ".".join(octets[:full])
        if not rest:
            return [head + "."] if full else ["."]
        start = int(octets[full])
        return [".".join([*octets[:full], str(v)]) + ("." if full < 3 else "")
                for v in range(start, start + (1 << (8 - rest)))]
    groups = network.network_address.exploded.split(":")
    full = network.prefixlen // 16
    fixed: list[str] = []
    for group in groups[:full]:  # up to the first zero group: a compressed address may drop it
        if int(group, 16) == 0:
            break
        fixed.append(group)
    if not fixed:
        return [":"]
    return [":".join(f"{int(g, 16):x}" for g in fixed) + ":", ":".join(fixed) + ":"]


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


def url_body(value: str) -> str:
    """A URL indicator as a request or referer holds it: without its scheme (a query parameter may
    hold it with or without, %-encoded or not), ``/`` at the end dropped, lower case."""
    return re.sub(r"^[a-z][a-z0-9+.-]*://", "", value.strip(), flags=re.I).rstrip("/").lower()


def classify(value: str, source: str, name: str = "", hint: str = "") -> Indicator | None:
    """A bare value: hash by length, IP, URL, path, file name (``FILE_NAME_RE``), domain; a hint (from
    the file name) decides the rest.
    IPs, domains and URLs are refanged first; paths and file names are taken as written (``[.]`` is
    a regex class there)."""
    v = value.strip()
    if not v:
        return None
    if hint == "user_agent":
        return Indicator("user_agent", v.replace("+", " "), source, name)
    bare = HASH_PREFIX.sub("", v)
    kind = hash_kind(bare)
    if kind:
        return Indicator(kind, bare.lower(), source, name)
    net = refang(v)
    ip = ip_value(net)
    if ip is not None:
        return Indicator("ip", ip, source, name)
    if re.match(r"^[a-z][a-z0-9+.-]*://", net, re.I):
        return Indicator("url", net, source, name)
    if hint == "filename":
        return Indicator("filename_regex", r"(?i)\\" + re.escape(v.strip("\\/")) + "$", source, name)
    if hint == "path" or re.match(r"^([A-Za-z]:|%[A-Za-z_]+%)?\\", v):
        return Indicator("path", windows_path(v), source, name)
    if not hint and FILE_NAME_RE.match(v):
        return Indicator("filename_regex", r"(?i)\\" + re.escape(v) + "$", source, name)
    if DOMAIN_RE.match(net.rstrip(".")):
        return Indicator("domain", net.lower().rstrip("."), source, name)
    return None

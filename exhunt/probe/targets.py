"""Probe targets: a URL, a host, ``host:port`` or (only with ``--allow-ranges``) a CIDR range.

Why the rules are strict: a probe sends requests to other people's servers, so a typo must never
widen the scope. A CIDR range is refused unless the operator said ``--allow-ranges``, ranges larger
than ``MAX_RANGE_HOSTS`` are refused outright, and anything that is not clearly a host is a usage
error naming the file and line it came from.

Defaults: no scheme means HTTPS; port 80 without a scheme means HTTP. A URL path is kept as a base
prefix (a server published under ``https://gw.example/exchange``), query and fragment are dropped.
Each target has a canonical ``origin`` (``https://mail.example.org``, ``https://10.0.0.5:8443``)
used as its identity: duplicates are dropped and ``--resume`` matches on it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from exhunt.errors import Location, UsageError

MAX_RANGE_HOSTS = 65_536  # a /16: larger sweeps belong to a scanner, not an incident responder's probe
MAX_TARGETS = MAX_RANGE_HOSTS  # over the whole run: forty /16 lines are not a /16
DEFAULT_PORT = {"https": 443, "http": 80}
_PATH = re.compile(r"^[!-~]*$")  # printable ASCII, no space: sent as typed, so it must be encoded
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")


@dataclass(frozen=True)
class Target:
    scheme: str  # http | https
    host: str  # DNS name or IP literal (IPv6 without brackets)
    port: int
    base: str = ""  # path prefix without trailing slash, "" for the site root

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """Canonical identity: scheme, host, non-default port and base path."""
        return f"{self.scheme}://{self.netloc}{self.base}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.netloc}{self.base}{path}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(text: str, allow_ranges: bool = False, where: Location | None = None) -> Iterator[Target]:
    """One command-line or file entry -> targets (several only for a CIDR range)."""
    text = text.strip()
    if not text:
        raise UsageError("empty target", where)
    if "/" in text and "://" not in text and _looks_like_cidr(text):
        yield from _expand_range(text, allow_ranges, where)
        return
    yield _parse_single(text, where)


def _looks_like_cidr(text: str) -> bool:
    addr, _, bits = text.rpartition("/")
    if not bits.isdigit():
        return False
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def _expand_range(text: str, allow_ranges: bool, where: Location | None) -> Iterator[Target]:
    if not allow_ranges:
        raise UsageError(f"{text} is a range: pass --allow-ranges to probe every address in it", where)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise UsageError(f"bad range {text}: {exc}", where) from exc
    if net.num_addresses > MAX_RANGE_HOSTS:
        raise UsageError(f"range {text} has {net.num_addresses} addresses (limit {MAX_RANGE_HOSTS})", where)
    hosts = net.hosts() if net.num_addresses > 2 else iter(net)
    for addr in hosts:
        yield Target("https", str(addr), 443)


def _parse_single(text: str, where: Location | None) -> Target:
    try:  # a bare IPv6 literal ("::1") has colons that urlsplit would read as a port
        return Target("https", str(ipaddress.ip_address(text)), 443)
    except ValueError:
        pass
    explicit_scheme = "://" in text
    try:
        parts = urlsplit(text if explicit_scheme else f"//{text}")
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise UsageError(f"bad target {text!r}: {exc}", where) from exc
    scheme = (parts.scheme or "").lower()
    if explicit_scheme and scheme not in DEFAULT_PORT:
        raise UsageError(f"unsupported scheme in {text!r} (use http:// or https://)", where)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:  # bad port
        raise UsageError(f"bad target {text!r}: {exc}", where) from exc
    if not host or parts.username or parts.password:
        raise UsageError(f"bad target {text!r}: expected URL, host or host:port", where)
    if not _valid_host(host):
        raise UsageError(f"bad target {text!r}: {host!r} is not a host name or IP address", where)
    if port == 0:  # "port or default" would quietly probe another service than the one typed
        raise UsageError(f"bad target {text!r}: port 0", where)
    if not scheme:
        scheme = "http" if port == 80 else "https"
    base = parts.path.rstrip("/") if explicit_scheme else ""
    if base and not _PATH.match(base):
        raise UsageError(f"bad target {text!r}: the path must be URL-encoded ASCII", where)
    if not explicit_scheme and parts.path:
        raise UsageError(f"bad target {text!r}: a path needs a URL with http:// or https://", where)
    return Target(scheme, host.lower(), port or DEFAULT_PORT[scheme], base)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def read_targets_file(path: Path) -> Iterator[tuple[str, Location]]:
    """Entries of a targets file: one per line, ``#`` starts a comment, blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read targets file {path}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            yield entry, Location(str(path), number)


def collect_targets(args: Iterable[str], files: Iterable[Path] = (),
                    allow_ranges: bool = False) -> list[Target]:
    """All targets in order, duplicates (same origin) dropped. Every entry is validated first."""
    seen: set[str] = set()
    out: list[Target] = []
    entries: list[tuple[str, Location | None]] = [(a, None) for a in args]
    for f in files:
        entries.extend(read_targets_file(f))
    for entry, where in entries:
        for target in parse_target(entry, allow_ranges, where):
            if target.origin not in seen:
                seen.add(target.origin)
                out.append(target)
                if len(out) > MAX_TARGETS:
                    raise UsageError(f"more than {MAX_TARGETS} targets in all (ranges add up; the limit "
                                     "of one range is the limit of the run)", where)
    return out

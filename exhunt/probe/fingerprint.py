"""Which Exchange build answers, from non-intrusive sources, and how sure that is.

Sources, most precise first (each is an anonymous GET of a page every OWA/ECP user's browser loads):

1. ``X-OWA-Version`` response header of ``/owa/auth/logon.aspx``: the full build (SU level). high.
2. ``/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application``: the ClickOnce
   manifest of the eDiscovery export tool; its ``assemblyIdentity`` version is the full build and is
   updated by security updates. high. Only fetched when neither the header nor the MAPI page
   (3.) gave the build.
3. The back end's ``/mapi/nspi/`` page, which a ProxyShell-vulnerable front end returns to the
   ProxyShell check's request (no extra request): its ``Version: 15.x.y.z`` line is the exact build
   of the back end that answered. high. Read only from a complete number (an answer cut inside the
   line is not trusted).
4. Resource paths in the logon page (``/owa/auth/15.1.2176/themes/...``): Exchange 2013+ put only
   major.minor.build there, i.e. the CU. The SU level is unknown, so CVEs that an SU on that CU line
   fixes become ``unknown`` instead of ``vulnerable``; a CVE with no fix on that line stays
   vulnerable. low. Four-part paths (Exchange 2010 ``/owa/14.3.496.0/``) are medium: paths lag behind
   some updates.

Mapping build -> product/CU/update/CVEs is ``exhunt.detections.builds.assess_build`` (the table
``exhunt build`` uses).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from exhunt.detections import builds
from exhunt.errors import ExhuntError
from exhunt.findings.model import HostBuild
from exhunt.probe.wire import Reply, RequestSpec

LOGON = RequestSpec("owa-logon", "/owa/auth/logon.aspx")
EXPORTTOOL = RequestSpec(
    "ecp-exporttool", "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application",
    body_cap=32 * 1024,
)

_FULL = re.compile(r"^\s*(\d{1,2}\.\d{1,2}\.\d{1,5}\.\d{1,5})\s*$")
_OWA_PATH = re.compile(rb"/owa/(?:auth/)?(\d{1,2}\.\d{1,2}\.\d{1,5}(?:\.\d{1,5})?)/", re.I)
_EXPORT_ID = re.compile(
    rb"<assemblyIdentity\b[^>]*\bname=\"microsoft\.exchange\.ediscovery\.exporttool\.application\"[^>]*>",
    re.I)
_MAPI_VERSION = re.compile(
    rb"Exchange MAPI/HTTP Connectivity Endpoint.{0,400}?\bVersion:\s*(\d{1,2}\.\d{1,2}\.\d{1,5}\.\d{1,5})(?=\s*<)",
    re.I | re.S)
_VERSION_ATTR = re.compile(rb"\bversion=\"(\d{1,2}\.\d{1,2}\.\d{1,5}\.\d{1,5})\"", re.I)

MAPI_SOURCE = "back-end MAPI page (ProxyShell answer)"
EXCHANGE_HEADERS = ("x-owa-version", "x-feserver", "x-beserver", "x-calculatedbetarget", "x-diaginfo",
                    "x-owa-diagnosticsinfo", "x-owa-proxyuri")
EXCHANGE_BODY_MARKERS = (b"/owa/auth/", b"Exchange MAPI/HTTP", b"microsoft.exchange.ediscovery")


@dataclass(frozen=True)
class Fingerprint:
    build: str | None  # 4-part, or 3-part (major.minor.build) when only the CU is known
    source: str | None = None
    confidence: str | None = None  # high | medium | low
    note: str = ""

    @property
    def cu_only(self) -> bool:
        return self.build is not None and self.build.count(".") == 2

    def to_dict(self) -> dict[str, Any]:
        return {"build": self.build, "source": self.source, "confidence": self.confidence, "note": self.note}


def from_header(reply: Reply) -> Fingerprint | None:
    value = reply.header("X-OWA-Version") if reply.ok else None
    m = _FULL.match(value or "")
    return Fingerprint(m.group(1), "X-OWA-Version header", "high") if m else None


def from_exporttool(reply: Reply) -> Fingerprint | None:
    if not reply.ok or reply.status != 200:
        return None
    tag = _EXPORT_ID.search(reply.body)
    version = _VERSION_ATTR.search(tag.group(0)) if tag else None
    if version is None:
        return None
    return Fingerprint(version.group(1).decode(), "ECP export tool manifest", "high")


def from_mapi_page(replies: Iterable[Reply]) -> Fingerprint | None:
    """The Version line of a back-end /mapi/nspi/ page among ``replies`` (the ProxyShell answer)."""
    for reply in replies:
        if reply.ok and reply.status == 200 and (m := _MAPI_VERSION.search(reply.body)):
            return Fingerprint(m.group(1).decode(), MAPI_SOURCE, "high")
    return None


def from_logon_paths(reply: Reply) -> Fingerprint | None:
    if not reply.ok:
        return None
    found = Counter(m.group(1).decode() for m in _OWA_PATH.finditer(reply.body))
    if not found:
        return None
    build = max(found, key=lambda b: (found[b], b.count("."), b))
    if build.count(".") == 2:
        return Fingerprint(build, "OWA resource path", "low", "CU only: the path does not show the SU level")
    return Fingerprint(build, "OWA resource path", "medium")


def best(candidates: Iterable[Fingerprint | None]) -> Fingerprint:
    rank = {"high": 0, "medium": 1, "low": 2}
    found = [c for c in candidates if c is not None]
    if not found:
        return Fingerprint(None, note="no build disclosed by OWA/ECP")
    return min(found, key=lambda c: rank.get(c.confidence or "", 3))


def looks_like_exchange(replies: Iterable[Reply]) -> tuple[bool, tuple[str, ...]]:
    """Whether any reply carries an Exchange-only header or page marker, and which ones."""
    signals: list[str] = []
    replies = tuple(replies)
    # what the probe sent, which a server may only repeat ("Cannot GET /owa/auth/logon.aspx"): an
    # Express or Spring 404 had counted as Exchange from its echo of the probe's own paths
    sent = sorted({encoded for r in replies for path in (r.spec.path, r.spec.path.split("?", 1)[0])
                   for form in (path, unquote(path))
                   if any(m in (encoded := form.encode("latin-1", "replace")) for m in EXCHANGE_BODY_MARKERS)},
                  key=len, reverse=True)
    for r in replies:
        if not r.ok:
            continue
        for k, _ in r.headers:
            if k.lower() in EXCHANGE_HEADERS and k not in signals:
                signals.append(k)
        body = r.body
        for echoed in sent:
            body = body.replace(echoed, b"")
        for marker in EXCHANGE_BODY_MARKERS:
            if marker in body and marker.decode() not in signals:
                signals.append(marker.decode())
    return bool(signals), tuple(signals)


def host_build(fp: Fingerprint) -> HostBuild | None:
    """Map the fingerprint through the bundled build table (``exhunt build``'s). A CU-only build is
    passed as three numbers: the table then reports SU-level fixes as ``unknown``, not ``vulnerable``."""
    if fp.build is None:
        return None
    source = f"probe: {fp.source}" + (f" ({fp.note})" if fp.note else "")
    try:
        return _assess_build()(fp.build, source=source, confidence=fp.confidence)
    except ExhuntError as exc:  # an unparseable build is reported, never fatal to a sweep
        return HostBuild(build=fp.build, source=f"{source}; not in build table: {exc}",
                         confidence=fp.confidence)


def _assess_build() -> Callable[..., HostBuild]:
    """Indirection so tests can substitute a table."""
    return builds.assess_build

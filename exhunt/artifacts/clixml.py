"""PowerShell CLIXML exports that state the Exchange build (HealthChecker and hand-made collections).

- ``ExSetup.xml``: ``Get-Command ExSetup.exe | % {$_.FileVersionInfo} | Export-Clixml``; its
  ``FileVersion``/``ProductVersion`` (``15.02.0986.005``) is the exact build, SU included: fact
  ``build``, high confidence.
- ``GetExchangeServer.xml``: ``Get-ExchangeServer | Export-Clixml``; ``AdminDisplayVersion``
  (``Version 15.2 (Build 986.5)``) shows the CU and never the SU (Microsoft Learn says so), so it is
  recorded as the CU-level build ``15.2.986``, medium confidence.

Files are claimed by content (a ``<Objs`` CLIXML document that carries one of those properties), not by
name. The document is read by the one CLIXML reader (``psobjects.read_clixml``: streaming expat
with line numbers; a document type declaration is refused, so no entity expansion or external
entity can happen). ``BuildFacts`` turns its objects into build facts, for the cmdlet exports too.
An IIS ``applicationHost.config`` is not CLIXML and is never a build source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import BinaryIO

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.psobjects import PsRecord, getter, read_clixml

CLIXML_NS = "schemas.microsoft.com/powershell/2004/04"
MARKERS = ('N="FileVersion"', 'N="ProductVersion"', 'N="AdminDisplayVersion"',
           "System.Diagnostics.FileVersionInfo",
           "Microsoft.Exchange.Data.Directory.Management.ExchangeServer")
VERSION_RE = re.compile(r"^\s*(1[45])\.0?(\d)\.(\d{1,5})\.(\d{1,4})\s*$")
ADMIN_RE = re.compile(r"^\s*Version\s+(1[45])\.(\d+)\s*\(\s*Build\s+(\d+)\.(\d+)\s*\)\s*$", re.I)


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "ignore")
    if len(head) > 1 and head[1:2] == b"\x00":  # UTF-16LE without BOM (Export-Clixml's default encoding)
        return head.decode("utf-16-le", "ignore")
    return head.decode("utf-8", "ignore")


class CliXml(Artifact):
    """HealthChecker / Export-Clixml output carrying ExSetup's file version or AdminDisplayVersion."""

    name = "clixml"
    head_marks = (b"<objs ",)

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        text = _head_text(head)
        return "<Objs " in text and CLIXML_NS in text and any(m in text for m in MARKERS)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        read_builds(utf8_stream(ctx, stream), ctx.fact, ctx.warn, ctx.host)


Fact = Callable[[str, str, "int | None", str], None]
Warn = Callable[[str, "int | None", "int | None"], None]


def read_builds(stream: BinaryIO, fact: Fact, warn: Warn, host: str | None = None) -> int:
    """Read one CLIXML document (UTF-8: see ``utf8_stream``), calling ``fact("build", value, line,
    confidence)`` for each build. ``host`` picks the server out of an org-wide Get-ExchangeServer
    export (None: take every server). Returns the number of builds found."""
    builds = BuildFacts(fact, warn, host)
    for record in read_clixml(stream, warn, partial=True):  # a truncated export still gives what came before the cut
        builds.exsetup(record)
        builds.server(record)
    found = builds.finish()
    if not found:
        warn("CLIXML without an Exchange build (no ExSetup FileVersion or AdminDisplayVersion)", None, None)
    return found


def read_builds_file(stream: BinaryIO, fact: Fact, warn: Warn, host: str | None = None) -> int:
    """``read_builds`` of a file read outside a scan (``exhunt build FILE``): UTF-16 transcoded first."""
    outside_a_scan = SimpleNamespace(warn_original=warn, offset_map=None, encoding=None)
    return read_builds(utf8_stream(outside_a_scan, stream), fact, warn, host)


class BuildFacts:
    """The build facts of ExSetup's FileVersionInfo and of Get-ExchangeServer objects, whatever the
    export form (this artifact's CLIXML; CSV, JSON and CLIXML in ``cmdlet_exports``)."""

    def __init__(self, fact: Fact, warn: Warn, host: str | None) -> None:
        self.fact, self.warn, self.host = fact, warn, host
        self.found = 0
        self.servers: list[tuple[str, str, str, int]] = []  # (name, fqdn, CU-level build, line)

    def exsetup(self, record: PsRecord) -> None:
        """FileVersion (else ProductVersion) of ExSetup.exe: the exact build, SU included."""
        get = getter(record.props)
        names = " ".join(get(k) or "" for k in ("FileName", "InternalName", "OriginalFilename"))
        if "exsetup.exe" not in names.lower():
            return
        for key in ("FileVersion", "ProductVersion"):
            value = get(key) or ""
            if VERSION_RE.match(value):
                self.fact("build", value.strip(), record.lines.get(key, record.line), "high")
                self.found += 1
                return

    def server(self, record: PsRecord) -> None:
        """AdminDisplayVersion shows the CU, never the SU: kept as the CU-level build, medium confidence."""
        value = record.props.get("AdminDisplayVersion")
        text = value if isinstance(value, str) else ""
        match = ADMIN_RE.match(text)
        parts: tuple[str, ...] | None = match.groups()[:3] if match else None
        if parts is None and text.startswith("{"):  # the version object (ConvertTo-Json, CLIXML without ToString)
            try:
                version = orjson.loads(text)
            except orjson.JSONDecodeError:
                return
            parts = tuple(str(version.get(k, "")) for k in ("Major", "Minor", "Build"))
        if parts and all(p.isdigit() for p in parts) and parts[0] in ("14", "15"):
            get = getter(record.props)
            build = ".".join(str(int(p)) for p in parts)
            line = record.lines.get("AdminDisplayVersion", record.line)
            self.servers.append((get("Name") or "", get("Fqdn") or "", build, line))

    def finish(self) -> int:
        """Server builds: an org-wide export lists every server; when it holds several, only the one
        named like the host counts. Returns the builds found (an ambiguous export counts: warned)."""
        servers = self.servers
        if self.host is not None and len({(n.lower(), f.lower()) for n, f, _, _ in servers}) > 1:
            host = self.host.lower()
            servers = [s for s in servers if host in (s[0].lower(), s[1].lower(), s[1].lower().split(".")[0])]
            if not servers:
                self.warn(f"Get-ExchangeServer export lists {len(self.servers)} servers, none named "
                          f"{self.host!r}: no build taken from it", None, None)
                self.found += 1  # not a missing build: an ambiguous one, already warned
        for _, _, build, line in servers:
            self.fact("build", build, line, "medium")
            self.found += 1
        return self.found

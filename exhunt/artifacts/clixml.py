"""PowerShell CLIXML exports that state the Exchange build (HealthChecker and hand-made collections).

- ``ExSetup.xml``: ``Get-Command ExSetup.exe | % {$_.FileVersionInfo} | Export-Clixml``; its
  ``FileVersion``/``ProductVersion`` (``15.02.0986.005``) is the exact build, SU included: fact
  ``build``, high confidence.
- ``GetExchangeServer.xml``: ``Get-ExchangeServer | Export-Clixml``; ``AdminDisplayVersion``
  (``Version 15.2 (Build 986.5)``) shows the CU and never the SU (Microsoft Learn says so), so it is
  recorded as the CU-level build ``15.2.986``, medium confidence.

Files are claimed by content (a ``<Objs`` CLIXML document that carries one of those properties), not by
name. Parsing streams through expat with line numbers; a document type declaration is refused
(CLIXML never has one), so no entity expansion or external entity can happen. An IIS
``applicationHost.config`` is not CLIXML and is never a build source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, BinaryIO
from xml.parsers import expat

from exhunt.artifacts.base import Artifact, ParseContext

CLIXML_NS = "schemas.microsoft.com/powershell/2004/04"
MARKERS = ('N="FileVersion"', 'N="ProductVersion"', 'N="AdminDisplayVersion"',
           "System.Diagnostics.FileVersionInfo",
           "Microsoft.Exchange.Data.Directory.Management.ExchangeServer")
VERSION_RE = re.compile(r"^\s*(1[45])\.0?(\d)\.(\d{1,5})\.(\d{1,4})\s*$")
ADMIN_RE = re.compile(r"^\s*Version\s+(1[45])\.(\d+)\s*\(\s*Build\s+(\d+)\.(\d+)\s*\)\s*$", re.I)
FILE_PROPS = ("FileVersion", "ProductVersion", "FileName", "InternalName", "OriginalFilename", "Name", "Fqdn")


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "ignore")
    if len(head) > 1 and head[1:2] == b"\x00":  # UTF-16LE without BOM (Export-Clixml's default encoding)
        return head.decode("utf-16-le", "ignore")
    return head.decode("utf-8", "ignore")


class _Refused(Exception):
    """A construct CLIXML never uses (DTD, entity declaration)."""


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
        read_builds(stream, ctx.fact, ctx.warn, ctx.host)


Fact = Callable[[str, str, "int | None", str], None]
Warn = Callable[[str, "int | None", "int | None"], None]


def read_builds(stream: BinaryIO, fact: Fact, warn: Warn, host: str | None = None) -> int:
    """Stream one CLIXML document, calling ``fact("build", value, line, confidence)`` for each build.

    ``host`` picks the server out of an org-wide Get-ExchangeServer export (None: take every server).
    Returns the number of builds found.
    """
    state = _State(fact, warn, host)
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.StartElementHandler = state.start
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.text
    state.parser = parser
    try:
        parser.ParseFile(stream)
    except _Refused:
        warn("CLIXML with a document type declaration refused (not read)", parser.CurrentLineNumber, None)
    except expat.ExpatError as exc:
        warn(f"malformed CLIXML: {expat.errors.messages.get(exc.code, exc)}", exc.lineno, exc.offset)
        state.close_open_objects()  # a truncated export still gives the properties read before the cut
    state.emit_servers()
    if not state.found:
        warn("CLIXML without an Exchange build (no ExSetup FileVersion or AdminDisplayVersion)", None, None)
    return state.found


def _refuse(*_args: Any) -> None:
    raise _Refused


class _State:
    """A stack of the open elements; each ``Obj`` collects the properties that name a build."""

    def __init__(self, fact: Fact, warn: Warn, host: str | None) -> None:
        self.fact, self.warn, self.host = fact, warn, host
        self.parser: Any = None
        self.stack: list[tuple[str, str]] = []  # (tag, N attribute)
        self.objs: list[dict[str, tuple[str, int]]] = []
        self.buffer: list[str] = []
        self.found = 0
        self.servers: list[tuple[str, str, str, int | None]] = []  # (name, fqdn, cu build, line)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.stack.append((tag, attrs.get("N", "")))
        self.buffer = []
        if tag == "Obj":
            self.objs.append({})

    def text(self, data: str) -> None:
        self.buffer.append(data)

    def end(self, tag: str) -> None:
        _, name = self.stack.pop()
        value = "".join(self.buffer)
        self.buffer = []
        line = int(self.parser.CurrentLineNumber)
        if tag == "Obj":
            props = self.objs.pop()
            self._finish(name, props)
            return
        if not self.objs:
            return
        props = self.objs[-1]
        if tag == "ToString" and self.stack and self.stack[-1] == ("Obj", "AdminDisplayVersion"):
            props["_admin"] = (value, line)
        elif tag == "S" and name in FILE_PROPS:
            props[name] = (value, line)
        elif tag == "I32" and name in ("Major", "Minor", "Build", "Revision"):
            props["_" + name] = (value, line)

    def _finish(self, name: str, props: dict[str, tuple[str, int]]) -> None:
        if name == "AdminDisplayVersion":
            admin = ADMIN_RE.match(props.get("_admin", ("", 0))[0])
            keys = ("Major", "Minor", "Build")
            parts = admin.groups()[:3] if admin else tuple(props.get("_" + k, ("", 0))[0] for k in keys)
            if all(p.isdigit() for p in parts) and parts[0] in ("14", "15") and self.objs:
                line = props.get("_admin", props.get("_Build", ("", 0)))[1]
                self.objs[-1]["_build"] = (".".join(str(int(p)) for p in parts), line)
            return
        if "_build" in props:
            build, line = props["_build"]
            self.servers.append((props.get("Name", ("", 0))[0], props.get("Fqdn", ("", 0))[0], build, line))
            return
        names = " ".join(props.get(k, ("", 0))[0] for k in ("FileName", "InternalName", "OriginalFilename"))
        if "exsetup.exe" not in names.lower():
            return
        for key in ("FileVersion", "ProductVersion"):
            value, line = props.get(key, ("", 0))
            if VERSION_RE.match(value):
                self.fact("build", value.strip(), line, "high")
                self.found += 1
                return

    def close_open_objects(self) -> None:
        for tag, name in reversed(self.stack):
            if tag == "Obj" and self.objs:
                self._finish(name, self.objs.pop())
        self.stack = []

    def emit_servers(self) -> None:
        """AdminDisplayVersion of the host's server: an org-wide export lists every server, so when
        it holds several, only the one named like the host counts."""
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

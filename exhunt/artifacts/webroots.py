"""Server-side pages (.aspx/.ashx/.asmx/...): notable content becomes ``webroot`` events.

Every file is inventoried (hashes, times, magic) by the pipeline; this artifact only looks inside
pages for structure that detections need, such as an exported OAB virtual directory whose
ExternalUrl is a server-side script (the ProxyLogon China Chopper drop).
"""

from __future__ import annotations

import re
from typing import BinaryIO

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.pages import PAGES_AND_CONFIG

MAX_PAGE_BYTES = 16 << 20
READ = 64 << 10  # a BufferedReader allocates the whole size asked for: 16 MiB per 2 KB page cost 35 us
OAB_EXPORT_RE = re.compile(
    rb"ExternalUrl\s*[:=]?\s*[^\r\n]{0,200}?<script[^>]{0,200}runat\s*=\s*[\"']?server", re.I
)


class WebPage(Artifact):
    name = "webroot"

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return rel_lower.endswith(PAGES_AND_CONFIG)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        data = read_upto(utf8_stream(ctx, stream), MAX_PAGE_BYTES)  # a UTF-16 page is looked at as UTF-8
        if len(data) == MAX_PAGE_BYTES:
            ctx.warn(f"page larger than {MAX_PAGE_BYTES} bytes: only the start was inspected")
        cls.inspect(ctx, data)

    @classmethod
    def inspect(cls, ctx: ParseContext, data: bytes) -> None:
        """The page's UTF-8 bytes (the worker's fast lane hands them over without a stream)."""
        # the case-blind regex costs ~40 us a page; its literal is a necessary condition and one C scan
        match = OAB_EXPORT_RE.search(data) if b"externalurl" in data.lower() else None
        if match:
            line = data.count(b"\n", 0, match.start()) + 1
            start = data.rfind(b"\n", 0, match.start()) + 1
            end = data.find(b"\n", match.end())
            excerpt = data[start : end if end != -1 else len(data)][:400].decode("utf-8", "replace")
            ctx.event({"kind": "file", "log_type": "oab_export_script", "line": line,
                       "message": excerpt.strip()})


def read_upto(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes, read ``READ`` at a time (small pages pay for what they hold)."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = stream.read(min(READ, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

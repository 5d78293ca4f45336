"""OABGenerator logs without a ``#Fields`` header: one free-text entry per line.

The CSV flavour (with Exchange headers) is read by ``exchange_logs``; this one catches plain-text
copies under ``Logging\\OABGeneratorLog`` so the CVE-2021-26858 check never misses them.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.lines import iter_lines
from exhunt.artifacts.timeparse import parse_ts

TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


class OabGeneratorText(Artifact):
    name = "oab_generator"
    is_log = True
    path_globs = ("*/oabgeneratorlog/*",)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        def warn(message: str, line: int | None, offset: int | None) -> None:
            ctx.warn(message, line, offset)

        for number, _offset, text in iter_lines(utf8_stream(ctx, stream), warn):
            if not text.strip() or text.startswith("#"):
                continue
            match = TS_RE.search(text)
            ts = parse_ts(match.group(0).replace(" ", "T")) if match else None
            ctx.event({"kind": "log", "line": number, "ts": ts, "message": text, "log_type": "OABGenerator"})

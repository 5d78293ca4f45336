"""Header blocks shared by IIS W3C and Exchange logs: ``#Directive: value`` lines at line start.

Only lines that *start* with ``#`` are headers: ``#`` inside a record is data (real ProxyLogon
AnchorMailbox values end in ``#``). A new ``#Fields:`` line may appear mid-file after a service
restart, and the field list in force changes there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from exhunt.artifacts.base import ParseContext
from exhunt.artifacts.lines import iter_lines

HEAD_BYTES = 4096


def header_value(head: bytes, directive: str) -> str | None:
    """The value of ``#Directive:`` in the first bytes of a file, any letter case."""
    wanted = b"#" + directive.lower().encode() + b":"
    for raw in head.splitlines()[:12]:
        line = raw.lstrip(b"\xef\xbb\xbf").strip()
        if line.lower().startswith(wanted):
            return line[len(wanted):].strip().decode("utf-8", "replace")
    return None


@dataclass
class Block:
    """The header directives in force and the field list of the current block."""

    directives: dict[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)


def iter_records(
    ctx: ParseContext,
    stream: BinaryIO,
    split: Callable[[str], list[str]],
    field_sep: str,
) -> Iterator[tuple[int, str, Block, dict[str, str]]]:
    """Yield ``(line, text, block, record)`` for every data line, fields named by the block in force."""
    block = Block()

    def warn(message: str, line: int | None, offset: int | None) -> None:
        ctx.warn(message, line, offset)

    for number, offset, text in iter_lines(stream, warn):
        if not text:
            continue
        if text.startswith("#"):
            name, _, value = text[1:].partition(":")
            key = name.strip().lower()
            if key == "fields":
                names = [f.strip() for f in value.strip().split(field_sep) if f.strip()]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    ctx.warn(f"malformed #Fields header: duplicate field names {', '.join(dupes)}; "
                             "values are mapped by position", number, offset)
                block = Block(dict(block.directives), names)
            else:
                block.directives[key] = value.strip()
            continue
        if not block.fields:
            ctx.warn("data line before any #Fields header: skipped", number, offset)
            continue
        values = split(text)
        if len(values) > len(block.fields):
            ctx.warn(f"{len(values)} values for {len(block.fields)} fields: extra values kept as "
                     "_extra", number, offset)
        record: dict[str, str] = {}
        for name, value in zip(block.fields, values, strict=False):
            record.setdefault(name, value)
        if len(values) > len(block.fields):
            record["_extra"] = field_sep.join(values[len(block.fields):])
        yield number, text, block, record

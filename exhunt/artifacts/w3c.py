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
    """The value of ``#Directive:`` in the first bytes of a file, any letter case: on any line of
    them, not only the first few (a log copied from its middle, or cut at its start, has data lines
    before a header block: they are skipped with a warning, the rest is read)."""
    wanted = b"#" + directive.lower().encode() + b":"
    if wanted not in head.lower():
        return None
    for raw in head.splitlines():
        line = raw.lstrip(b"\xef\xbb\xbf").strip()
        if line.lower().startswith(wanted):
            return line[len(wanted):].strip().decode("utf-8", "replace")
    return None


@dataclass
class Block:
    """The header directives in force and the field list of the current block."""

    directives: dict[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # directive -> its line (0: not known here)


def apply_header(ctx: ParseContext, block: Block, text: str, number: int, offset: int, field_sep: str) -> Block:
    """A ``#Directive: value`` line: a new ``#Fields`` starts a new block, others update this one."""
    name, _, value = text[1:].partition(":")
    key = name.strip().lower()
    if key != "fields":
        block.directives[key] = value.strip()
        block.lines[key] = number  # a fact taken from it cites its line, not the block's first row
        return block
    names = [f.strip() for f in value.strip().split(field_sep) if f.strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        ctx.warn(f"malformed #Fields header: duplicate field names {', '.join(dupes)}; "
                 "values are mapped by position", number, offset)
    return Block(dict(block.directives), names, dict(block.lines))


def iter_records(
    ctx: ParseContext,
    stream: BinaryIO,
    split: Callable[[str], list[str]],
    field_sep: str,
    block: Block | None = None,
    line0: int = 0,
    offset0: int = 0,
) -> Iterator[tuple[int, str, Block, dict[str, str]]]:
    """Yield ``(line, text, block, record)`` for every data line, fields named by the block in force.

    This is the readable reference parser; ``w3c_fast`` must produce the same rows.
    """
    block = block or Block()

    def warn(message: str, line: int | None, offset: int | None) -> None:
        ctx.warn(message, line, offset)

    for number, offset, text in iter_lines(stream, warn, line0=line0, offset0=offset0):
        if not text:
            continue
        if text.startswith("#"):
            block = apply_header(ctx, block, text, number, offset, field_sep)
            continue
        if not block.fields:
            ctx.warn("data line before any #Fields header: skipped", number, offset)
            continue
        values = split(text)
        if len(values) > len(block.fields):
            ctx.warn(f"{len(values)} values for {len(block.fields)} fields: extra values kept as "
                     "_extra", number, offset)
        elif len(values) < len(block.fields) and len(set(block.fields)) == len(block.fields):
            # a line cut short (the last one of a log being written); under a header that repeats
            # names the values are mapped by position, as its own warning said already
            ctx.warn(f"{len(values)} values for {len(block.fields)} fields: the missing ones read as empty",
                     number, offset)
        record: dict[str, str] = {}
        for name, value in zip(block.fields, values, strict=False):
            record.setdefault(name, value)
        if len(values) > len(block.fields):
            record["_extra"] = field_sep.join(values[len(block.fields):])
        yield number, text, block, record

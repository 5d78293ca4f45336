"""Bounded line reading: CRLF/LF, BOM, non-UTF-8 and overlong lines never cost unbounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

MAX_LINE = 1 << 20  # 1 MiB: longer lines are cut, reported and skipped to their end
CHUNK = 1 << 16


def iter_lines(
    stream: BinaryIO,
    warn: Callable[[str, int | None, int | None], None],
    max_line: int = MAX_LINE,
    line0: int = 0,
    offset0: int = 0,
) -> Iterator[tuple[int, int, str]]:
    """Yield ``(line_number, byte_offset, text)`` without the line ending.

    Invalid UTF-8 is replaced (U+FFFD) and reported once per file with its first position; a NUL
    byte marks the line as binary and it is reported; an overlong line is truncated to
    ``max_line`` bytes for parsing and the rest is read in chunks and dropped. ``line0``/``offset0``
    continue the numbering when the stream is a later part of a file.
    """
    offset = offset0
    number = line0
    bad_utf8_reported = False
    while True:
        raw = stream.readline(max_line)
        if not raw:
            return
        number += 1
        start = offset
        offset += len(raw)
        if not raw.endswith(b"\n") and len(raw) >= max_line:
            skipped = 0
            while True:
                rest = stream.readline(CHUNK)
                if not rest:
                    break
                skipped += len(rest)
                offset += len(rest)
                if rest.endswith(b"\n"):
                    break
            warn(f"line longer than {max_line} bytes ({max_line + skipped} bytes): truncated", number, start)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.rstrip(b"\r\n")
        if b"\x00" in raw:
            warn("NUL byte in line: binary data, line skipped", number, start)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            if not bad_utf8_reported:
                bad_utf8_reported = True
                warn(f"invalid UTF-8 at byte {exc.start} of the line: replaced (reported once per file)",
                     number, start + exc.start)
        yield number, start, text

"""Text evidence as Windows writes it: UTF-8 (with or without BOM) and UTF-16LE/BE.

Windows PowerShell 5.1 writes UTF-16LE with a BOM (``Out-File``, ``Set-Content -Encoding Unicode``,
``Export-Clixml``, ``>``), and copies made by other tools may lose the BOM. Parsers here read UTF-8
only, so a UTF-16 file is transcoded first, streaming, and the existing parser reads the UTF-8:

- ``sniff(head)`` names the encoding from a BOM or, without one, from the byte pattern (NUL bytes in
  alternate positions, as ASCII text in UTF-16 has);
- ``text_head(head)`` is the UTF-8 view of a head, so the artifact sniff recognises a UTF-16 log;
- ``utf8_stream(ctx, stream)`` is the one call each text artifact makes before its parser: UTF-8
  passes through untouched, UTF-16 becomes a bounded-memory UTF-8 stream.

Line numbers are the same in both encodings (a line end is a line end). Byte offsets are not, so
the transcoder keeps an offset map (one entry per run of non-ASCII characters, ASCII stretches are
linear) and ``ParseContext.warn`` turns every offset the parser reports back into a byte offset of
the original file. Code units that are no UTF-16 (a lone surrogate, an odd last byte) are replaced
by U+FFFD and reported once with the original byte offset of the first and the count.
"""

from __future__ import annotations

import bisect
import codecs
import io
import re
from array import array
from typing import Any, BinaryIO

UTF8 = "utf-8"
UTF8_BOM = b"\xef\xbb\xbf"
BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
SNIFF_BYTES = 512
READ = 1 << 20
MAX_MAP_ENTRIES = 1 << 20  # past this many non-ASCII runs (hostile text) offsets are no longer given
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
RECORDING = "exhunt-record"  # error handler: U+FFFD, and the position goes to ``recorded``


def sniff(head: bytes) -> tuple[str, int]:
    """``(encoding, BOM length)`` of a text file from its first bytes; UTF-8 when nothing says else.

    Without a BOM, UTF-16 is recognised when at least a third of the 2-byte units have a NUL in one
    half and almost none in the other (ASCII text: ``a\\0b\\0`` little-endian, ``\\0a\\0b`` big)."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return name, len(bom)
    if head.startswith(UTF8_BOM):
        return UTF8, 0  # the UTF-8 readers strip their own BOM
    sample = head[:SNIFF_BYTES]
    units = len(sample) // 2
    if units < 2:
        return UTF8, 0
    even = sample[0:units * 2:2].count(0)
    odd = sample[1:units * 2:2].count(0)
    if odd * 3 >= units and even * 20 <= units:
        return "utf-16-le", 0
    if even * 3 >= units and odd * 20 <= units:
        return "utf-16-be", 0
    return UTF8, 0


def is_utf16(head: bytes) -> bool:
    return sniff(head)[0] != UTF8


def text_head(head: bytes) -> bytes:
    """The head as UTF-8 (unchanged when it is not UTF-16); a cut last character is dropped."""
    encoding, bom = sniff(head)
    if encoding == UTF8:
        return head
    return codecs.getincrementaldecoder(encoding)("replace").decode(head[bom:]).encode(UTF8)


def _record(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    recorded.append(exc.start)
    return "\ufffd", exc.end


recorded: list[int] = []  # undecodable positions in the chunk being decoded (one parse at a time per process)
codecs.register_error(RECORDING, _record)


class OffsetMap:
    """UTF-8 offset in the transcoding -> byte offset in the original file.

    ``starts``/``origins`` hold the point after each non-ASCII run; between points each UTF-8 byte is
    one ASCII character, i.e. one 2-byte UTF-16 unit."""

    def __init__(self, bom: int) -> None:
        self.starts = array("q", [0])
        self.origins = array("q", [bom])
        self.complete = True

    def add(self, utf8_at: int, original_at: int) -> None:
        if len(self.starts) >= MAX_MAP_ENTRIES:
            self.complete = False
            return
        self.starts.append(utf8_at)
        self.origins.append(original_at)

    def original(self, utf8_offset: int) -> int | None:
        i = bisect.bisect_right(self.starts, utf8_offset) - 1
        if not self.complete and i == len(self.starts) - 1:
            return None  # beyond the last mapped point of a file with too many non-ASCII runs
        return self.origins[i] + 2 * (utf8_offset - self.starts[i])


class Utf16Reader(io.RawIOBase):
    """A raw stream of the UTF-8 transcoding of a UTF-16 stream, read in bounded chunks."""

    def __init__(self, inner: BinaryIO, encoding: str, bom: int, warn: Any) -> None:
        self.inner = inner
        self.decoder = codecs.getincrementaldecoder(encoding)(RECORDING)
        self.label = encoding.upper().replace("UTF-16-", "UTF-16")
        self.map = OffsetMap(bom)
        self.warn = warn
        self.pending = b""
        self.utf8_out = 0  # UTF-8 bytes produced so far
        self.original_in = bom  # original bytes decoded so far (the BOM was read by the caller)
        self.bad = 0
        self.first_bad: int | None = None
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending and not self.done:
            self._fill()
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _fill(self) -> None:
        data = self.inner.read(READ)
        final = not data
        recorded.clear()
        held = len(self.decoder.getstate()[0])  # bytes of a cut unit carried from the last read
        text = self.decoder.decode(data, final=final)
        if recorded:
            base = self.original_in - held
            for position in recorded:
                self.bad += 1
                if self.first_bad is None:
                    self.first_bad = base + position
            recorded.clear()
        self.original_in += len(data)
        if final:
            self.done = True
            if self.bad:
                self.warn(f"{self.bad} byte sequence(s) that are no {self.label} (first at byte "
                          f"{self.first_bad}): replaced", None, self.first_bad)
        encoded = text.encode(UTF8)
        if not text.isascii():
            self._map_runs(text)
        self.utf8_out += len(encoded)
        self.pending = encoded

    def _map_runs(self, text: str) -> None:
        """One offset-map point after each run of non-ASCII characters in this chunk of text."""
        utf8_at, original_at = self.utf8_out, self.map.original(self.utf8_out)
        if original_at is None:
            return
        last = 0
        for match in _NON_ASCII.finditer(text):
            ascii_len = match.start() - last
            run = match.group(0)
            utf8_at += ascii_len + len(run.encode(UTF8))
            original_at += 2 * ascii_len + len(run.encode("utf-16-le", "surrogatepass"))
            last = match.end()
            self.map.add(utf8_at, original_at)


def utf8_stream(ctx: Any, stream: BinaryIO) -> BinaryIO:
    """The stream a UTF-8 parser can read: ``stream`` itself, or its transcoding when it is UTF-16.

    ``ctx`` is the parse context: its warnings get original-file offsets (``ctx.offset_map``). The
    returned reader is never closed by the caller (that would close the evidence stream)."""
    head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(stream, "peek") else b""
    encoding, bom = sniff(head)
    if encoding != UTF8:
        if bom:
            stream.read(bom)
        raw = Utf16Reader(stream, encoding, bom, ctx.warn_original)
        ctx.offset_map = raw.map.original
        ctx.encoding = encoding
        stream = io.BufferedReader(raw, buffer_size=READ)  # type: ignore[assignment]
        head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    if head.count(b"\r") >= 2 and b"\n" not in head:  # line ends of CR alone
        ctx.warn("lines end with a carriage return alone (no line feed): read with those as line ends", offset=0)
        return io.BufferedReader(CrLineEnds(stream), buffer_size=READ)  # type: ignore[return-value]
    return stream


CR_TO_LF = bytes.maketrans(b"\r", b"\n")


class CrLineEnds(io.RawIOBase):
    """A text whose lines end with CR alone (old Mac tools, some converters) read with LF there:
    byte for byte, so every line number and byte offset is the original file's. Without it such a
    log was one line, claimed by its header and read as holding no row at all."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data.translate(CR_TO_LF)
        return len(data)

"""PowerShell object exports as records: ``Export-Csv``, ``ConvertTo-Json`` and ``Export-Clixml``.

Each reader yields ``PsRecord(line, types, props)``: the 1-based line where the object starts, its
type names (``#TYPE`` line, CLIXML ``<TN>``; empty for JSON) and its properties, each a string, a
list of strings (multi-valued) or None. Values are kept as written; only dates are normalised to
ISO-8601 by ``ps_time``. Bad input is a warning with its position and the rest is read: a row cut
short, a JSON array cut off (the objects before the cut count), a CLIXML that stops mid-object.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.parsers import expat

from exhunt.artifacts.encoding import RECORDING, recorded
from exhunt.artifacts.timeparse import ms_date

Warn = Callable[[str, "int | None", "int | None"], None]
Value = str | list[str] | None
JSON_READ = 1 << 20
MAX_JSON_OBJECT = 64 << 20  # one JSON object bigger than this is taken as malformed (bounded memory)
CLIXML_READ = 1 << 20
LONE_CR = re.compile(rb"\r(?!\n)")
MAX_REF_VALUES = 200_000  # nested CLIXML values kept for <Ref> (PowerShell refers back to repeated objects)
_SCALARS = frozenset(("S", "B", "By", "SBK", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "SB", "Db", "D", "Sg",
                      "C", "G", "DT", "TS", "URI", "Version", "XD", "BA", "SS", "ToString"))
_LISTS = frozenset(("LST", "IE", "STK", "QUE", "DCT"))
_KNOWN = _SCALARS | _LISTS | {"Objs", "Obj", "TN", "T", "TNRef", "Props", "MS", "Ref", "Nil", "En", "Key",
                              "Value", "PR"}


@dataclass
class PsRecord:
    line: int
    types: list[str]
    props: dict[str, Value] = field(default_factory=dict)
    number: int = 0  # 1-based position in the export
    lines: dict[str, int] = field(default_factory=dict)  # CLIXML: the line of each property's value


def flat(value: Value) -> str | None:
    """A multi-valued property as one string (``;``-joined)."""
    return ";".join(value) if isinstance(value, list) else value


def getter(props: dict[str, Value]) -> Callable[[str], str | None]:
    """Property lookup by case-insensitive name; empty values read as None."""
    lower = {k.lower(): v for k, v in props.items()}

    def get(name: str) -> str | None:
        value = flat(lower.get(name.lower()))
        return value if value not in (None, "") else None

    return get


# ---- dates -----------------------------------------------------------------------------------------
ZONELESS_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")  # no Z, no offset
US_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?: ?([AP]M))?$", re.I)


def ps_time(value: Value) -> str | None:
    """An ISO-8601 UTC string for the date forms PowerShell writes, or None.

    ``/Date(1614823200000)/`` (Windows PowerShell 5.1 ``ConvertTo-Json``), ISO with or without an
    offset (PowerShell 7, CLIXML ``DT``) and the en-US ``3/4/2021 2:00:00 AM`` of ``Export-Csv``
    (no zone: read as UTC; the caller warns)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.startswith("/Date("):
        moment = ms_date(text)
        return moment.isoformat() if moment else None
    us = US_DATE_RE.match(text)
    if us:
        month, day, year, hour, minute, second, ampm = us.groups()
        h = int(hour) % 12 + (12 if ampm and ampm.upper() == "PM" else 0) if ampm else int(hour)
        try:
            return datetime(int(year), int(month), int(day), h, int(minute), int(second), tzinfo=UTC).isoformat()
        except ValueError:
            return None
    if len(text) >= 10 and text[4:5] == "-":
        if len(text) > 26 and "." in text:  # .NET writes 7 fractional digits; Python reads 6
            head, _, rest = text.partition(".")
            digits = re.match(r"\d+", rest)
            if digits:
                text = f"{head}.{digits[0][:6]}{rest[len(digits[0]):]}"
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        return parsed.isoformat()
    return None


# ---- CSV -------------------------------------------------------------------------------------------
def csv_header(text: str) -> tuple[list[str], list[str], str]:
    """``(types, columns, delimiter)`` from the first lines of an Export-Csv file."""
    lines = [ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()][:2]
    types: list[str] = []
    if lines and lines[0].startswith("#TYPE "):
        types = [lines.pop(0)[6:].strip()]
    if not lines:
        return types, [], ","
    header = lines[0]
    delimiter = ";" if header.count('";"') > header.count('","') else ","
    try:
        columns = next(csv.reader([header], delimiter=delimiter))
    except csv.Error:
        columns = []
    return types, [c.strip() for c in columns], delimiter


def read_csv(stream: BinaryIO, warn: Warn) -> Iterator[PsRecord]:
    """Export-Csv rows. Lines are counted at ``\\n`` as everywhere in exhunt (a lone CR inside a
    record is data or an unreadable record, never a line of its own)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="\n")  # type: ignore[type-var]
    try:
        first = text.readline()
        types: list[str] = []
        consumed = 1
        if first.startswith("#TYPE "):
            types = [first[6:].strip()]
            first = text.readline()
            consumed = 2
        _, columns, delimiter = csv_header(first)
        if not columns:
            warn("CSV export without a header line", consumed, None)
            return

        def lines() -> Iterator[str]:
            nonlocal consumed
            for line in text:
                consumed += 1
                yield line

        reader = csv.reader(lines(), delimiter=delimiter, strict=False)
        number, bad_text = 0, False
        while True:
            start = consumed + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                warn(f"unreadable CSV record: {exc}", start, None)
                continue
            if not values or values == [""]:
                continue
            number += 1
            if len(values) < len(columns):
                warn(f"CSV record with {len(values)} of {len(columns)} values (cut short?): read as far as "
                     "it goes", start, None)
            if not bad_text and any("\ufffd" in v for v in values):
                bad_text = True
                warn("bytes that are no UTF-8 in the CSV record: replaced (reported once per file)", start, None)
            # a record cut short keeps every column (missing ones None): the file's columns name its cmdlet
            props: dict[str, Value] = {c: values[i] if i < len(values) else None for i, c in enumerate(columns) if c}
            yield PsRecord(start, types, props, number)
    finally:
        text.detach()  # the evidence stream stays open for the hashing drain


# ---- JSON ------------------------------------------------------------------------------------------
def _json_value(value: Any) -> Value:
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        out = [_json_value(v) for v in value]
        return [v if isinstance(v, str) else json.dumps(v) for v in out if v is not None]
    if isinstance(value, dict):
        if isinstance(value.get("value"), str) and "DateTime" in value:  # PowerShell 5.1's DateTime object:
            return value["value"]  # {"value": "/Date(ms)/", "DisplayHint": 2, "DateTime": "<culture text>"}
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def read_json(stream: BinaryIO, warn: Warn) -> Iterator[PsRecord]:
    """A ConvertTo-Json document: an array of objects, one object, or one object per line. Read in
    chunks, so a large Get-MessageTrackingLog export costs the memory of one object at a time."""
    reader = _JsonText(stream, warn)
    decoder = json.JSONDecoder()
    reader.skip("\ufeff \t\r\n")
    in_array = reader.startswith("[")
    if in_array:
        reader.pos += 1
    number = 0
    while True:
        reader.skip(" \t\r\n,")
        if reader.at_end():
            if in_array:
                warn(f"JSON array cut off (no closing ']'): {number} objects read", reader.line(), reader.byte())
            return
        if in_array and reader.startswith("]"):
            return
        try:
            obj, end = decoder.raw_decode(reader.buf, reader.pos)
            if end == len(reader.buf) and not reader.eof:
                raise json.JSONDecodeError("value may go on", reader.buf, end)  # a number cut by the read
        except json.JSONDecodeError as exc:
            if not reader.eof and len(reader.buf) - reader.pos < MAX_JSON_OBJECT:
                reader.fill()
                continue
            at = min(exc.pos, len(reader.buf))
            warn(f"JSON cut off or malformed ({exc.msg}): {number} objects read before it", reader.line(at),
                 reader.byte(at))
            return
        line = reader.line()
        reader.pos = end
        reader.compact()
        if not isinstance(obj, dict):
            warn("JSON value that is not an object: skipped", line, None)
            continue
        number += 1
        yield PsRecord(line, [], {k: _json_value(v) for k, v in obj.items()}, number)


class _JsonText:
    """The decoded text not yet consumed, with the line and byte offset where it starts."""

    def __init__(self, stream: BinaryIO, warn: Warn) -> None:
        self.stream, self.warn = stream, warn
        self.decoder = codecs.getincrementaldecoder("utf-8")(RECORDING)
        self.buf, self.pos, self.eof = "", 0, False
        self.base_line, self.base_byte, self.bytes_in = 1, 0, 0
        self.bad_reported = False

    def fill(self) -> None:
        data = self.stream.read(JSON_READ)
        self.eof = not data
        held = len(self.decoder.getstate()[0])
        recorded.clear()
        self.buf += self.decoder.decode(data, final=self.eof)
        if recorded and not self.bad_reported:
            self.bad_reported = True
            self.warn("bytes that are no UTF-8 in the JSON export: replaced (reported once per file)", None,
                      self.bytes_in - held + recorded[0])
        recorded.clear()
        self.bytes_in += len(data)

    def skip(self, chars: str) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in chars:
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return
            self.fill()

    def at_end(self) -> bool:
        return self.pos >= len(self.buf) and self.eof

    def startswith(self, text: str) -> bool:
        return self.buf.startswith(text, self.pos)

    def line(self, at: int | None = None) -> int:
        return self.base_line + self.buf.count("\n", 0, self.pos if at is None else at)

    def byte(self, at: int | None = None) -> int:
        return self.base_byte + len(self.buf[: self.pos if at is None else at].encode("utf-8", "surrogatepass"))

    def compact(self) -> None:
        """Drop consumed text once it is large (the line and byte bases move on)."""
        if self.pos >= JSON_READ:
            done = self.buf[: self.pos]
            self.base_line += done.count("\n")
            self.base_byte += len(done.encode("utf-8", "surrogatepass"))
            self.buf, self.pos = self.buf[self.pos:], 0


# ---- CLIXML ----------------------------------------------------------------------------------------
class _Obj:
    __slots__ = ("items", "line", "lines", "name", "props", "ref", "text", "text_line", "types")

    def __init__(self, name: str, ref: str, line: int) -> None:
        self.name, self.ref, self.line = name, ref, line
        self.types: list[str] = []
        self.props: dict[str, Value] = {}
        self.lines: dict[str, int] = {}
        self.items: list[str] | None = None
        self.text: str | None = None
        self.text_line = line

    def value(self) -> Value:
        if self.items is not None:
            return self.items
        if self.text is not None:
            return self.text
        return json.dumps(self.props, ensure_ascii=False) if self.props else None


class _ClixmlState:
    """Open elements; every top-level ``Obj`` becomes a record, nested ones the value of a property."""

    def __init__(self, warn: Warn) -> None:
        self.warn = warn
        self.parser: Any = None
        self.tags: list[tuple[str, str]] = []  # (tag, N)
        self.objs: list[_Obj] = []
        self.type_refs: dict[str, list[str]] = {}
        self.values: dict[str, Value] = {}
        self.buffer: list[str] = []
        self.done: list[PsRecord] = []
        self.number = 0
        self.unknown: set[str] = set()
        self._tn_ref = ""
        self.forgot = self.warned_ref = False
        self._ref_id = ""

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.tags.append((tag, attrs.get("N", "")))
        self.buffer = []
        line = int(self.parser.CurrentLineNumber)
        if tag == "Obj":
            self.objs.append(_Obj(attrs.get("N", ""), attrs.get("RefId", ""), line))
        elif tag == "TN" and self.objs:
            self.objs[-1].types = []
            self._tn_ref = attrs.get("RefId", "")
        elif tag == "TNRef" and self.objs:
            self.objs[-1].types = list(self.type_refs.get(attrs.get("RefId", ""), []))
        elif tag in _LISTS and self.objs:
            self.objs[-1].items = []
        elif tag not in _KNOWN and tag not in self.unknown:
            self.unknown.add(tag)
            self.warn(f"CLIXML element <{tag}> not understood: its value is kept as text", line, None)

    def text(self, data: str) -> None:
        self.buffer.append(data)

    def end(self, tag: str) -> None:
        _, name = self.tags.pop()
        value = "".join(self.buffer)
        self.buffer = []
        if not self.objs:
            return
        obj = self.objs[-1]
        line = int(self.parser.CurrentLineNumber)
        if tag == "T":
            obj.types.append(value)
        elif tag == "TN":
            self.type_refs[self._tn_ref] = list(obj.types)
        elif tag == "ToString":
            obj.text, obj.text_line = value, line
        elif tag == "Obj":
            self.objs.pop()
            self._place(obj.name, obj.value(), obj, obj.text_line)
        elif tag == "Ref":
            if self._ref_id not in self.values and self.forgot and not self.warned_ref:
                self.warned_ref = True
                self.warn("CLIXML reference to an object too far back to be held: read as empty (reported once)",
                          line, None)
            self._place(name, self.values.get(self._ref_id, None), None, line)
        elif tag == "Nil":
            self._place(name, None, None, line)
        elif tag in _SCALARS or tag not in _KNOWN:
            self._place(name, value, None, line)

    def close_open(self) -> None:
        """At a cut: the objects still open, innermost first, end there with what was read."""
        while self.objs and self.tags:
            tag, _ = self.tags.pop()
            if tag == "Obj":
                obj = self.objs.pop()
                self._place(obj.name, obj.value(), obj, obj.text_line)

    def _place(self, name: str, value: Value, finished: _Obj | None, line: int) -> None:
        if finished is not None and not self.objs:  # a top-level object: one record
            self.number += 1
            self.done.append(PsRecord(finished.line, finished.types, finished.props, self.number, finished.lines))
            return
        if finished is not None and finished.ref:
            if len(self.values) >= MAX_REF_VALUES:  # bounded memory over a huge export: forget older ones
                self.values.clear()
                self.forgot = True
            self.values[finished.ref] = value
        if not self.objs:
            return
        parent = self.objs[-1]
        container = self.tags[-1][0] if self.tags else ""
        if parent.items is not None and container in _LISTS:
            if isinstance(value, list):
                parent.items.extend(value)
            elif value is not None:
                parent.items.append(value)
        elif name:
            parent.props[name] = value
            parent.lines[name] = line

    def start_ref(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "Ref":
            self._ref_id = attrs.get("RefId", "")
        self.start(tag, attrs)


def read_clixml(stream: BinaryIO, warn: Warn, partial: bool = False) -> Iterator[PsRecord]:
    """Stream an Export-Clixml document through expat (a document type declaration is refused, so
    no entity can expand); records are handed out after each read. The one CLIXML reader: cmdlet
    exports and the build sources (``clixml.py``) both read through it.

    ``partial``: at a cut, the objects still open are records too, with the properties read before
    it (a build source states its version early; a cmdlet row cut in half is left out)."""
    state = _ClixmlState(warn)
    parser = expat.ParserCreate(encoding="utf-8")  # the caller hands UTF-8 (transcoded if need be)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.StartElementHandler = state.start_ref
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.text
    state.parser = parser
    carry = b""
    while True:
        read = stream.read(CLIXML_READ)
        data, carry = carry + read, b""
        if read and data.endswith(b"\r"):  # its LF may start the next read
            data, carry = data[:-1], b"\r"
        # XML counts a lone CR as a line end, exhunt counts LFs: a space keeps lines and offsets exact
        data = LONE_CR.sub(b" ", data)
        try:
            parser.Parse(data, not read)
        except _Refused:
            warn("CLIXML with a document type declaration refused (not read)", parser.CurrentLineNumber, None)
            return
        except expat.ExpatError as exc:
            if partial:
                state.close_open()
            yield from state.done
            warn(f"CLIXML cut off or malformed ({expat.errors.messages.get(exc.code, exc)}): "
                 f"{state.number} objects read", exc.lineno, parser.CurrentByteIndex)
            return
        yield from state.done
        state.done = []
        if not read:
            return


class _Refused(Exception):
    """A construct CLIXML never uses (DTD, entity declaration)."""


def _refuse(*_args: Any) -> None:
    raise _Refused

"""Windows events exported as JSON lines: Winlogbeat / Elastic ECS documents, the generic
``{"Event": {"System": ..., "EventData": ...}}`` shape (evtx_dump, SIEM exports) and the flat,
Sentinel and Velociraptor shapes of ``eventshapes``; each line is recognised by itself.

Recognised by content, not name: one of the first lines of the file is a JSON object of one of
those shapes (an Elasticsearch hit's ``_source`` is unwrapped, bulk-format action lines skipped;
dotted keys such as ``"winlog.channel"`` or ``"winlog.event_data.Image"`` are read like nested
ones; an epoch-number ``@timestamp`` is read as milliseconds, or seconds when small).
Times are always UTC: offsets are applied. Sysmon's ``UtcTime`` is preferred over the export's
``@timestamp`` and both are kept in ``fields``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

from exhunt.artifacts import eventshapes
from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.files import HEAD_BYTES
from exhunt.artifacts.lines import iter_lines
from exhunt.artifacts.winevent import event_record, event_row, parse_time, walk_leaves

SNIFF_LINES = 20  # complete lines of the head looked at for one Windows event
BULK_ACTIONS = frozenset({"index", "create", "update", "delete"})  # Elasticsearch bulk-format lines
LEVELS = {"critical": 1, "error": 2, "warning": 3, "information": 4, "verbose": 5}
# A first line longer than the sniffed head cannot be parsed: recognise its opening instead.
ECS_HINT_RE = re.compile(rb'"winlog"\s*:\s*\{|"winlog\.(?:channel|event_id|event_data|provider_name)"\s*:')
EVENT_HINT_RE = re.compile(rb'^\{\s*"Event"\s*:\s*\{.*"System"\s*:\s*\{', re.S)
PARAM_RE = re.compile(r"^param(\d+)$")
# ECS fields that stand in for EventData fields when an ingest pipeline moved them.
ECS_FALLBACK = (
    ("Image", ("process", "executable")),
    ("CommandLine", ("process", "command_line")),
    ("ParentImage", ("process", "parent", "executable")),
    ("ParentCommandLine", ("process", "parent", "command_line")),
    ("TargetFilename", ("file", "path")),
    ("User", ("user", "name")),
    ("SourceIp", ("source", "ip")),
    ("DestinationIp", ("destination", "ip")),
    ("DestinationPort", ("destination", "port")),
    ("SourcePort", ("source", "port")),
)


def _get(doc: Any, *path: str) -> Any:
    """Nested lookup that also accepts flattened dotted keys (``{"winlog.channel": ...}``)."""
    node = doc
    for index, key in enumerate(path):
        if not isinstance(node, dict):
            return None
        if key in node:
            node = node[key]
            continue
        dotted = ".".join(path[index:])
        return node.get(dotted)
    return node


def _section(node: Any, key: str) -> Any:
    """A nested object, also when an export flattened it into dotted keys (``"event_data.Image"``)."""
    if not isinstance(node, dict):
        return None
    value = node.get(key)
    if isinstance(value, dict):
        return value
    prefix = key + "."
    flat = {k[len(prefix):]: v for k, v in node.items() if k.startswith(prefix)}
    return flat or value


def _epoch_text(value: Any) -> str | None:
    """An epoch number as ISO-8601 UTC (Elasticsearch's ``epoch_millis``, or seconds when small)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if abs(value) >= 1e11 else value
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _level(doc: dict[str, Any], winlog: dict[str, Any]) -> int | None:
    """The event level as the record holds it (2 = Error): ECS writes its name (``log.level``)."""
    for value in (_get(winlog, "level"), _get(doc, "log", "level"), doc.get("level")):
        number = _to_int(value)
        if number is not None:
            return number
        if isinstance(value, str) and value.strip().lower() in LEVELS:
            return LEVELS[value.strip().lower()]
    return None


def document_of(obj: Any) -> dict[str, Any] | None:
    """The event document inside a line: the object itself or an Elasticsearch hit's ``_source``."""
    if not isinstance(obj, dict):
        return None
    source = obj.get("_source")
    return source if isinstance(source, dict) else obj


def shape_of(doc: dict[str, Any]) -> str | None:
    """'event' for the generic Event/System shape, 'ecs' for Winlogbeat/ECS, 'flat', 'sentinel'
    or 'velociraptor' (``eventshapes``), None otherwise."""
    event = doc.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return "event"
    winlog = _get(doc, "winlog")
    if isinstance(winlog, dict) or any(k.startswith("winlog.") for k in doc):
        return "ecs"
    return eventshapes.shape_of(doc)


def ecs_record(doc: dict[str, Any]) -> dict[str, Any]:
    """A row from a Winlogbeat/ECS document."""
    winlog = _section(doc, "winlog")
    if not isinstance(winlog, dict):
        winlog = {}
    data: dict[str, Any] = {}
    event_data = _section(winlog, "event_data")
    if isinstance(event_data, dict):
        data.update(event_data)
    for key, value in walk_leaves(_section(winlog, "user_data")):
        data.setdefault(key, value)
    params = sorted(((int(m.group(1)), v) for k, v in data.items() if (m := PARAM_RE.match(k))))
    if params and "Data" not in data:  # Winlogbeat names unnamed <Data> param1, param2, ...
        data["Data"] = [v for _, v in params]
    for name, path in ECS_FALLBACK:
        if data.get(name) in (None, ""):
            value = _get(doc, *path)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # ECS ports are numbers; Sysmon writes them as text
            if isinstance(value, str) and value:
                data[name] = value
    timestamp = doc.get("@timestamp")
    if isinstance(timestamp, str | int | float) and not isinstance(timestamp, bool):
        data["@timestamp"] = timestamp  # kept as exported, number or text
        timestamp = _epoch_text(timestamp) or timestamp
    event_id = _get(winlog, "event_id")
    if event_id in (None, ""):
        event_id = _get(doc, "event", "code")
    system = {
        "EventID": _to_int(event_id),
        "Channel": _str(_get(winlog, "channel")),
        "Provider_Name": _str(_get(winlog, "provider_name")) or _str(_get(doc, "event", "provider")),
        "Computer": _str(_get(winlog, "computer_name")) or _str(_get(doc, "host", "name")),
        "EventRecordID": _to_int(_get(winlog, "record_id")),
        "SystemTime": _str(_get(winlog, "time_created")) or _str(timestamp),
        "Level": _level(doc, winlog),
    }
    row = event_row(system, data)
    message = doc.get("message")
    if row.get("message") is None and isinstance(message, str) and message:
        row["message"] = message
    return row


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _to_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class NdjsonEvents(Artifact):
    """JSON-lines exports of Windows events (Winlogbeat/ECS or generic Event/System)."""

    name = "ndjson"
    head_start = rb"[\xef\xbb\xbf \t\r\n]*\{"
    is_log = True
    is_event_log = True

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        """JSON lines with a Windows event among the first lines of the head (an export may open
        with an agent's own status line or Elasticsearch bulk actions; a bad byte is not a veto)."""
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text.startswith(b"{"):
            return False
        lines = text.split(b"\n")
        partial = lines.pop() if len(head) >= HEAD_BYTES else b""  # the head may end mid-line
        for line in lines[:SNIFF_LINES]:
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                return False
            if not isinstance(obj, dict):
                return False
            doc = document_of(obj)
            if doc is not None and shape_of(doc) is not None:
                return True
        if len(lines) >= SNIFF_LINES:
            return False
        return ECS_HINT_RE.search(partial) is not None or EVENT_HINT_RE.match(partial.lstrip()) is not None

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        def warn(message: str, line: int | None, offset: int | None) -> None:
            ctx.warn(message, line, offset)

        times = TimeProblems(ctx)
        for number, offset, text in iter_lines(utf8_stream(ctx, stream), warn):
            if not text.strip():
                continue
            try:
                doc = document_of(orjson.loads(text))
            except orjson.JSONDecodeError as exc:
                ctx.warn(f"not JSON: {exc}", number, offset)
                continue
            shape = shape_of(doc) if doc is not None else None
            if doc is None or shape is None:
                if _bulk_action(doc):
                    continue  # the line that introduces the next document, not evidence itself
                keys = ", ".join(list(doc)[:6]) if isinstance(doc, dict) else type(doc).__name__
                ctx.warn(f"JSON line is not a Windows event (keys {keys}: no Event/System, winlog, or event "
                         "id with a channel or provider)", number, offset)
                continue
            problem = None
            try:
                if shape == "event":
                    row = event_record(doc["Event"])
                elif shape == "ecs":
                    row = ecs_record(doc)
                else:
                    row, problem = eventshapes.record(doc, shape)
            except (TypeError, ValueError, AttributeError) as exc:
                ctx.warn(f"unreadable event structure ({exc})", number, offset)
                continue
            row["source"] = "ndjson"
            row["line"] = number
            if row["ts"] is None:
                times.missing(problem, number, offset)
            ctx.event(row)
        times.finish()


class TimeProblems:
    """Events without a usable time: the first is a warning with its line, the rest one summary
    (an NXLog export of 10,000 events in local time should not be 10,000 warnings)."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.count = 0
        self.first_line: int | None = None

    def missing(self, problem: str | None, line: int, offset: int | None) -> None:
        self.count += 1
        if self.count == 1:
            self.first_line = line
            self.ctx.warn(f"event without a usable time{': ' + problem if problem else ''}", line, offset)

    def finish(self) -> None:
        if self.count > 1:
            self.ctx.warn(f"{self.count} events in all without a usable time (the first at line "
                          f"{self.first_line}): they are stored without a time")


def _bulk_action(doc: Any) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and next(iter(doc)) in BULK_ACTIONS


__all__ = ["NdjsonEvents", "ecs_record", "parse_time", "shape_of"]

"""Windows events exported as JSON lines: Winlogbeat / Elastic ECS documents and the generic
``{"Event": {"System": ..., "EventData": ...}}`` shape (evtx_dump, SIEM exports).

Recognised by content, not name: the first non-empty line is a JSON object of one of those shapes
(an Elasticsearch hit's ``_source`` is unwrapped; dotted keys such as ``"winlog.channel"`` are
read like nested ones). Times are always UTC: offsets are applied. Sysmon's ``UtcTime`` is
preferred over the export's ``@timestamp`` and both are kept in ``fields``.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.lines import iter_lines
from exhunt.artifacts.winevent import event_record, event_row, parse_time, walk_leaves

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


def document_of(obj: Any) -> dict[str, Any] | None:
    """The event document inside a line: the object itself or an Elasticsearch hit's ``_source``."""
    if not isinstance(obj, dict):
        return None
    source = obj.get("_source")
    return source if isinstance(source, dict) else obj


def shape_of(doc: dict[str, Any]) -> str | None:
    """'event' for the generic Event/System shape, 'ecs' for Winlogbeat/ECS, None otherwise."""
    event = doc.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return "event"
    winlog = _get(doc, "winlog")
    if isinstance(winlog, dict) or any(k.startswith("winlog.") for k in doc):
        return "ecs"
    return None


def ecs_record(doc: dict[str, Any]) -> dict[str, Any]:
    """A row from a Winlogbeat/ECS document."""
    winlog = _get(doc, "winlog")
    if not isinstance(winlog, dict):
        winlog = {k[7:]: v for k, v in doc.items() if k.startswith("winlog.")}
    data: dict[str, Any] = {}
    event_data = _get(winlog, "event_data")
    if isinstance(event_data, dict):
        data.update(event_data)
    for key, value in walk_leaves(_get(winlog, "user_data")):
        data.setdefault(key, value)
    params = sorted(((int(m.group(1)), v) for k, v in data.items() if (m := PARAM_RE.match(k))))
    if params and "Data" not in data:  # Winlogbeat names unnamed <Data> param1, param2, ...
        data["Data"] = [v for _, v in params]
    for name, path in ECS_FALLBACK:
        if data.get(name) in (None, ""):
            value = _get(doc, *path)
            if isinstance(value, str) and value:
                data[name] = value
    timestamp = doc.get("@timestamp")
    if isinstance(timestamp, str):
        data["@timestamp"] = timestamp
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

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text.startswith(b"{"):
            return False
        line, newline, _ = text.partition(b"\n")
        if newline or len(head) < 4096:
            try:
                doc = document_of(orjson.loads(line))
            except orjson.JSONDecodeError:
                return False
            return doc is not None and shape_of(doc) is not None
        return ECS_HINT_RE.search(line) is not None or EVENT_HINT_RE.match(line) is not None

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        def warn(message: str, line: int | None, offset: int | None) -> None:
            ctx.warn(message, line, offset)

        for number, offset, text in iter_lines(stream, warn):
            if not text.strip():
                continue
            try:
                doc = document_of(orjson.loads(text))
            except orjson.JSONDecodeError as exc:
                ctx.warn(f"not JSON: {exc}", number, offset)
                continue
            shape = shape_of(doc) if doc is not None else None
            if doc is None or shape is None:
                ctx.warn("JSON line is not a Windows event (no Event/System or winlog)", number, offset)
                continue
            try:
                row = event_record(doc["Event"]) if shape == "event" else ecs_record(doc)
            except (TypeError, ValueError, AttributeError) as exc:
                ctx.warn(f"unreadable event structure ({exc})", number, offset)
                continue
            row["source"] = "ndjson"
            row["line"] = number
            if row["ts"] is None:
                ctx.warn("event without a readable time", number, offset)
            ctx.event(row)


__all__ = ["NdjsonEvents", "ecs_record", "parse_time", "shape_of"]

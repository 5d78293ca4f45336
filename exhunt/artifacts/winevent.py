"""Windows events -> ``events`` rows: the one mapping shared by EVTX files and JSON-lines exports.

Every reader first reduces its record to two things: ``system`` (the System values under their
Sigma names: EventID, Channel, Provider_Name, Computer, EventRecordID, SystemTime) and ``data``
(a flat dict of every EventData named field, UserData leaves by leaf name, unnamed ``<Data>``
values as a list under "Data"). ``event_row`` then derives the normalized columns; the flat dict
with the System values added is stored as the ``fields`` JSON, so Sigma fields without a column
are read as ``json_extract_string(fields, '$."Name"')``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from exhunt.artifacts.timeparse import parse_ts

SYSMON_PROVIDER = "microsoft-windows-sysmon"
SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"
# MSExchange Management log (channel) and the provider that writes cmdlet audit entries to it.
EXCHANGE_MANAGEMENT = ("msexchange management", "msexchange cmdletlogs")

SYSTEM_KEYS = ("EventID", "Channel", "Provider_Name", "Computer", "EventRecordID", "SystemTime")
EMPTY = (None, "", "-")


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 with any fraction and offset (``Z``, ``+02:00``) or Sysmon's ``YYYY-MM-DD HH:MM:SS.fff``;
    naive times are UTC (Sysmon UtcTime, EVTX SystemTime). Always returns aware UTC or None."""
    return parse_ts(value) if isinstance(value, str) else None


def text_of(value: Any) -> Any:
    """The value of an XML-ish node: ``{"#text": v}`` -> v, otherwise the value itself."""
    if isinstance(value, dict) and "#text" in value:
        return value["#text"]
    return value


def attr(node: Any, name: str) -> Any:
    """An XML attribute as JSON converters write it: ``#attributes`` (evtx), ``@Name`` (xmltodict), plain."""
    if not isinstance(node, dict):
        return None
    attributes = node.get("#attributes")
    if isinstance(attributes, dict) and name in attributes:
        return attributes[name]
    if "@" + name in node:
        return node["@" + name]
    return node.get(name)


def _int(value: Any) -> int | None:
    value = text_of(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
            return int(text)
    return None


def _str(value: Any) -> str | None:
    if value in EMPTY:
        return None
    return value if isinstance(value, str) else str(value)


def walk_leaves(node: Any, skip: tuple[str, ...] = ("#attributes",)) -> Iterator[tuple[str, Any]]:
    """Leaf fields of a nested UserData/EventData tree, named by their leaf (``#text`` by its parent)."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in skip or key.startswith(("@xmlns", "xmlns")):
            continue
        if isinstance(value, dict):
            if "#text" in value:
                yield key, value["#text"]
            yield from walk_leaves(value, skip)
        else:
            yield key, value


def system_of(system: Mapping[str, Any]) -> dict[str, Any]:
    """The System element of the ``{"Event": {"System": ...}}`` shape as Sigma-named values."""
    provider = system.get("Provider")
    time_created = system.get("TimeCreated")
    return {
        "EventID": _int(system.get("EventID")),
        "Channel": _str(text_of(system.get("Channel"))),
        "Provider_Name": _str(attr(provider, "Name")) if isinstance(provider, dict) else _str(provider),
        "Computer": _str(text_of(system.get("Computer"))),
        "EventRecordID": _int(system.get("EventRecordID")),
        "SystemTime": _str(attr(time_created, "SystemTime")) if isinstance(time_created, dict)
        else _str(time_created),
    }


def event_data_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """EventData named fields, unnamed ``<Data>`` as a list under "Data", UserData leaves by leaf name."""
    flat: dict[str, Any] = {}
    unnamed: list[Any] = []
    data = event.get("EventData")
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "#attributes" or key.startswith("@"):
                continue
            if key == "Data":
                _data_elements(value, flat, unnamed)
            elif isinstance(value, dict):
                flat[key] = text_of(value) if "#text" in value else orjson.dumps(value).decode()
            else:
                flat[key] = value
    elif isinstance(data, list):  # some converters write EventData as the Data list itself
        _data_elements(data, flat, unnamed)
    for name in ("UserData", "ProcessingErrorData"):
        for key, value in walk_leaves(event.get(name)):
            flat.setdefault(key, value)
    if unnamed:
        flat["Data"] = unnamed
    return flat


def _data_elements(value: Any, flat: dict[str, Any], unnamed: list[Any]) -> None:
    """``<Data>`` in its JSON spellings: evtx's ``{"#text": [..]}``, xmltodict's ``[{"@Name", "#text"}]``."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            name = attr(item, "Name")
            inner = item.get("#text", item.get("Value", item.get("value")))
            if isinstance(name, str) and name:
                flat[name] = inner
            elif isinstance(inner, list):
                unnamed.extend(inner)
            elif inner is not None or not item:
                unnamed.append(inner)
        else:
            unnamed.append(item)


def event_row(system: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Normalized columns from System values and the flat data dict (which gains the System values)."""
    provider = system.get("Provider_Name") or ""
    channel = system.get("Channel") or ""
    event_id = system.get("EventID")
    fields = dict(data)
    for key in SYSTEM_KEYS:
        value = system.get(key)
        if value is None:
            continue
        if key in fields and fields[key] != value:
            fields["EventData_" + key] = fields[key]
        fields[key] = value
    ts = None
    sysmon = provider.lower() == SYSMON_PROVIDER or channel.lower() == SYSMON_CHANNEL
    if sysmon:
        ts = parse_time(data.get("UtcTime"))
    if ts is None:
        ts = parse_time(system.get("SystemTime"))
    get = data.get
    row: dict[str, Any] = {
        "kind": "process" if (event_id == 1 and sysmon) or (event_id == 4688 and _security(provider, channel))
        else "event",
        "log_type": channel or None,
        "channel": channel or None,
        "provider": provider or None,
        "event_id": event_id,
        "record_id": system.get("EventRecordID"),
        "computer": system.get("Computer"),
        "ts": ts,
        "user": _first(get("SubjectUserName"), get("User"), get("TargetUserName")),
        "image": _first(get("Image"), get("NewProcessName")),
        "command_line": _str(get("CommandLine")),
        "parent_image": _first(get("ParentImage"), get("ParentProcessName")),
        "parent_command_line": _str(get("ParentCommandLine")),
        "target_filename": _str(get("TargetFilename")),
        "client_ip": _first(get("IpAddress"), get("SourceIp")),
        "fields": orjson.dumps(fields, default=str).decode(),
    }
    unnamed = data.get("Data")
    if isinstance(unnamed, list) and unnamed:
        texts = ["" if v is None else str(v) for v in unnamed]
        row["message"] = " ".join(texts)
        if channel.lower() in EXCHANGE_MANAGEMENT or provider.lower() in EXCHANGE_MANAGEMENT:
            row["cmdlet"] = texts[0].strip() or None
            row["parameters"] = texts[1] if len(texts) > 1 else None
    return row


def _security(provider: str, channel: str) -> bool:
    return channel.lower() == "security" or provider.lower() == "microsoft-windows-security-auditing"


def _first(*values: Any) -> str | None:
    for value in values:
        text = _str(value)
        if text is not None:
            return text
    return None


def event_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """A row from the ``{"Event": {"System": ..., "EventData": ...}}`` shape (evtx JSON, generic exports)."""
    system = event.get("System")
    return event_row(system_of(system if isinstance(system, dict) else {}), event_data_of(event))

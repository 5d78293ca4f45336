"""Windows events -> ``events`` rows: the one mapping shared by EVTX files and JSON-lines exports.

Every reader first reduces its record to two things: ``system`` (the System values under their
Sigma names: EventID, Channel, Provider_Name, Computer, EventRecordID, SystemTime) and ``data``
(a flat dict of every EventData named field, UserData leaves by leaf name, unnamed ``<Data>``
values as a list under "Data"). ``event_row`` then derives the normalized columns; the flat dict
with the System values added is stored as the ``fields`` JSON, so Sigma fields without a column
are read as ``json_extract_string(fields, '$."Name"')``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from exhunt.artifacts.timeparse import parse_ts

SYSMON_PROVIDER = "microsoft-windows-sysmon"
SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"
# MSExchange Management log (channel) and the provider that writes cmdlet audit entries to it.
EXCHANGE_MANAGEMENT = ("msexchange management", "msexchange cmdletlogs")

SYSTEM_KEYS = ("EventID", "Channel", "Provider_Name", "Computer", "EventRecordID", "SystemTime", "Level")
EMPTY = (None, "", "-")
SECURITY_PROVIDER = "microsoft-windows-security-auditing"
# The ``events`` columns an event row sets, in the order of ``event_values``.
ROW_COLUMNS = (
    "kind", "log_type", "channel", "provider", "event_id", "record_id", "computer", "ts", "user",
    "image", "command_line", "parent_image", "parent_command_line", "target_filename", "client_ip",
    "fields", "message", "cmdlet", "parameters",
)


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
    if value is None or value == "" or value == "-":  # EMPTY, spelled out: this runs ~10x per event
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
        "Level": _int(system.get("Level")),  # Sigma rules match on it (Level: Error)
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
        node = event.get(name)
        if isinstance(node, dict):
            for key, value in walk_leaves(node):
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


def event_values(system: dict[str, Any], data: dict[str, Any]) -> tuple[Any, ...]:
    """The ``ROW_COLUMNS`` values of one event, as a tuple: the EVTX reader turns a batch of these
    into Arrow columns without a dict per event (``event_row`` is the same as a dict).

    Hot path (once per event): provider/channel are lower-cased once and the column lookups are
    inlined rather than looped."""
    provider = system.get("Provider_Name") or ""
    channel = system.get("Channel") or ""
    event_id = system.get("EventID")
    provider_l = provider.lower()
    channel_l = channel.lower()
    fields = dict(data)
    for key in SYSTEM_KEYS:
        value = system.get(key)
        if value is None:
            continue
        if key in fields and fields[key] != value:
            fields["EventData_" + key] = fields[key]
        fields[key] = value
    ts = None
    sysmon = provider_l == SYSMON_PROVIDER or channel_l == SYSMON_CHANNEL
    if sysmon:
        ts = parse_time(data.get("UtcTime"))
    if ts is None:
        ts = parse_time(system.get("SystemTime"))
    get = data.get
    kind, message, cmdlet, parameters = _kind_and_text(event_id, sysmon, channel_l, provider_l, get("Data"))
    return (
        kind,
        channel or None,
        channel or None,
        provider or None,
        event_id,
        system.get("EventRecordID"),
        system.get("Computer"),
        ts,
        *_named_columns(get),
        orjson.dumps(fields, default=str).decode(),
        message,
        cmdlet,
        parameters,
    )


def _named_columns(get: Callable[[str], Any]) -> tuple[Any, ...]:
    """user, image, command line, parent image and command line, target file, source IP: the first
    meaningful candidate, else the value as recorded (an empty or '-' value stays itself, never
    NULL: Sigma's ``CommandLine: ''``, ``'-'`` and ``null`` are three different things)."""
    return (
        _first3(get("SubjectUserName"), get("User"), get("TargetUserName")),
        _first2(get("Image"), get("NewProcessName")),
        _text(get("CommandLine")),
        _first2(get("ParentImage"), get("ParentProcessName")),
        _text(get("ParentCommandLine")),
        _text(get("TargetFilename")),
        _first2(get("IpAddress"), get("SourceIp")),
    )


def _text(value: Any) -> str | None:
    """A recorded value as text; only a missing one is NULL."""
    return value if value is None or type(value) is str else str(value)


def _kind_and_text(event_id: int | None, sysmon: bool, channel_l: str, provider_l: str,
                   unnamed: Any) -> tuple[str, str | None, str | None, str | None]:
    """Row kind, and message, cmdlet and parameters from an unnamed ``<Data>`` array (MSExchange
    Management events carry the cmdlet and its parameters that way)."""
    security = channel_l == "security" or provider_l == SECURITY_PROVIDER
    kind = "process" if (event_id == 1 and sysmon) or (event_id == 4688 and security) else "event"
    message = cmdlet = parameters = None
    if unnamed and isinstance(unnamed, list):
        texts = ["" if v is None else str(v) for v in unnamed]
        message = " ".join(texts)
        if channel_l in EXCHANGE_MANAGEMENT or provider_l in EXCHANGE_MANAGEMENT:
            cmdlet = texts[0].strip() or None
            parameters = texts[1] if len(texts) > 1 else None
    return kind, message, cmdlet, parameters


def event_row(system: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Normalized columns from System values and the flat data dict (which gains the System values)."""
    return dict(zip(ROW_COLUMNS, event_values(system, data), strict=True))


def _first2(a: Any, b: Any) -> str | None:
    """The first of two values that is not missing, empty or '-', else the first recorded one as
    it is (no tuple built: called several times per event)."""
    if a is not None and a != "" and a != "-":
        return a if isinstance(a, str) else str(a)
    if b is not None and b != "" and b != "-":
        return b if isinstance(b, str) else str(b)
    return _text(a if a is not None else b)


def _first3(a: Any, b: Any, c: Any) -> str | None:
    if a is not None and a != "" and a != "-":
        return a if isinstance(a, str) else str(a)
    if b is not None and b != "" and b != "-":
        return b if isinstance(b, str) else str(b)
    if c is not None and c != "" and c != "-":
        return c if isinstance(c, str) else str(c)
    return _text(a if a is not None else b if b is not None else c)


def _node_attr(node: Any, name: str) -> Any:
    """``attr`` with the evtx spelling (``{"#attributes": {name: v}}``) tried first, inline."""
    if type(node) is dict:
        attributes = node.get("#attributes")
        if type(attributes) is dict and name in attributes:
            return attributes[name]
    return attr(node, name)


def _scalar(value: Any) -> Any:
    """``_str(text_of(value))`` with the common case (a plain string) first."""
    if type(value) is str:
        return None if value == "" or value == "-" else value
    return _str(text_of(value))


def _at_key(data: dict[str, Any]) -> bool:
    return any(key.startswith("@") for key in data)


def evtx_event_values(event: dict[str, Any], no_at_keys: bool = False) -> tuple[Any, ...]:
    """``event_record_values`` for one freshly decoded ``Event`` of evtx's JSON, in one pass.

    Why: it runs once per EVTX record, and the readable mapping (``system_of`` + ``event_data_of``
    + ``event_values``) costs several calls and two dict copies per event. Same values, same
    ``fields`` JSON (key order included): a test holds it to ``event_record_values`` over the whole
    shared EVTX set; any unusual shape takes the same helpers. The event's EventData dict is
    reused for ``fields`` (the caller owns the event and drops it). ``no_at_keys``: the caller
    knows no key starts with "@" (e.g. no "@" in the JSON text at all), skipping that check."""
    system = event.get("System")
    if type(system) is not dict:
        system = {}
    event_id = system.get("EventID")
    if type(event_id) is not int:
        event_id = _int(event_id)
    record_id = system.get("EventRecordID")
    if type(record_id) is not int:
        record_id = _int(record_id)
    channel = _scalar(system.get("Channel"))
    computer = _scalar(system.get("Computer"))
    provider_node = system.get("Provider")
    provider = _str(_node_attr(provider_node, "Name")) if isinstance(provider_node, dict) else _str(provider_node)
    created = system.get("TimeCreated")
    system_time = _str(_node_attr(created, "SystemTime")) if isinstance(created, dict) else _str(created)
    level = system.get("Level")
    if type(level) is not int:
        level = _int(level)

    data = event.get("EventData")
    if (type(data) is dict and "Data" not in data and "#attributes" not in data
            and dict not in map(type, data.values()) and (no_at_keys or not _at_key(data))):
        flat = data  # evtx's usual shape: the named <Data> values are the keys already; reused
        if "UserData" in event or "ProcessingErrorData" in event:
            for name in ("UserData", "ProcessingErrorData"):
                node = event.get(name)
                if isinstance(node, dict):
                    for key, value in walk_leaves(node):
                        flat.setdefault(key, value)
    else:
        flat = event_data_of(event)

    provider_l = provider.lower() if provider else ""
    channel_l = channel.lower() if channel else ""
    get = flat.get
    ts = None
    sysmon = provider_l == SYSMON_PROVIDER or channel_l == SYSMON_CHANNEL
    if sysmon:
        utc = get("UtcTime")
        if type(utc) is str:
            ts = parse_ts(utc)
    if ts is None and system_time is not None:
        ts = parse_ts(system_time)
    kind, message, cmdlet, parameters = _kind_and_text(event_id, sysmon, channel_l, provider_l, get("Data"))
    values = (
        kind,
        channel,
        channel,
        provider,
        event_id,
        record_id,
        computer,
        ts,
        *_named_columns(get),
    )
    # the stored ``fields``: the flat data plus the System values (a clash keeps the data value
    # as EventData_<key>), exactly as ``event_values`` builds it
    for key, value in (("EventID", event_id), ("Channel", channel), ("Provider_Name", provider),
                       ("Computer", computer), ("EventRecordID", record_id), ("SystemTime", system_time),
                       ("Level", level)):
        if value is None:
            continue
        if key in flat and flat[key] != value:
            flat["EventData_" + key] = flat[key]
        flat[key] = value
    return (*values, orjson.dumps(flat, default=str).decode(), message, cmdlet, parameters)


def event_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """A row from the ``{"Event": {"System": ..., "EventData": ...}}`` shape (evtx JSON, generic exports)."""
    return dict(zip(ROW_COLUMNS, event_record_values(event), strict=True))


def event_record_values(event: Mapping[str, Any]) -> tuple[Any, ...]:
    """``event_record`` as a ``ROW_COLUMNS`` tuple."""
    system = event.get("System")
    return event_values(system_of(system if isinstance(system, dict) else {}), event_data_of(event))

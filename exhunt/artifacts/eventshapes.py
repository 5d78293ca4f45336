"""Windows events in the flat shapes analysts receive, one record (a JSON line or a CSV row) each.

- flat objects (NXLog, OTRF Security-Datasets, Splunk): an event id (``EventID``, ``EventId``,
  ``event_id``, ``id``, ``EventCode``) with a channel or provider (``Channel``, ``LogName``,
  ``SourceName``, ``ProviderName``, ``Provider_Name``), EventData fields as top-level keys;
- Microsoft Sentinel / Log Analytics ``SecurityEvent`` and ``Event`` rows: ``TimeGenerated`` and
  ``EventID``, the data as flattened columns and/or ``EventData`` as an XML string;
- Velociraptor ``Windows.EventLogs.EVTX``: ``System`` and ``EventData`` nested, the time as epoch
  seconds in ``System.TimeCreated.SystemTime``;
- CSV rows (``eventcsv``): the same flat mapping over the header's column names.

Each reduces to the ``system``/``data`` pair of ``winevent`` so the rows equal the EVTX reader's.
Times: Sysmon's ``UtcTime`` first (both it and the export's time stay in ``fields``), then a time
that carries its offset or is UTC by definition (``TimeGenerated``, ``@timestamp``, ``SystemTime``,
epoch numbers). A time without an offset in any other column (NXLog's ``EventTime`` is the
collector's local time) is reported, never guessed: the event keeps no time then.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - DTDs are refused below, so no entity can expand
from datetime import UTC, datetime
from typing import Any

import orjson

from exhunt.artifacts.timeparse import ms_date, parse_ts
from exhunt.artifacts.winevent import (
    SYSMON_CHANNEL,
    SYSMON_PROVIDER,
    attr,
    event_data_of,
    event_row,
    text_of,
    walk_leaves,
)

ID_KEYS = ("EventID", "EventId", "event_id", "id", "EventCode", "Event ID", "Id")
CHANNEL_KEYS = ("Channel", "channel", "LogName", "EventLog", "Log Name")
PROVIDER_KEYS = ("ProviderName", "Provider_Name", "SourceName", "Provider", "EventSourceName", "provider_name")
SENTINEL_PROVIDER_KEYS = ("Source", "Source Name")  # generic words: read as the provider only in known shapes
COMPUTER_KEYS = ("Computer", "Hostname", "ComputerName", "Host", "hostname", "computer_name")
RECORD_KEYS = ("EventRecordID", "EventRecordId", "RecordNumber", "RecordId", "record_id")
LEVEL_KEYS = ("Level", "EventLevel")
# Times in order of trust after Sysmon's UtcTime; the flag says a value without offset is UTC anyway.
TIME_KEYS = (("TimeGenerated", True), ("@timestamp", True), ("SystemTime", True), ("UtcTime", True),
             ("TimeCreated", False), ("EventTime", False), ("_time", False), ("timestamp", False),
             ("Timestamp", False), ("Date and Time", False), ("time", False))
LEVELS = {"critical": 1, "error": 2, "warning": 3, "information": 4, "informational": 4, "info": 4, "verbose": 5}
PARAM_RE = re.compile(r"^param(\d+)$")
EPOCH_MIN, EPOCH_MAX = 1e8, 1e10  # plausible epoch seconds (1973..2286); larger: milliseconds


def first(doc: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = doc.get(key)
        if value not in (None, "", "-"):
            return value
    return None


def to_int(value: Any) -> int | None:
    value = text_of(value)
    if isinstance(value, dict):
        value = value.get("Value", value.get("value"))
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _name(value: Any) -> str | None:
    """A channel/provider as text (a nested ``{"Name": ...}`` provider too, in any XML spelling)."""
    if isinstance(value, dict):
        value = attr(value, "Name")
    return value if isinstance(value, str) and value else None


def shape_of(doc: dict[str, Any]) -> str | None:
    """'velociraptor', 'sentinel' or 'flat' for the shapes of this module, None otherwise."""
    if isinstance(doc.get("System"), dict) and to_int(doc["System"].get("EventID")) is not None:
        return "velociraptor"
    event_id = to_int(first(doc, ID_KEYS))
    if event_id is None:
        return None
    if "TimeGenerated" in doc and (first(doc, CHANNEL_KEYS) or first(doc, PROVIDER_KEYS)
                                   or first(doc, SENTINEL_PROVIDER_KEYS) or "EventData" in doc
                                   or doc.get("Type") in ("SecurityEvent", "Event")):
        return "sentinel"
    if _name(first(doc, CHANNEL_KEYS)) or _name(first(doc, PROVIDER_KEYS)):
        return "flat"
    return None


def xml_data(text: str) -> dict[str, Any]:
    """EventData/UserData from an XML string (Sentinel's ``EventData``, ``ParameterXml``): named
    ``<Data Name=..>`` by name, unnamed ``<Data>``/``<Param>`` as a list under "Data", other
    leaves by their element name. Raises ValueError for a DTD or XML that does not parse."""
    lowered = text[:4096].lower()
    if "<!doctype" in lowered or "<!entity" in lowered:
        raise ValueError("XML with a document type declaration refused")
    try:
        root = ET.fromstring(f"<exhunt-root>{text}</exhunt-root>")  # noqa: S314 - no DTD (checked above)
    except ET.ParseError as exc:
        raise ValueError(f"EventData XML does not parse: {exc}") from exc
    flat: dict[str, Any] = {}
    unnamed: list[Any] = []
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if len(element) or element is root:
            continue
        if tag in ("Data", "Param"):
            name = element.get("Name")
            value = element.text if element.text is not None else ""
            if name:
                flat[name] = value
            else:
                unnamed.append(value)
        elif element.text is not None:
            flat.setdefault(tag, element.text)
    if unnamed:
        flat["Data"] = unnamed
    return flat


def _nested_data(value: Any) -> dict[str, Any]:
    """An ``EventData`` value in any spelling: a dict (named or ``Data`` list), a list, an XML string
    or a JSON string (EvtxECmd's ``Payload``)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("<"):
            return xml_data(stripped)
        if stripped.startswith("{"):
            try:
                parsed = orjson.loads(stripped)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"EventData JSON does not parse: {exc}") from exc
            return _nested_data(parsed.get("EventData", parsed) if isinstance(parsed, dict) else parsed)
        return {}
    if isinstance(value, dict | list):
        return event_data_of({"EventData": value})
    return {}


def _epoch(value: float) -> datetime | None:
    seconds = value / 1000 if abs(value) > EPOCH_MAX else value
    if not EPOCH_MIN <= abs(seconds) <= EPOCH_MAX:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _moment(value: Any, utc_when_naive: bool) -> tuple[datetime | None, str | None]:
    """An aware UTC time, or why the value gives none ('local' without an offset, 'unreadable')."""
    if isinstance(value, dict):
        attributes = value.get("#attributes")
        value = value.get("SystemTime", attributes.get("SystemTime") if isinstance(attributes, dict) else None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = _epoch(float(value))
        return moment, None if moment else "unreadable"
    if not isinstance(value, str) or not value.strip():
        return None, None
    text = value.strip()
    if text.endswith(" UTC"):
        moment = parse_ts(text)
        return moment, None if moment else "unreadable"
    if text.startswith("/Date("):  # ConvertTo-Json of Windows PowerShell 5.1: an instant, whatever zone
        moment = ms_date(text)
        return moment, None if moment else "unreadable"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None, "unreadable"
    if parsed.tzinfo is None and not utc_when_naive:
        return None, "local"
    return parse_ts(text), None


def pick_time(doc: dict[str, Any], data: dict[str, Any], sysmon: bool,
              utc_columns: tuple[str, ...] = ()) -> tuple[datetime | None, str | None]:
    """The event's UTC time and, when only a local time without an offset was there, why not."""
    problem: str | None = None
    candidates: list[tuple[str, Any, bool]] = []
    if sysmon:
        candidates.append(("UtcTime", data.get("UtcTime"), True))
    system = doc.get("System")
    if isinstance(system, dict):
        candidates.append(("System.TimeCreated", system.get("TimeCreated"), True))
    candidates += [(key, doc.get(key), trusted or key in utc_columns) for key, trusted in TIME_KEYS]
    for key, value, trusted in candidates:
        if value in (None, ""):
            continue
        ts, why = _moment(value, trusted)
        if ts is not None:
            return ts, None
        if why == "local" and problem is None:
            problem = f"{key} {value!r} is a local time without an offset: not used (the time zone is unknown)"
        elif why == "unreadable" and problem is None:
            problem = f"{key} {value!r} is not an ISO 8601 or epoch time: not used (a date format is never guessed)"
    return None, problem


def record(doc: dict[str, Any], shape: str, utc_columns: tuple[str, ...] = ()) -> tuple[dict[str, Any], str | None]:
    """An ``events`` row from one flat/Sentinel/Velociraptor/CSV record, and a time problem if any.
    Raises ValueError/TypeError for a record whose nested data cannot be read."""
    system_node = doc.get("System") if shape == "velociraptor" else None
    source: dict[str, Any] = system_node if isinstance(system_node, dict) else doc
    provider_keys = PROVIDER_KEYS + (SENTINEL_PROVIDER_KEYS if shape in ("sentinel", "csv") else ())
    data: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("System", "EventData", "UserData") or isinstance(value, dict):
            continue
        if shape == "csv" and value == "":
            continue  # an empty cell: nothing recorded
        data[key] = value
    for key in ("EventData", "UserData", "Payload", "ParameterXml"):
        if key == "UserData" and isinstance(doc.get(key), dict):
            continue  # its leaves are read below, by leaf name, as the EVTX reader does
        if key in doc and doc[key] not in (None, ""):
            for name, value in _nested_data(doc[key]).items():
                if name == "Data" and isinstance(data.get("Data"), list):
                    continue
                data[name] = value  # the event's own data wins over a flattened column of the export
    if isinstance(doc.get("UserData"), dict):
        for name, value in walk_leaves(doc["UserData"]):
            data.setdefault(name, value)
    params = sorted((int(m.group(1)), v) for k, v in data.items() if (m := PARAM_RE.match(k)))
    if params and "Data" not in data:  # unnamed <Data> as param1, param2, ... (NXLog, Winlogbeat)
        data["Data"] = [v for _, v in params]
    channel = _name(first(source, CHANNEL_KEYS))
    provider = _name(first(source, provider_keys))
    sysmon = (provider or "").lower() == SYSMON_PROVIDER or (channel or "").lower() == SYSMON_CHANNEL
    ts, problem = pick_time(doc, data, sysmon, utc_columns)
    level = first(source, LEVEL_KEYS)
    level_number = to_int(level)
    if level_number is None and isinstance(level, str):
        level_number = LEVELS.get(level.strip().lower())
    system = {
        "EventID": to_int(first(source, ID_KEYS)),
        "Channel": channel,
        "Provider_Name": provider,
        "Computer": _name(first(source, COMPUTER_KEYS)),
        "EventRecordID": to_int(first(source, RECORD_KEYS)),
        "SystemTime": ts.isoformat().replace("+00:00", "Z") if ts else None,
        "Level": level_number,
    }
    row = event_row(system, data)
    row["ts"] = ts  # exactly the time chosen above (event_row would read a naive SystemTime as UTC)
    message = first(doc, ("Message", "message", "RenderedDescription", "Description"))
    if row.get("message") is None and isinstance(message, str):
        row["message"] = message
    return row, problem

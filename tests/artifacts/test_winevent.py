"""The fused EVTX mapping (``evtx_event_values``) equals the readable one (``event_record_values``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exhunt.artifacts.winevent import event_record_values, evtx_event_values
from tests.conftest import shared_path


def _both(text: str | bytes) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """Reference, fused without the "@" hint, fused with the hint the EVTX reader would give."""
    reference = event_record_values(orjson.loads(text)["Event"])
    fused = evtx_event_values(orjson.loads(text)["Event"])
    raw = text if isinstance(text, str) else text.decode()
    hinted = evtx_event_values(orjson.loads(text)["Event"], "@" not in raw)
    return reference, fused, hinted


def test_whole_shared_set_maps_identically() -> None:
    from evtx import PyEvtxParser

    root = shared_path("evtx")
    files = sorted(root.rglob("*.evtx"))
    assert len(files) >= 277
    count = 0
    for path in files:
        records = PyEvtxParser(str(path)).records_json()
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except RuntimeError:  # a damaged chunk: the reader skips it too
                continue
            reference, fused, hinted = _both(record["data"])
            assert fused == reference, (path, record["event_record_id"])
            assert hinted == reference, (path, record["event_record_id"])
            count += 1
    assert count >= 8000


SYSTEM = {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
    "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4688},
    "EventRecordID": "77",
    "Channel": "Security",
    "Computer": "-",
    "TimeCreated": {"#attributes": {"SystemTime": "2024-01-02T03:04:05.1234567Z"}},
}


@pytest.mark.parametrize(
    "event",
    [
        {"System": SYSTEM, "EventData": {"NewProcessName": "C:\\a.exe", "EventID": 9, "Channel": "Security"}},
        {"System": SYSTEM, "EventData": {"@Name": "x", "User": "-", "SubjectUserName": "bob@corp"}},
        {"System": SYSTEM, "EventData": {"Inner": {"#text": "t"}, "Blob": {"a": [1, 2]}, "IpAddress": 5}},
        {"System": SYSTEM, "EventData": {"#attributes": {"Name": "n"}, "Data": {"#text": ["a", None, 3]}}},
        {"System": {**SYSTEM, "Channel": "MSExchange Management"},
         "EventData": {"Data": {"#text": [" Set-Mailbox ", "-Identity x"]}}},
        {"System": {**SYSTEM, "Provider": "Microsoft-Windows-Sysmon", "EventID": 1},
         "EventData": {"UtcTime": "2024-01-02 03:04:05.678", "Image": "", "ParentImage": "p.exe"}},
        {"System": {**SYSTEM, "Provider": {"@Name": "Microsoft-Windows-Sysmon"}, "EventID": True},
         "EventData": {"UtcTime": 7}},
        {"System": {"TimeCreated": "2024-01-02T03:04:05Z", "Channel": {"#text": "Application"}},
         "EventData": None, "UserData": {"Ev": {"#attributes": {"xmlns": "u"}, "Data": "d", "Who": {"#text": "w"}}}},
        {"System": SYSTEM, "EventData": {"A": 1}, "ProcessingErrorData": {"ErrorCode": 15, "A": 2}},
        {"System": SYSTEM, "EventData": [{"@Name": "User", "#text": "u"}, "loose"]},
        {"System": "not a dict", "EventData": {"Data": "one"}},
        {"EventData": {"TargetUserName": ["x"], "SystemTime": "other"}},
    ],
)
def test_unusual_shapes_map_identically(event: dict[str, Any]) -> None:
    reference, fused, hinted = _both(orjson.dumps({"Event": event}))
    assert fused == reference
    if "@" not in orjson.dumps(event).decode():
        assert hinted == reference

"""Real EVTX records (shared data) re-exported as flat and Velociraptor JSON lines and as EvtxECmd
CSV give the same Sigma findings, rows and times as the EVTX files themselves."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser

from exhunt.api import ScanOptions, scan
from exhunt.artifacts.winevent import event_data_of, system_of
from tests.artifacts.event_shapes import csv_bytes
from tests.conftest import shared_path

SAMPLES = ("Lateral Movement/LM_typical_IIS_webshell_sysmon_1_10_traces.evtx",
           "Credential Access/discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx")


def _records(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(system, data) of every record, as the EVTX reader maps them."""
    parser = PyEvtxParser(io.BytesIO(path.read_bytes()), number_of_threads=1, indent=False)
    out = []
    for record in parser.records_json():
        event = orjson.loads(record["data"])["Event"]
        out.append((system_of(event["System"]), event_data_of(event)))
    return out


def _flat(system: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {"@timestamp": system["SystemTime"], "EventID": system["EventID"], "Channel": system["Channel"],
            "SourceName": system["Provider_Name"], "Hostname": system["Computer"],
            "RecordNumber": system["EventRecordID"], **data}


def _velociraptor(system: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    from exhunt.artifacts.timeparse import parse_ts

    when = parse_ts(system["SystemTime"])
    return {"System": {"Provider": {"Name": system["Provider_Name"]}, "EventID": {"Value": system["EventID"]},
                       "TimeCreated": {"SystemTime": when.timestamp() if when else None},
                       "EventRecordID": system["EventRecordID"], "Channel": system["Channel"],
                       "Computer": system["Computer"]}, "EventData": data}


def _evtxecmd(system: dict[str, Any], data: dict[str, Any]) -> dict[str, str]:
    payload = {"EventData": {"Data": [{"@Name": k, "#text": v} for k, v in data.items()]}}
    return {"TimeCreated": system["SystemTime"].replace("T", " ").rstrip("Z"), "EventId": str(system["EventID"]),
            "Provider": system["Provider_Name"], "Channel": system["Channel"], "Computer": system["Computer"],
            "EventRecordId": str(system["EventRecordID"]), "MapDescription": "", "PayloadData1": "",
            "Payload": orjson.dumps(payload).decode()}


def _scan(root: Path) -> list[tuple[Any, ...]]:
    doc = scan([root], ScanOptions(host="h", jobs=1, quiet=True)).document
    assert doc.hosts[0].coverage.warnings == 0, doc.hosts[0].coverage.warning_samples
    return sorted((f.check, f.count, f.first_seen, f.last_seen, tuple((e.ts, e.record_id) for e in f.evidence))
                  for f in doc.findings if f.check.startswith("sigma:"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_real_records_in_every_export_shape(tmp_path: Path, sample: str) -> None:
    evtx = shared_path("evtx", "evtx-attack-samples", sample)
    (tmp_path / "evtx").mkdir()
    (tmp_path / "evtx" / evtx.name).write_bytes(evtx.read_bytes())
    reference = _scan(tmp_path / "evtx")
    assert reference, "the sample should fire the worker-spawns-shell rules"
    records = _records(evtx)
    exports = {"flat.json": b"".join(orjson.dumps(_flat(*r)) + b"\n" for r in records),
               "velociraptor.json": b"".join(orjson.dumps(_velociraptor(*r)) + b"\n" for r in records),
               "evtxecmd.csv": csv_bytes([_evtxecmd(*r) for r in records])}
    for name, data in exports.items():
        root = tmp_path / name.replace(".", "_")
        root.mkdir()
        (root / name).write_bytes(data)
        assert _scan(root) == reference, name

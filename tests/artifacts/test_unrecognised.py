"""Structured files that no artifact reads are named, where an analyst's export can lie."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.artifacts.unrecognised import reason
from tests.helpers import parse_bytes


@pytest.mark.parametrize(("rel", "head", "starts"), [
    ("export/siem.json", b'{"SourceName": "x", "EventIDx": 1}\n{"SourceName": "y"}\n', "JSON lines with keys "
     "SourceName, EventIDx not recognised as Windows events"),
    ("a.json", b'[{"EventID": 1, "Channel": "Security"}]', "a JSON array of objects with keys EventID, Channel"),
    ("a.json", b'{\n  "EventID": 1,\n  "Channel": "Security"\n}\n', "a JSON document with keys EventID, Channel"),
    ("dump.xml", b'<?xml version="1.0"?>\n<Events><Event xmlns="x"/></Events>', "XML <Events> (an Event Viewer"),
    ("inbox.xml", b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
     b'<Obj RefId="0"><TN RefId="0"><T>Deserialized.Rule</T>', "PowerShell CLIXML of Deserialized.Rule"),
    ("x/y.csv", b"Pid,Name,Path\r\n4,System,\r\n", "CSV with columns Pid, Name, Path"),
    ("u16.json", '{"a": 1}\n'.encode("utf-16"), "JSON lines with keys a"),
])
def test_structured_files_are_named_with_why(rel: str, head: bytes, starts: str) -> None:
    why = reason(rel, head, complete=True)
    assert why is not None and why.startswith(starts), why


@pytest.mark.parametrize(("rel", "head"), [
    ("C/Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/web.xml", b"<configuration/>"),
    ("C/inetpub/wwwroot/aspnet_client/settings.json", b'{"a": 1}\n'),
    ("C/ProgramData/Microsoft/Exchange/settings.xml", b"<settings/>\r\n"),
    ("C/Users/bob/AppData/Local/x.json", b'{"a": 1}\n'),
    ("collection_context.json", b'{"session_id": "F.1"}'),  # Velociraptor's own bookkeeping
    ("notes.txt", b"call bob, then alice\n"),
    ("page.html", b"<!DOCTYPE html><html></html>"),
    ("setup.log", b"[03/01/2021 10:00:00.0000] [0] Starting, Exchange setup\n"),
    ("data.bin", b"\x00\x01\x02"),
    ("a.csv", b"\r\x00,\n\r,\x00\n"),
])
def test_server_files_and_plain_text_stay_silent(rel: str, head: bytes) -> None:
    assert reason(rel.lower(), head, complete=True) is None


def test_warning_row_counts_in_coverage_artifact(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "exports/unknown.jsonl", b'{"k": 1}\n')
    assert con.execute("SELECT artifact, path, line, \"offset\" FROM warnings").fetchall() == [
        ("unrecognised", "exports/unknown.jsonl", None, 0)]
    assert con.execute("SELECT artifact FROM files").fetchall() == [(None,)]


def test_a_claimed_file_is_never_sniffed(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "exports/events.json",
                      b'{"EventID": 4624, "Channel": "Security", "TimeGenerated": "2021-03-03T00:00:00Z"}\n')
    assert con.execute("SELECT count(*) FROM warnings").fetchone() == (0,)
    assert con.execute("SELECT artifact FROM files").fetchall() == [("ndjson",)]

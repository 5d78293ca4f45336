"""Event exports and the unrecognised-file sniff never raise on any bytes; lines stay inside the file."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exhunt.artifacts import choose
from exhunt.artifacts.eventcsv import EventCsv
from exhunt.artifacts.ndjson import NdjsonEvents
from exhunt.artifacts.unrecognised import reason
from tests.fuzz.test_parsers_fuzz import run

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CSV_HEAD = b"TimeCreated,EventId,Provider,Channel,Payload,PayloadData1\r\n"
JSON_LINE = (b'{"TimeGenerated":"2021-03-03T02:10:05Z","EventID":1,"EventLog":"Security",'
             b'"EventData":"<DataItem><EventData><Data Name=\\"A\\">x</Data></EventData></DataItem>"}\n')
PARSERS = {"eventcsv": (EventCsv, CSV_HEAD), "ndjson": (NdjsonEvents, JSON_LINE)}


@SETTINGS
@given(body=st.binary(max_size=4000), parser=st.sampled_from(sorted(PARSERS)))
def test_event_exports_never_raise_on_bytes(body: bytes, parser: str) -> None:
    artifact, head = PARSERS[parser]
    run(artifact, head + body)


_CELL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@SETTINGS
@given(cells=st.lists(st.lists(_CELL, min_size=6, max_size=7), max_size=8))
def test_event_csv_rows_of_any_text(cells: list[list[str]]) -> None:
    body = "\r\n".join(",".join('"' + c.replace('"', '""') + '"' for c in row) for row in cells)
    run(EventCsv, CSV_HEAD + body.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(head=st.binary(max_size=600), name=st.sampled_from(["x.json", "x.csv", "x.xml", "x.txt", "x"]),
       complete=st.booleans())
def test_sniffs_never_raise(head: bytes, name: str, complete: bool) -> None:
    reason(name, head, complete)
    choose(name, head)

"""CSV timeline and Timesketch JSONL: cited rows by default, every event with all_events."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from exhunt.events.store import connect
from exhunt.reports import csv_timeline, timesketch
from exhunt.reports.case import Case
from tests.reports.evidence import XSS_UA

# What Timesketch's JSONL/CSV importer requires of every line.
TIMESKETCH_REQUIRED = {"message": str, "datetime": str, "timestamp_desc": str}


def _csv(case: Case) -> list[dict[str, str]]:
    out = io.BytesIO()
    csv_timeline.render(case, out)
    return list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8"), newline="")))


def _jsonl(case: Case) -> list[dict]:
    out = io.BytesIO()
    timesketch.render(case, out)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_csv_has_one_row_per_cited_row_in_time_order(case: Case) -> None:
    rows = _csv(case)
    assert list(rows[0])[:3] == ["message", "datetime", "timestamp_desc"]
    untimed = [r for r in rows if not r["datetime"]]
    assert [r["source"] for r in untimed] == ["exchange_log"], "only the build evidence has no time; it comes last"
    assert rows[-1] is untimed[0]
    rows = rows[:-1]
    assert len(rows) == 7, "SSRF rows cited twice appear once; the shell has a file row and a YARA row"
    assert [r["datetime"] for r in rows] == sorted(r["datetime"] for r in rows)
    first = rows[0]
    assert first["severity"] == "critical" and "proxylogon.ssrf.static_post" in first["finding_ids"]
    assert first["client_ip"] == "203.0.113.9" and first["line"] == "6"
    shell = next(r for r in rows if r["source"] == "files")
    assert shell["timestamp_desc"] == "File Modified (mtime)" and shell["datetime"] == "2021-03-03T02:04:30Z"
    assert any(r["user_agent"] == XSS_UA for r in rows)


def test_csv_all_events_adds_uncited_events(case: Case) -> None:
    rows = _csv(replace(case, all_events=True))
    con = connect(case.store)
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    assert len(rows) == events + 3, "every event plus the cited file-inventory, YARA and build evidence rows"
    benign = [r for r in rows if r["client_ip"] == "10.0.0.77"]
    assert len(benign) == 1 and benign[0]["finding_ids"] == "" and "logo.png" in benign[0]["message"]


def test_csv_neutralises_spreadsheet_formulas(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    real = csv_timeline.timeline_rows

    def rows(c: Case):  # type: ignore[no-untyped-def]
        for row in real(c):
            yield {**row, "message": "=HYPERLINK(\"http://x\")", "user_agent": "@SUM(1)"}

    monkeypatch.setattr(csv_timeline, "timeline_rows", rows)
    out = _csv(case)
    assert out[0]["message"] == "'=HYPERLINK(\"http://x\")" and out[0]["user_agent"] == "'@SUM(1)"


@pytest.mark.parametrize("all_events", [False, True])
def test_timesketch_lines_have_the_required_fields(case: Case, all_events: bool) -> None:
    lines = _jsonl(replace(case, all_events=all_events))
    assert len(lines) == (8 if all_events else 7)
    for line in lines:
        for name, kind in TIMESKETCH_REQUIRED.items():
            assert isinstance(line[name], kind) and line[name], name
        when = datetime.fromisoformat(line["datetime"].replace("Z", "+00:00"))
        assert when.utcoffset() is not None
        assert line["timestamp"] == int(when.timestamp() * 1_000_000)
    cited = [line for line in lines if line["data_type"] == "exhunt:evidence"]
    assert len(cited) == 7 and all("exhunt" in line["tag"] for line in cited)
    assert {"host", "path", "source", "findings"} <= set(cited[0])


def test_timelines_without_store_use_the_document_evidence(case: Case) -> None:
    rows = [r for r in _csv(Case(case.document)) if r["datetime"]]
    assert len(rows) == 7 and rows[0]["client_ip"] == ""


def _cited(case: Case) -> list[dict]:
    from exhunt.reports.case import timeline_rows

    return list(timeline_rows(case, all_events=False))


def test_cited_rows_read_near_the_hits_are_those_of_every_row(case: Case, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """The constant filters on the cited paths and numbers (``near_hits``) only skip rows: with
    extra EVTX-like rows (record ids, no line) and rows near the cited ones, the timeline is the
    same with them, without them, and with too many values to list."""
    from exhunt.events.store import StoreWriter
    from exhunt.reports import case as case_module

    assert case.store is not None
    store = tmp_path / "store"
    shutil.copytree(case.store, store)
    copy = replace(case, store=store)
    con = connect(store, extra_tables=("hits",))
    try:
        cited = con.execute("SELECT host, path, line FROM hits WHERE line IS NOT NULL LIMIT 1").fetchone()
        assert "path IN (" in case_module.near_hits(con)
    finally:
        con.close()
    assert cited is not None
    host, path, line = cited
    with StoreWriter(store, host, part="near-test") as writer:  # same file, next line: not cited
        writer.add("events", {"host": host, "source": "iis", "path": path, "line": line + 1, "kind": "http"})
        writer.add("events", {"host": host, "source": "evtx", "path": "Logs/Security.evtx", "record_id": 7,
                              "kind": "event"})
    near = _cited(copy)
    assert len(near) == len(_cited(case)) and sum(1 for r in near if r["kind"]) >= 5
    monkeypatch.setattr(case_module, "near_hits", lambda con: "")
    assert _cited(copy) == near
    monkeypatch.undo()
    monkeypatch.setattr(case_module, "NEAR_VALUES", 0)
    assert _cited(copy) == near


def test_the_rows_the_mailbox_impact_cites_are_in_the_timelines(tmp_path: Path) -> None:
    """The dates a breach notification rests on (who was read, from when to when) come from the
    impact's cited rows: the timelines hold each of them, store or not, tagged with the mailbox."""
    from exhunt.api import ScanOptions, scan
    from exhunt.demo import DemoSpec, generate

    generate(tmp_path / "evidence", DemoSpec(per_day=60, attack=True, seed=3))
    doc = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                                    progress=False)).document
    cited = {(i.mailbox, e.path, e.line) for i in doc.impact for e in i.evidence}
    assert cited
    for case in (Case(doc, tmp_path / "case" / "store"), Case(doc)):
        rows = _csv(case)
        tagged = {(ids.removeprefix("impact:"), r["path"], int(r["line"])) for r in rows
                  for ids in r["finding_ids"].split() if ids.startswith("impact:")}
        assert cited <= tagged
        assert all(r["findings"] for r in rows if "impact:" in r["finding_ids"])
        lines = _jsonl(case)
        assert sum("impact:" in " ".join(line.get("finding_ids", "").split()) for line in lines) >= len(
            {(p, n) for _, p, n in cited})
        assert all(tag for line in lines for tag in line.get("tag", ())), "no empty tag (a row the impact alone cites)"

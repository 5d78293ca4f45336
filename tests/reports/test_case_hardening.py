"""A case read back as written: columns from the files (never folder names), a damaged store or a
document that is not one is one readable line, STIX names the real file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, ScanResult, scan
from exhunt.cli import main
from exhunt.demo import DemoSpec, generate
from exhunt.events.store import connect
from exhunt.reports.stix import pattern_for


def test_host_names_and_parent_folders_never_replace_column_values(tmp_path: Path) -> None:
    """The store's folders are host=<sanitized name>; DuckDB's hive partitioning read that name (or
    any 'x=y' folder above the case) back as the column, so a host with a space lost its findings."""
    ev = tmp_path / "EXCH01 triage"
    generate(ev, DemoSpec(days=1, per_day=200))
    case = tmp_path / "path=p" / "case"
    result = scan([ev], ScanOptions(out=case, jobs=1, quiet=True, html_report=False))
    assert [(h.host, h.verdict) for h in result.document.hosts] == [("EXCH01 triage", "compromised")]
    assert {f.host for f in result.document.findings} == {"EXCH01 triage"}
    con = connect(case / "store")
    assert con.execute("SELECT DISTINCT host FROM events").fetchall() == [("EXCH01 triage",)]
    assert "p" not in {r[0] for r in con.execute("SELECT DISTINCT path FROM events").fetchall()}


def test_a_damaged_store_part_is_one_line(scanned: ScanResult, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case"
    shutil.copytree(scanned.case_dir, case)
    next((case / "store" / "events").rglob("*.parquet")).write_bytes(b"garbage\n")
    for argv in (["report", str(case), "-f", "csv", "-o", "-"], ["query", str(case), "SELECT 1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "damaged" in err and err.count("\n") == 1, err


def test_a_json_file_that_is_no_findings_document_is_one_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", str(tmp_path / "bad.json"), "-f", "md", "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert "not an exhunt findings document" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("path", "name", "folder"), [
    # the folder as the server names it (a STIX literal doubles its backslashes), the name whole and real
    # (the evidence path shows its CR escaped: names.real_name reads it back)
    ("C/inetpub/wwwroot/aspnet_client/cr\\x0dx.aspx", "cr\rx.aspx",
     "C:\\\\inetpub\\\\wwwroot\\\\aspnet_client"),
    ("C:\\inetpub\\wwwroot\\x.aspx", "x.aspx", "C:\\\\inetpub\\\\wwwroot"),
])
def test_stix_file_pattern_keeps_names_whole(path: str, name: str, folder: str) -> None:
    assert pattern_for("file_path", path) == (f"[file:name = '{name}' AND "
                                              f"file:parent_directory_ref.path = '{folder}']")


def test_control_and_bidi_characters_are_escapes_in_html_and_markdown(scanned: ScanResult) -> None:
    from dataclasses import replace

    from exhunt.reports import html, markdown
    from exhunt.reports.case import Case

    hostile = "shell\u202egpj.aspx \x1b[31mred"
    doc = scanned.document
    doc = replace(doc, findings=(replace(doc.findings[0], key=hostile, title=hostile), *doc.findings[1:]))
    page = html.render_text(Case(doc, scanned.case_dir / "store"))
    text = markdown.render_text(doc)
    for out in (page, text):
        assert "\u202e" not in out and "\x1b" not in out
        assert "\\u202e" in out and "\\x1b" in out
    assert "<script" in page  # our own pinned script still there, not escaped


def test_all_events_without_the_stored_events_is_an_error(scanned: ScanResult, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case"
    shutil.copytree(scanned.case_dir, case)
    shutil.rmtree(case / "store" / "events")
    assert main(["report", str(case), "-f", "csv", "--all-events", "-o", str(tmp_path / "t.csv")]) == 2
    assert "has none" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()

"""Search-MailboxAuditLog exports (CSV) and New-MailboxAuditLogSearch reports (XML) as events."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import parse_bytes

CSV = (b'#TYPE Microsoft.Exchange.Management.SystemConfigurationTasks.MailboxAuditLogRecord\r\n'
       b'"Operation","LogonType","ClientIPAddress","MailboxOwnerUPN","LogonUserDisplayName","LastAccessed"\r\n'
       b'"FolderBind","Delegate","[203.0.113.9]:4431","ceo@x.example","X\\eve","3/3/2021 3:12:45 AM"\r\n'
       b'"MailboxLogin","Owner","10.0.0.5","ann@x.example","X\\ann","not a date"\r\n'
       b'"SendAs","Delegate"\r\n')
XML = (b'<?xml version="1.0" encoding="utf-8"?>\r\n<SearchResults>\r\n'
       b'<Event MailboxGuid="g" Owner="ceo@x.example" LastAccessed="2021-03-03T03:12:45.000Z" Operation="SoftDelete" '
       b'LogonType="Delegate" ClientIPAddress="203.0.113.9" LogonUserDisplayName="X\\eve">\r\n'
       b'<SourceItems><ItemId>a</ItemId><ItemId>b</ItemId></SourceItems></Event>\r\n'
       b'<Event Owner="ann@x.example" LastAccessed="2021-03-03T04:00:00Z" Operation="Move" LogonType="Owner"/>\r\n'
       b'<Event Owner="truncated')


def test_csv_export(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "audit/ceo.csv", CSV)
    rows = con.execute("SELECT source, ts, client_ip, \"user\", cmdlet, line, fields FROM events "
                       "ORDER BY line").fetchall()
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("mailbox_audit", "203.0.113.9", "X\\eve", "FolderBind", 3),
        ("mailbox_audit", "10.0.0.5", "X\\ann", "MailboxLogin", 4),
        ("mailbox_audit", None, None, "SendAs", 5)]
    assert rows[0][1].isoformat().startswith("2021-03-03T03:12:45")
    assert json.loads(rows[0][6])["MailboxOwnerUPN"] == "ceo@x.example"
    warnings = con.execute("SELECT line, message FROM warnings ORDER BY line").fetchall()
    assert [line for line, _ in warnings] == [3, 4, 5, 5], "unreadable time and short row are warnings"
    assert "carries no time zone" in warnings[0][1]  # said once for the file, at its first such time


def test_xml_report(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "audit/report.xml", XML)
    rows = con.execute("SELECT cmdlet, client_ip, fields FROM events ORDER BY record_id").fetchall()
    assert [r[0] for r in rows] == ["SoftDelete", "Move"]
    first = json.loads(rows[0][2])
    assert first["SourceItemsCount"] == "2" and first["MailboxOwnerUPN"] == "ceo@x.example"
    assert con.execute("SELECT count(*) FROM warnings").fetchone() == (1,), "the truncated end is one warning"


def _rows(tmp_path: Path, name: str, data: bytes) -> list[tuple]:
    con = parse_bytes(tmp_path, name, data)
    return con.execute("SELECT ts, client_ip, \"user\", cmdlet, line, record_id, fields FROM events "
                       "ORDER BY record_id").fetchall()


def test_csv_in_every_encoding_and_without_its_type_line(tmp_path: Path) -> None:
    """The export is read row by row from the stream in the encoding its first bytes give (UTF-8,
    UTF-16 with a BOM, UTF-16LE without), a quoted value over two lines included; without the
    ``#TYPE`` line the header is the first line and the line numbers follow."""
    quoted = CSV.replace(b'"X\\eve"', b'"X\\eve\r\nsecond line"')
    want = _rows(tmp_path / "utf8", "audit/a.csv", quoted)
    assert len(want) == 3 and want[0][2] == "X\\eve\r\nsecond line"
    for name, data in (("bom", b"\xff\xfe" + quoted.decode().encode("utf-16-le")),
                       ("le", quoted.decode().encode("utf-16-le"))):
        assert _rows(tmp_path / name, "audit/a.csv", data) == want, name
    untyped = _rows(tmp_path / "untyped", "audit/a.csv", quoted.split(b"\r\n", 1)[1])
    assert [r[4] for r in untyped] == [r[4] - 1 for r in want] and [r[3] for r in untyped] == [r[3] for r in want]


def test_xml_read_in_pieces_gives_the_same_events(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The XML report is fed to expat piece by piece: any read size gives the same events and the
    same one warning for its truncated end."""
    from exhunt.artifacts import mailbox_audit

    whole = _rows(tmp_path / "whole", "audit/report.xml", XML)
    monkeypatch.setattr(mailbox_audit, "READ", 7)
    assert _rows(tmp_path / "pieces", "audit/report.xml", XML) == whole and len(whole) == 2

"""Export readers on bad input: warnings with position, and what was read counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exhunt.artifacts import psobjects
from exhunt.artifacts.cmdlet_exports import sniff
from exhunt.artifacts.psobjects import ps_time
from tests.artifacts.psexport import export, to_clixml
from tests.artifacts.test_cmdlet_exports import EXPORTS
from tests.helpers import parse_bytes

RULE_TYPE, RULES, _, _ = EXPORTS["Get-InboxRule"]


def warnings(con: object) -> list[tuple]:
    return con.execute('SELECT line, "offset", message FROM warnings ORDER BY line').fetchall()  # type: ignore[attr-defined]


def test_truncated_csv(tmp_path: Path) -> None:
    data = export(RULES, "csv", RULE_TYPE)
    cut = data[: data.rindex(b"corp.example/Users/bob") + 10]  # the copy stopped inside the second record
    con = parse_bytes(tmp_path, "rules.csv", cut)
    assert con.execute("SELECT anchor_mailbox FROM events ORDER BY line").fetchall() == [
        ("corp.example/Users/alice",), ("corp.examp",)]  # the cut record is read as far as it goes
    ((line, _, message),) = warnings(con)
    assert line == 4 and "cut short" in message


def test_multivalued_column_written_as_type_name_is_a_warning(tmp_path: Path) -> None:
    from tests.artifacts.psexport import to_csv

    con = parse_bytes(tmp_path, "rules.csv", to_csv(RULES, RULE_TYPE, join=False))
    ((line, _, message),) = warnings(con)
    assert line == 3 and "ForwardTo" in message and "-join" in message
    assert con.execute("SELECT count(*) FROM events").fetchone() == (2,)


@pytest.mark.parametrize("read", [None, 5], ids=["whole", "5-byte-reads"])
@pytest.mark.parametrize("utf16", [False, True])
def test_json_array_cut_off(tmp_path: Path, utf16: bool, read: int | None,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    if read:  # objects and UTF-8 sequences cut by reads: the same rows and positions
        monkeypatch.setattr(psobjects, "JSON_READ", read)
    text = json.dumps(RULES, indent=4, default=str)
    cut = text[: text.index('"Invoices"') + 4]
    data = b"\xff\xfe" + cut.encode("utf-16-le") if utf16 else cut.encode()
    con = parse_bytes(tmp_path, "rules.json", data)
    assert con.execute("SELECT message FROM events").fetchall() == [("fwd",)]
    ((line, offset, message),) = warnings(con)
    assert "cut off" in message and "1 objects read" in message
    assert line == cut.count("\n") + 1
    at = cut.rindex('"Inv')  # where the cut string starts, as a byte offset of the file as it is
    assert offset == (2 + 2 * at if utf16 else at)


def test_clixml_with_unknown_types_and_cut_off(tmp_path: Path) -> None:
    objects = RULES + [{"Name": "x", "Weird": "y"}]
    data = to_clixml(objects, RULE_TYPE).decode("utf-16")
    data = data.replace('<TNRef RefId="1" /><ToString>x', '<TN RefId="9"><T>Contoso.Unknown.Thing</T></TN><ToString>x')
    data = data.replace("<S N=\"Weird\">", "<Z N=\"Weird\">").replace("y</S></Props>", "y</Z></Props>")
    con = parse_bytes(tmp_path, "rules.xml", b"\xff\xfe" + data.encode("utf-16-le"))
    assert con.execute("SELECT count(*) FROM events").fetchone() == (2,)
    messages = [w[2] for w in warnings(con)]
    assert any("<Z>" in m for m in messages) and any("Contoso.Unknown.Thing" in m for m in messages)
    cut = data[: data.index("Invoices") + 3]
    con = parse_bytes(tmp_path / "cut", "rules.xml", b"\xff\xfe" + cut.encode("utf-16-le"))
    assert con.execute("SELECT message FROM events").fetchall() == [("fwd",)]
    ((line, offset, message),) = warnings(con)
    assert "cut off" in message and line == cut.count("\n") + 1 and offset is not None


@pytest.mark.parametrize("head", [
    b'{"name": "exhunt", "version": "1.0", "dependencies": {}}',
    b'"Name","Size"\r\n"a","1"\r\n',
    b'[{"EventId": 4624}]',
    b"<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj><TN><T>System.String</T>",
])
def test_other_structured_files_are_not_claimed(head: bytes) -> None:
    assert sniff(head) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("/Date(1614823200000)/", "2021-03-04T02:00:00+00:00"),
    ("2021-03-04T03:00:00.1234567+01:00", "2021-03-04T02:00:00.123456+00:00"),
    ("3/4/2021 2:00:00 AM", "2021-03-04T02:00:00+00:00"),
    ("3/4/2021 2:00:00 PM", "2021-03-04T14:00:00+00:00"),
    ("12/4/2021 12:05:00 AM", "2021-12-04T00:05:00+00:00"),
    ("yesterday", None),
])
def test_powershell_dates(value: str, expected: str | None) -> None:
    assert ps_time(value) == expected


def test_clixml_virtual_directory_with_admin_display_version_is_an_export(tmp_path: Path) -> None:
    """A property the build artifact looks for does not take a virtual directory export from this one."""
    type_name, objects, _, _ = EXPORTS["Get-OabVirtualDirectory"]
    data = to_clixml([{**objects[0], "AdminDisplayVersion": "Version 15.1 (Build 2176.2)"}], type_name)
    con = parse_bytes(tmp_path, "oab.xml", data)
    assert con.execute("SELECT artifact FROM files").fetchone() == ("cmdlet_export",)
    rows = con.execute("SELECT kind, cmdlet FROM events").fetchall()
    assert rows == [("virtual_directory", "Get-OabVirtualDirectory")]


def test_json_stream_of_many_objects_and_bad_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small reads over an array of 200 objects with non-ASCII text and one byte that is no UTF-8."""
    monkeypatch.setattr(psobjects, "JSON_READ", 64)
    rules = [{**RULES[0], "Name": f"règle {n} ✓", "Priority": n} for n in range(200)]
    data = json.dumps(rules, indent=2, ensure_ascii=False).encode()
    at = data.index("règle 150".encode()) + 1
    data = data[:at] + b"\xff" + data[at + 1:]
    con = parse_bytes(tmp_path, "rules.json", data)
    assert con.execute("SELECT count(*), count(DISTINCT message) FROM events").fetchone() == (200, 200)
    first_lines = con.execute("SELECT line FROM events ORDER BY record_id LIMIT 2").fetchall()
    assert first_lines == [(2,), (2 + json.dumps(rules[0], indent=2).count("\n") + 1,)]
    ((_, offset, message),) = warnings(con)
    assert offset == at and "UTF-8" in message


@pytest.mark.parametrize("head", [
    b'#TYPE Deserialized.Microsoft.Exchange.Management.Common.InboxRule\r\n"Name","MailboxOwnerId","ForwardTo"\r\n',
    b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj RefId="0"><TN RefId="0">'
    b"<T>Deserialized.Microsoft.Exchange.Management.Common.InboxRule</T></TN><Props>",
], ids=["csv", "clixml"])
def test_a_lone_cr_is_no_line(tmp_path: Path, head: bytes) -> None:
    """Found by the fuzz run: lines are counted at LF, so nothing is cited past the file's last line."""
    data = head + b"\r\x00"
    con = parse_bytes(tmp_path, "x.out", data)
    lines = data.count(b"\n") + 1
    cited = con.execute("SELECT line FROM events UNION ALL SELECT line FROM warnings").fetchall()
    assert cited and all(line is None or 1 <= line <= lines for (line,) in cited)


def test_powershell_51_date_objects_and_zoneless_iso_dates(tmp_path: Path) -> None:
    """Windows PowerShell 5.1's ConvertTo-Json writes a DateTime as an object (``value`` holds the
    instant): the row had no time and no warning. A zone-less ISO date is read as UTC, and said."""
    objects = [{"Mailbox": "corp.example/Users/cfo", "FilePath": "\\\\srv\\c$\\x.pst", "Status": "Completed",
                "RequestGuid": "7c1c2d7e-0000-4000-8000-000000000001",
                "QueuedTimestamp": {"value": "/Date(1614737405000)/", "DisplayHint": 2,
                                    "DateTime": "Wednesday, March 3, 2021 2:10:05 AM"}},
               {"Mailbox": "corp.example/Users/ceo", "FilePath": "\\\\srv\\c$\\y.pst", "Status": "Queued",
                "RequestGuid": "7c1c2d7e-0000-4000-8000-000000000002", "QueuedTimestamp": "2021-03-03T04:10:05"}]
    con = parse_bytes(tmp_path, "exports.json", json.dumps(objects).encode())
    rows = con.execute("SELECT anchor_mailbox, ts FROM events ORDER BY line").fetchall()
    assert [(box, ts.isoformat() if ts else None) for box, ts in rows] == [
        ("corp.example/Users/cfo", "2021-03-03T02:10:05+00:00"),
        ("corp.example/Users/ceo", "2021-03-03T04:10:05+00:00")]
    assert any("without a zone" in message for _, _, message in warnings(con))

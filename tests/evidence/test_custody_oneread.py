"""One read per input (issue 18 item 1): the manifest comes from the workers' read, equals an
independent sha256sum of every input, and the main process hashes only what no worker reads whole."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.events.store import connect
from exhunt.evidence import manifest
from exhunt.evidence.verify import verify
from exhunt.parallel import ranges
from exhunt.utctime import iso_from_epoch
from tests.evidence import collection as c

SMALL = DemoSpec(days=1, per_day=300)
IIS_HEAD = b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n" \
           b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip " \
           b"cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken\r\n"


def big_iis_log(path: Path, mib: int = 3) -> Path:
    """An IIS log over ``mib`` MiB: split into byte ranges with a 1 MiB --split-size."""
    line = b"2021-03-03 10:00:00 10.0.0.5 GET /owa/auth/logon.aspx - 443 - 192.0.2.10 Mozilla/5.0 200 0 0 5\r\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(IIS_HEAD + line * ((mib << 20) // len(line)))
    return path


def sha256sum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_folder(root: Path) -> tuple[dict[str, tuple[str, int, str | None]], str]:
    """Every file under ``root``: rel -> (sha256, size, mtime), and the folder's tree hash."""
    files = {p.relative_to(root).as_posix(): (sha256sum(p), p.stat().st_size, iso_from_epoch(p.stat().st_mtime))
             for p in sorted(root.rglob("*")) if p.is_file()}
    tree = hashlib.sha256()
    for rel, (sha, _, _) in sorted(files.items()):
        tree.update(f"{rel}\0{sha}\n".encode())
    return files, tree.hexdigest()


def counting_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path the main process hashes itself (worker reads hash through artifacts/files.py)."""
    seen: list[Path] = []
    real = manifest.sha256_file

    def counted(path: Path) -> tuple[str, int]:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(manifest, "sha256_file", counted)
    return seen


def disk_image(tmp_path: Path) -> Path | None:
    try:
        import dissect.fat  # noqa: F401
        import dissect.target  # noqa: F401
    except ImportError:
        return None
    from tests.evidence.disk_images import fat16_volume, mbr_disk

    image = tmp_path / "exch02.img"
    image.write_bytes(mbr_disk(fat16_volume({"inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": c.IIS.encode()})))
    return image


@pytest.mark.parametrize("jobs", [1, 2])
def test_manifest_from_the_one_read_equals_sha256sum_of_every_input(tmp_path: Path, jobs: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    demo = tmp_path / "exch01"
    generate(demo, SMALL)
    big = big_iis_log(demo / "C/inetpub/logs/LogFiles/W3SVC2/u_ex210304.log", mib=12)
    archive = c.write_zip(tmp_path / "collection.zip")
    single = tmp_path / "u_ex210303.log"
    single.write_bytes(c.IIS.encode())
    image = disk_image(tmp_path)
    merged: list[str] = []
    real_merge = ranges.merge
    monkeypatch.setattr(ranges, "merge", lambda *a, **k: merged.append(a[-1]) or real_merge(*a, **k))
    hashed_here = counting_hashes(monkeypatch)
    evidence = [demo, archive, single, *([image] if image else [])]
    result = scan(evidence, ScanOptions(out=tmp_path / "case", jobs=jobs, quiet=True, html_report=False,
                                        split_size=1 << 20, memory_limit=500 << 20))  # 2 jobs stay 2
    # in byte ranges with 2 workers (the big log would hold one up); one worker reads it whole
    assert bool(merged) == (jobs > 1), "the big log was parsed in byte ranges"
    assert sorted(map(Path, hashed_here)) == sorted([archive.absolute(), *([image.absolute()] if image else [])]), \
        "only containers are hashed outside the workers' one read"

    doc = json.loads((tmp_path / "case" / "manifest.json").read_bytes())
    records = {r["id"]: r for r in doc["inputs"]}
    files, tree = expected_folder(demo)
    root = records["E1"]
    assert (root["kind"], root["sha256"], root["size"]) == ("folder", tree, sum(s for _, s, _ in files.values()))
    inside = {r["rel"]: (r["sha256"], r["size"], r["mtime"]) for i, r in records.items() if i.startswith("E1:")}
    assert inside == files and big.relative_to(demo).as_posix() in inside
    assert all(records[f"E1:{i:06d}"]["kind"] == "file-in-folder" for i in range(1, len(files) + 1))
    for rid, path in (("E2", archive), ("E3", single), *((("E4", image),) if image else ())):
        assert (records[rid]["kind"], records[rid]["path"], records[rid]["sha256"], records[rid]["size"]) == \
               ("file", str(path.absolute()), sha256sum(path), path.stat().st_size)
        assert records[rid]["mtime"] == iso_from_epoch(path.stat().st_mtime)
    assert len(records) == len(files) + len(evidence)
    assert {r.sha256 for r in result.file_results if r.rel == big.relative_to(demo).as_posix()} == {sha256sum(big)}
    assert verify(tmp_path / "case").ok


def test_a_file_never_read_by_a_worker_is_hashed_by_the_main_process(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the workers did not finish (here: every result dropped) still gets its own SHA-256."""
    from exhunt import api

    folder = c.write_folder(tmp_path / "ev")
    real = api.parse_all
    monkeypatch.setattr(api, "parse_all", lambda *a, **k: [r for r in real(*a, **k) if not r.rel.endswith(".log")])
    hashed_here = counting_hashes(monkeypatch)
    scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    log = next(folder.rglob("*.log"))
    assert hashed_here == [log]
    record = next(r for r in manifest.load(tmp_path / "case") if r.rel.endswith(".log"))
    assert record.sha256 == sha256sum(log)


def test_a_scan_that_dies_while_parsing_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt import api

    folder = c.write_folder(tmp_path / "ev")
    scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    assert (tmp_path / "case" / "manifest.json").exists()

    def dies(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "parse_all", dies)
    with pytest.raises(KeyboardInterrupt):
        scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, resume=True))
    assert not (tmp_path / "case" / "manifest.json").exists(), "no hashes claimed for files not read"
    assert not list((tmp_path / "case" / "store" / "manifest").glob("*.parquet"))


def test_resume_parses_a_file_changed_with_the_same_size_and_mtime(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    options = ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False)
    scan([ev], options)
    logs = sorted(ev.rglob("u_ex*.log"))
    victim, touched = logs[0], logs[1]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    at = data.index(b"GET ")
    data[at:at + 4] = b"PUT "  # same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the hash can tell
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 60))  # new mtime, same bytes
    hashed_here = counting_hashes(monkeypatch)
    again = scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, resume=True))
    parsed = {r.rel for r in again.file_results}
    assert parsed == {victim.relative_to(ev).as_posix(), touched.relative_to(ev).as_posix()}
    every = {p for p in ev.rglob("*") if p.is_file()}
    assert sorted(hashed_here) == sorted(every - {touched}), "files that look unchanged are hashed, once"
    methods = connect(tmp_path / "case" / "store").execute(
        "SELECT count(*) FROM events WHERE method = 'PUT'").fetchone()
    assert methods == (1,)
    assert verify(tmp_path / "case").ok
    hashed_here.clear()
    nothing = scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, resume=True))
    assert nothing.file_results == [] and sorted(hashed_here) == sorted(every)


def _digests(case: Path) -> dict[str, tuple[str | None, str | None]]:
    rows = connect(case / "store").execute("SELECT path, sha1, md5 FROM files").fetchall()
    return {p.rsplit("/", 1)[-1]: (s, m) for p, s, m in rows}


def test_md5_and_sha1_for_pages_not_for_logs_unless_an_ioc_list_holds_them(tmp_path: Path) -> None:
    folder = c.write_folder(tmp_path / "ev")
    log = next(folder.rglob("*.log"))
    page = next(folder.rglob("x.aspx"))
    scan([folder], ScanOptions(out=tmp_path / "plain", jobs=1, quiet=True, html_report=False))
    digests = _digests(tmp_path / "plain")
    assert digests["x.aspx"] == (hashlib.sha1(page.read_bytes()).hexdigest(),  # noqa: S324
                                 hashlib.md5(page.read_bytes()).hexdigest())  # noqa: S324
    assert digests[log.name] == (None, None)

    md5 = hashlib.md5(log.read_bytes()).hexdigest()  # noqa: S324
    iocs = tmp_path / "hashes.txt"
    iocs.write_text(f"{md5}  staged log\n")
    result = scan([folder], ScanOptions(out=tmp_path / "ioc", jobs=1, quiet=True, html_report=False, iocs=[iocs]))
    assert _digests(tmp_path / "ioc")[log.name] == (hashlib.sha1(log.read_bytes()).hexdigest(), md5)  # noqa: S324
    hits = [f for f in result.document.findings if f.check == "ioc.file_hash"]
    assert [e.path for f in hits for e in f.evidence] == [log.relative_to(folder).as_posix()]

    sha256_only = tmp_path / "sha256.txt"
    sha256_only.write_text(f"{sha256sum(log)}  staged log\n")
    result = scan([folder], ScanOptions(out=tmp_path / "sha", jobs=1, quiet=True, html_report=False,
                                        iocs=[sha256_only]))
    assert _digests(tmp_path / "sha")[log.name] == (None, None), "a SHA-256 list needs no other digest"
    assert [f.check for f in result.document.findings if f.check == "ioc.file_hash"] == ["ioc.file_hash"]

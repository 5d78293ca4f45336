"""The custody records made in a process of their own (``parallel.custodian``) are those the scan
process makes itself: the same manifest, inputs and resume state, the same ids and roots for the
findings, the same error for an unreadable root, and nothing lost when that process dies."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from exhunt import __version__, api
from exhunt.errors import EvidenceError
from exhunt.evidence import custody, manifest
from exhunt.parallel import custodian as custodians
from exhunt.parallel import resume
from exhunt.parallel.startmethod import forking
from tests.evidence import collection as c

pytestmark = pytest.mark.skipif(not forking(), reason="the custodian runs beside forked workers only")
KEY = "key-of-this-scan"


def _evidence(tmp_path: Path) -> list[Path]:
    folder = c.write_folder(tmp_path / "ev")
    c.write_7z(tmp_path / "ev.7z", folder)
    (tmp_path / "u_ex210303.log").write_bytes(c.IIS.encode())
    return [folder, tmp_path / "ev.7z", tmp_path / "u_ex210303.log"]


def _case(tmp_path: Path, name: str) -> tuple[Path, Path]:
    case = tmp_path / name
    (case / "store").mkdir(parents=True)
    return case, case / "store"


def _in_process(tmp_path: Path, work: list[api.HostWork]) -> tuple[custody.RecordedInputs, Path]:
    case, store = _case(tmp_path, "here")
    read: manifest.ReadHashes = {}
    hashed: manifest.PathHashes = {}
    recorded = custody.record_inputs(case, store, work, read, hashed, 1, __version__)
    resume.save(store, resume.fingerprints(work, read, hashed), KEY, resume.listed_stats(work))
    return recorded, case


def _written(case: Path) -> tuple[list[dict], dict[str, list]]:
    records = orjson.loads((case / "manifest.json").read_bytes())["inputs"]
    tables = {t: pq.read_table(case / "store" / t).to_pylist() for t in ("manifest", "inputs", "state")}
    return records, tables


def _through_custodian(work: list[api.HostWork], case: Path, read: manifest.ReadHashes | None = None,
                       kill: str = "") -> custody.RecordedInputs:
    """The records of ``work`` made and written by a custodian. ``kill``: when its process dies
    (before or after it got the listing, or as it starts a step: listing, records, manifest, state)."""
    keeper = custodians.Custodian(die_at=kill if kill in ("listing", "records", "manifest", "state") else "")
    try:
        if kill == "before the listing":
            keeper._pool.submit(os._exit, 9)
        keeper.hold(work)
        if kill == "after the listing":
            keeper._pool.submit(os._exit, 9)
        recorded = keeper.record(case, case / "store", read or {}, {}, 2, __version__, KEY, None)
        _ = recorded.ids
        recorded.wait()
        keeper.finish()
    finally:
        keeper.close()
    return recorded


@pytest.mark.parametrize("given", ["a folder, a 7z of it and a log", "a folder"])
def test_the_custodian_writes_what_the_scan_process_writes(tmp_path: Path, given: str) -> None:
    """A folder and a 7z of it: one path cites two inputs (and gives no resume fingerprint, its
    rows could not be told apart); a folder alone: every file has its fingerprint."""
    evidence = _evidence(tmp_path)
    work = api.plan(evidence if given != "a folder" else evidence[:1], "exch01", tmp_path / "listing")
    here, here_case = _in_process(tmp_path, work)
    case, _ = _case(tmp_path, "there")
    recorded = _through_custodian(work, case)
    assert recorded.ids == here.ids and recorded.roots == here.roots
    assert recorded.manifest == case / "manifest.json"
    assert _written(case) == _written(here_case)
    state = _written(case)[1]["state"]
    if given == "a folder":
        assert len(state) == len(work[0].files) == 3 and {r["key"] for r in state} == {KEY}
    else:
        assert any("," in i for i in recorded.ids.values()) and [r["id"] for r in recorded.roots] == ["E1", "E2", "E3"]


def test_the_custodian_takes_the_workers_hashes_and_hashes_only_containers(tmp_path: Path) -> None:
    """Each file a worker read whole keeps the hash of that one read (here a marker no file has:
    hashed again, the record would show the real one); a container no worker reads is hashed."""
    evidence = _evidence(tmp_path)
    work = api.plan(evidence, "exch01", tmp_path / "listing")
    read: manifest.ReadHashes = {(f.root, f.rel): ("0" * 64, f.size) for w in work for f in w.files
                                 if f.source in manifest.FOLDER_SOURCES or manifest.single_file(w.files) == f}
    case, _ = _case(tmp_path, "case")
    _through_custodian(work, case, read)
    records = {r["id"]: r for r in _written(case)[0]}
    assert {r["sha256"] for i, r in records.items() if i.startswith("E1:")} == {"0" * 64}
    assert records["E3"]["sha256"] == "0" * 64  # the log given alone: its one read
    assert records["E2"]["sha256"] == manifest.sha256_file(evidence[1])[0]  # the 7z: hashed there


def test_an_unreadable_root_is_the_scan_processs_error(tmp_path: Path) -> None:
    """A log given alone and gone after the listing: the records fail as in the scan process
    (``cannot read evidence``), when the findings ask for their ids; nothing is written."""
    log = tmp_path / "u_ex210303.log"
    log.write_bytes(c.IIS.encode())
    work = api.plan([log], "exch01", tmp_path / "listing")
    log.unlink()
    case, store = _case(tmp_path, "case")
    keeper = custodians.Custodian()
    try:
        keeper.hold(work)
        recorded = keeper.record(case, store, {}, {}, 2, __version__, KEY, None)
        with pytest.raises(EvidenceError, match="cannot read evidence"):
            _ = recorded.ids
        with pytest.raises(EvidenceError):
            recorded.wait()
    finally:
        keeper.close()
    assert not (case / "manifest.json").exists() and not (store / "state").exists()


@pytest.mark.parametrize("dies", ["before the listing", "listing", "after the listing", "records", "manifest",
                                  "state"])
def test_a_custodian_that_dies_loses_nothing(tmp_path: Path, dies: str) -> None:
    """The process killed (out of memory, a signal) at any point: the scan process makes the same
    records, manifest and resume state."""
    work = api.plan(_evidence(tmp_path), "exch01", tmp_path / "listing")
    here, here_case = _in_process(tmp_path, work)
    case, _ = _case(tmp_path, "there")
    recorded = _through_custodian(work, case, kill=dies)
    assert recorded.ids == here.ids and recorded.roots == here.roots
    assert _written(case) == _written(here_case)


def test_a_failed_resume_state_reaches_the_scan(tmp_path: Path) -> None:
    """An error writing the resume state (here its folder is a file) is raised by ``finish``."""
    work = api.plan(_evidence(tmp_path)[:1], "exch01", tmp_path / "listing")
    case, store = _case(tmp_path, "case")
    (store / "state").write_bytes(b"")
    keeper = custodians.Custodian()
    try:
        keeper.hold(work)
        keeper.record(case, store, {}, {}, 2, __version__, KEY, None).wait()
        with pytest.raises(OSError):
            keeper.finish()
    finally:
        keeper.close()
    assert (case / "manifest.json").exists()


def test_a_scan_saves_its_document_after_the_manifest_and_the_resume_state(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With a custodian: the manifest and the resume state are written (and their errors raised)
    before findings.json is, as in the scan process (a full disk leaves no findings.json)."""
    order: list[str] = []
    real_save, real_finish = api.save_document, custodians.Custodian.finish

    def save(case: Path, document: object) -> Path:
        order.append(f"document, manifest {(case / 'manifest.json').exists()}")
        return real_save(case, document)  # type: ignore[arg-type]

    def finish(self: custodians.Custodian) -> None:
        real_finish(self)
        order.append("resume state")

    monkeypatch.setattr(api, "save_document", save)
    monkeypatch.setattr(custodians.Custodian, "finish", finish)
    api.scan(_evidence(tmp_path), api.ScanOptions(out=tmp_path / "case", host="exch01", jobs=2, quiet=True,
                                                  progress=False, html_report=False))
    assert order == ["resume state", "document, manifest True"]
    assert (tmp_path / "case" / "store" / "state" / "all.parquet").exists()


@pytest.mark.parametrize("jobs", [2, 1])
def test_a_manifest_that_cannot_be_written_stops_the_scan_before_its_document(tmp_path: Path, jobs: int) -> None:
    """Its error is the scan's (here its temporary file's name is taken by a folder), and no
    findings.json claims hashes that no manifest holds."""
    case = tmp_path / "case"
    (case / "manifest.json.tmp").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        api.scan(_evidence(tmp_path), api.ScanOptions(out=case, host="exch01", jobs=jobs, quiet=True,
                                                      progress=False, html_report=False))
    assert not (case / "findings.json").exists() and not (case / "manifest.json").exists()


def test_a_resume_state_the_custodian_could_not_write_is_written_here(tmp_path: Path) -> None:
    """The process gone after the manifest: ``finish`` writes the same resume state itself."""
    work = api.plan(_evidence(tmp_path)[:1], "exch01", tmp_path / "listing")
    _, here_case = _in_process(tmp_path, work)
    case, store = _case(tmp_path, "there")
    keeper = custodians.Custodian()
    try:
        keeper.hold(work)
        keeper._save_state(store, {}, {}, 1, KEY, None)
    finally:
        keeper.close()
    assert _written(here_case)[1]["state"] == pq.read_table(store / "state").to_pylist()


def test_evidence_given_relative_resolves_where_the_scan_process_works(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The custodian's process started in another folder (its first task came from there): a root
    given relative to the scan's folder now is recorded and hashed as there."""
    folder = c.write_folder(tmp_path / "ev")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    keeper = custodians.Custodian()
    try:
        monkeypatch.chdir(elsewhere)
        keeper._pool.submit(int).result()  # the process exists, started from this folder
        monkeypatch.chdir(tmp_path)
        work = api.plan([Path("ev")], "exch01", tmp_path / "listing")
        keeper.hold(work)
        case, store = _case(tmp_path, "case")
        recorded = keeper.record(case, store, {}, {}, 2, __version__, KEY, None)
        recorded.wait()
        keeper.finish()
    finally:
        keeper.close()
    records = {r["id"]: r for r in _written(case)[0]}
    assert records["E1"]["evidence"] == "ev" and records["E1"]["path"] == str(folder)
    assert records["E1"]["sha256"] == manifest.tree_hash(
        (r["rel"], r["sha256"]) for i, r in records.items() if i.startswith("E1:"))
    assert len(records) == 1 + len(work[0].files)


def test_only_a_local_pool_of_forked_workers_has_a_custodian() -> None:
    assert custodians.wanted(2, None, 2)
    assert not custodians.wanted(1, None, 2)  # --jobs 1 keeps to one core (or the memory budget does)
    assert not custodians.wanted(2, "tcp://127.0.0.1:8786", 2)
    assert not custodians.wanted(2, None, 1)  # one file: no pool either


def test_a_scan_with_workers_records_through_its_custodian(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``--jobs 2``: the custodian makes the records (the scan process never builds them) and the
    case verifies; ``--jobs 1`` makes them in the scan process, the same."""
    from exhunt.evidence.verify import verify

    built: list[int] = []
    real = manifest.build
    monkeypatch.setattr(manifest, "build", lambda *a, **k: (built.append(os.getpid()), real(*a, **k))[1])
    evidence = _evidence(tmp_path)
    cases = {}
    for jobs in (2, 1):
        built.clear()
        out = tmp_path / f"case{jobs}"
        api.scan(evidence, api.ScanOptions(out=out, host="exch01", jobs=jobs, quiet=True, progress=False))
        assert built == ([] if jobs == 2 else [os.getpid()])
        assert verify(out).ok
        cases[jobs] = [{k: v for k, v in r.items() if k != "path"} for r in _written(out)[0]]
    assert cases[2] == cases[1]

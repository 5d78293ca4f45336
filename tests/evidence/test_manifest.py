"""Chain of custody: the manifest is written before analysis, findings cite it, verify sees one byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exhunt.cli import main
from exhunt.evidence.verify import verify
from exhunt.parallel.meanwhile import Meanwhile
from tests.evidence import collection as c


@pytest.fixture
def case(tmp_path: Path) -> Path:
    folder = c.write_folder(tmp_path / "ev")
    c.write_7z(tmp_path / "ev.7z", folder)
    (tmp_path / "u_ex210303.log").write_bytes(c.IIS.encode())
    out = tmp_path / "case"
    rc = main(["scan", str(folder), str(tmp_path / "ev.7z"), str(tmp_path / "u_ex210303.log"),
               "--host", "exch01", "--out", str(out), "--jobs", "1", "--quiet"])
    assert rc == 1
    return out


def test_manifest_records_every_input_and_findings_cite_it(case: Path) -> None:
    manifest = json.loads((case / "manifest.json").read_text())
    ids = {r["id"]: r for r in manifest["inputs"]}
    assert {"E1", "E2", "E3"} <= set(ids) and ids["E1"]["kind"] == "folder"
    assert len([i for i in ids if i.startswith("E1:")]) == len(c.FILES)
    assert all(len(r["sha256"]) == 64 and r["mtime"] for r in manifest["inputs"])
    doc = json.loads((case / "findings.json").read_text())
    assert [i["id"] for i in doc["inputs"]] == ["E1", "E2", "E3"]
    shell = next(f for f in doc["findings"] if f["check"] == "webshell.placement")
    shell_id = next(r["id"] for r in manifest["inputs"] if r["rel"].endswith("x.aspx"))
    assert {e["input"] for e in shell["evidence"]} == {f"{shell_id},E2"}  # same path in folder and 7z
    assert verify(case).ok


@pytest.mark.parametrize("target", ["folder-file", "7z", "single", "added", "removed"])
def test_verify_detects_a_one_byte_change(case: Path, target: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = case.parent
    path = {"folder-file": root / "ev" / next(iter(c.FILES)), "7z": root / "ev.7z",
            "single": root / "u_ex210303.log", "added": root / "ev" / "new.txt",
            "removed": root / "ev" / next(iter(c.FILES))}[target]
    if target == "added":
        path.write_bytes(b"x")
    elif target == "removed":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    result = verify(case)
    assert len(result.changes) == 1
    capsys.readouterr()
    assert main(["verify", str(case)]) == 1
    out = capsys.readouterr().out
    assert path.name in out and ("CHANGED" in out or "ADDED" in out or "MISSING" in out)


def test_verify_without_a_case_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    assert "no manifest" in capsys.readouterr().err


def test_split_image_segments_with_glob_characters_in_the_name(tmp_path: Path) -> None:
    from exhunt.evidence.manifest import image_segments

    for name in ("srv[1].E01", "srv[1].E02", "srv[1].E03", "srv1.E02"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_segments(tmp_path / "srv[1].E01")] == ["srv[1].E02", "srv[1].E03"]


@pytest.mark.parametrize("edit", ["emptied", "one hash"])
def test_verify_sees_an_edited_manifest_json(case: Path, edit: str) -> None:
    """manifest.json is checked against the store's copy: emptied, it used to verify "0 inputs, ok"."""
    path = case / "manifest.json"
    doc = json.loads(path.read_text())
    if edit == "emptied":
        doc["inputs"] = []
    else:
        doc["inputs"][1]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
    result = verify(case)
    assert not result.ok and any(c.path == "manifest.json" for c in result.changes)


def test_input_ids_of_some_paths_are_those_of_all(case: Path) -> None:
    from exhunt.evidence.manifest import input_ids

    every = input_ids(case / "store")
    some = sorted({p for _, p in every})[:2] + ["not/an/input.txt"]
    assert input_ids(case / "store", some) == {k: v for k, v in every.items() if k[1] in some}
    assert len(every) > 2 and input_ids(case / "store", []) == {}


def test_recorded_inputs_equal_what_the_store_gives_back(tmp_path: Path) -> None:
    """The scan cites findings and lists the document's roots from what record_inputs kept in memory;
    a saved case's assess reads the store's tables: both must give the same ids and roots (a folder
    and a 7z of it, so one path cites two inputs)."""
    from exhunt import __version__, api
    from exhunt.evidence import custody, manifest

    folder = c.write_folder(tmp_path / "ev")
    c.write_7z(tmp_path / "ev.7z", folder)
    case = tmp_path / "case"
    store = case / "store"
    store.mkdir(parents=True)
    work = api.plan([folder, tmp_path / "ev.7z"], "exch01", store)
    recorded = custody.record_inputs(case, store, work, {}, {}, 1, __version__)
    assert recorded.ids == manifest.input_ids(store) and any("," in i for i in recorded.ids.values())
    assert recorded.roots == custody.root_inputs(store) and [r["id"] for r in recorded.roots] == ["E1", "E2"]


def test_the_manifest_written_on_a_thread_is_the_same_and_its_error_reaches_wait(tmp_path: Path) -> None:
    """The scan writes the manifest on a thread while its detections run (``write_later``); what
    it writes equals the direct write, and a failed write is raised by ``wait``, not lost."""
    from concurrent.futures import ThreadPoolExecutor

    from exhunt import __version__, api
    from exhunt.evidence import custody, manifest

    folder = c.write_folder(tmp_path / "ev")
    work = api.plan([folder], "exch01", tmp_path / "listing")
    written = {}
    for name in ("direct", "thread"):
        case = tmp_path / name
        (case / "store").mkdir(parents=True)
        with ThreadPoolExecutor(1) as pool:
            recorded = custody.record_inputs(case, case / "store", work, {}, {}, 1, __version__,
                                             write_later=pool.submit if name == "thread" else None)
            recorded.wait()
        assert recorded.manifest == case / "manifest.json"
        written[name] = (recorded.ids, recorded.roots, manifest.input_ids(case / "store"),
                         [(r.rel, r.sha256, r.size) for r in manifest.load(case)])
    assert written["thread"] == written["direct"]
    with ThreadPoolExecutor(1) as pool:
        recorded = custody.record_inputs(tmp_path / "gone", tmp_path / "gone" / "store", work, {}, {}, 1,
                                         __version__, write_later=pool.submit)
        with pytest.raises(OSError):
            recorded.wait()


def test_a_manifest_prepared_during_the_parse_equals_one_built_after(tmp_path: Path) -> None:
    """The scan makes the hash-free part of the manifest on a thread while its workers parse
    (``custody.prepare_inputs``): the records and inputs rows must be those built in one go."""
    from exhunt import api
    from exhunt.evidence import custody, manifest

    folder = c.write_folder(tmp_path / "ev")
    c.write_7z(tmp_path / "ev.7z", folder)
    (tmp_path / "u_ex210303.log").write_bytes(c.IIS.encode())
    work = api.plan([folder, tmp_path / "ev.7z", tmp_path / "u_ex210303.log"], "exch01", tmp_path / "store")
    hosts = [(w.host, w.evidence, w.files) for w in work]
    at_once = manifest.build(hosts, {}, {})
    meanwhile = Meanwhile()
    future = custody.prepare_inputs(work, meanwhile.add)
    meanwhile.finish()
    prepared = future.result()
    assert set(prepared.folders) == {1} and all(r["sha256"] == "" for *_, r in prepared.folders[1])
    assert manifest.build(hosts, {}, {}, prepared=prepared) == at_once
    assert len(at_once[0]) == 3 + len(c.FILES) and {r["input"] for r in at_once[1]} >= {"E2", "E3"}


def test_verify_does_not_call_an_input_the_scan_could_not_read_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A file the scan could not open has no hash in the manifest: verify had counted it among the
    "inputs unchanged since the scan" whatever its bytes are now."""
    from exhunt import worker

    folder = c.write_folder(tmp_path / "ev")
    target = next(iter(c.FILES))
    real = worker.open_hashing

    def refuse(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if file.rel == target:
            raise PermissionError(13, "Permission denied")
        return real(file, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(worker, "open_hashing", refuse)
        main(["scan", str(folder), "--host", "exch01", "--out", str(tmp_path / "case"), "--jobs", "1", "--quiet"])
    (folder / target).write_bytes(b"other bytes since the scan")
    result = verify(tmp_path / "case")
    assert [(ch.what, ch.path.endswith(target)) for ch in result.unverified] == [("unverified", True)]
    assert result.checked == len(c.FILES) - 1
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "case")]) == 0
    out = capsys.readouterr().out
    assert f"verified: {len(c.FILES) - 1} inputs unchanged" in out and "1 not verifiable" in out
    assert "UNVERIFIED" in out and target in out

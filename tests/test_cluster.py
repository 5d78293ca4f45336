"""``--scheduler``: the demo scanned on a 2-worker Dask LocalCluster equals the local pool's scan."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.cluster import DaskExecutor, check_worker
from exhunt.demo import DemoSpec, generate
from exhunt.demo.attack import PLANTED
from exhunt.errors import MissingExtraError, UsageError
from exhunt.events.schema import TABLES
from exhunt.events.store import connect

distributed = pytest.importorskip("distributed")

DERIVED = ("hits", "findings")  # written by detections after the parse


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        yield local


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "evidence"
    generate(root, DemoSpec(per_day=600))
    broken = root / "C/inetpub/logs/LogFiles/W3SVC2/u_ex210302.log"  # warnings rows to compare too
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"#Fields: date time c-ip cs-uri-stem\r\n2021-03-02 10:00:00 10.0.0.1\r\n\xff\xfe garbage\r\n")
    return root


def _tables(store: Path) -> dict[str, list[tuple]]:
    """Every store table, rows in a canonical order (parts differ: batching follows the pool size)."""
    con = connect(store, DERIVED)
    out = {}
    for name in (*TABLES, *DERIVED):
        columns = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
        keep = ", ".join(f'"{c}"' for c in columns)
        out[name] = con.execute(f"SELECT {keep} FROM {name} ORDER BY ALL").fetchall()
    con.close()
    return out


def _document(doc) -> dict:  # type: ignore[no-untyped-def]
    data = doc.to_dict()
    data.pop("generated_at")
    data["rules"]["triage"]["pivot"].pop("seconds")  # the pivot pass's wall time
    return data


@pytest.mark.slow
def test_dask_scan_equals_local_pool(cluster, evidence: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    local = scan([evidence], ScanOptions(out=tmp_path / "local", host="EXCH01", jobs=2, quiet=True))
    remote = scan([evidence], ScanOptions(out=tmp_path / "dask", host="EXCH01", quiet=True,
                                          scheduler=cluster.scheduler_address))
    checks = {f.check for f in remote.document.findings}
    assert {check for _, check in PLANTED} <= checks
    assert _document(remote.document)["findings"] == _document(local.document)["findings"]
    assert _document(remote.document) == _document(local.document)
    assert [r.rel for r in remote.file_results] == [r.rel for r in local.file_results]
    local_tables, remote_tables = _tables(tmp_path / "local" / "store"), _tables(tmp_path / "dask" / "store")
    for name in ("events", "files", "warnings", "host_facts"):
        assert remote_tables[name], f"{name} is empty: nothing to compare"
    assert remote_tables == local_tables
    # the rules reached the workers through the scattered payload, keyed by digest
    with distributed.Client(cluster) as client:
        runs = [client.submit(_loaded_rules, pure=False, workers=[w]) for w in client.scheduler_info()["workers"]]
        loaded = set(client.gather(runs)) - {None}
    assert len(loaded) == 1 and len(next(iter(loaded))) == 64


def _loaded_rules() -> str | None:
    """On the worker's task thread, where its scanner lives (client.run would ask another thread)."""
    from exhunt import cluster as module

    return module.loaded_digest()


def test_relative_paths_are_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="absolute paths"):
        DaskExecutor("tcp://127.0.0.1:9", (None, 0, False), tmp_path, ["relative/evidence"])


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"exhunt\[cluster\]"):
        DaskExecutor("tcp://127.0.0.1:9", (None, 0, False), tmp_path, [str(tmp_path)])


def test_worker_check_reports_what_it_cannot_see(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    marker.write_text("token", encoding="utf-8")
    assert check_worker(str(marker), "token", [str(tmp_path)])["store"] is True
    report = check_worker(str(marker), "other", [str(tmp_path / "absent")])
    assert report["store"] is False and report["missing"] == [str(tmp_path / "absent")]


def test_unreachable_scheduler_is_a_usage_error(evidence: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exhunt.cluster.CONNECT_TIMEOUT", "1s")
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler"):
        scan([evidence], ScanOptions(out=tmp_path / "c", quiet=True, scheduler="tcp://127.0.0.1:9"))

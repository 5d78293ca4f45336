"""A file that never finishes parsing is killed after --file-timeout, reported, and the scan goes on."""

from __future__ import annotations

from pathlib import Path

from exhunt.api import ScanOptions, scan
from exhunt.events.store import connect

LOG = (b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time cs-method cs-uri-stem "
       b"c-ip sc-status\r\n2021-03-03 01:02:03 GET /owa/ 192.0.2.1 200\r\n")


def test_hung_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    for name in ("u_ex1.log", "u_ex2_hang.log", "u_ex3.log"):
        (ev / name).write_bytes(LOG)
    options = ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False, file_timeout=2,
                          worker_hook="tests.parallel.hang_hook:install")
    result = scan([ev], options)
    con = connect(tmp_path / "case" / "store")
    assert sorted(r[0] for r in con.execute("SELECT DISTINCT path FROM events").fetchall()) == [
        "u_ex1.log", "u_ex3.log"]
    warnings = con.execute("SELECT path, message FROM warnings").fetchall()
    assert [(p, "--file-timeout of 2 s" in m) for p, m in warnings] == [("u_ex2_hang.log", True)]
    assert sorted(r.rel for r in result.file_results) == ["u_ex1.log", "u_ex2_hang.log", "u_ex3.log"]
    assert result.document.hosts[0].coverage.warnings == 1


def test_a_hung_file_in_a_pivot_batch_loses_only_itself(tmp_path: Path) -> None:
    """The pivot pass's batch minus its hung file runs again as a pivot part, and the hung file's
    warning goes to a pivot part too (every run deletes and redoes those, --resume included)."""
    from exhunt.evidence.base import EvidenceFile
    from exhunt.parallel.pool import _timed_out, _without
    from exhunt.parallel.units import PIVOT_PREFIX, PivotUnit

    files = tuple(EvidenceFile("directory", str(tmp_path), f"u_ex{i}.log", 100) for i in (1, 2, 3))
    unit = PivotUnit("h1", files, ("iis", "iis", "iis"), PIVOT_PREFIX + "batch")
    rest = _without(unit, "u_ex2.log")
    assert isinstance(rest, PivotUnit)
    assert [f.rel for f in rest.files] == ["u_ex1.log", "u_ex3.log"] and rest.artifacts == ("iis", "iis")
    assert rest.part.startswith(PIVOT_PREFIX) and rest.part != unit.part
    part, result = _timed_out(unit, "u_ex2.log", 2, tmp_path / "store")
    assert part.startswith(PIVOT_PREFIX) and result.files[0].warnings == 1
    assert list((tmp_path / "store").glob(f"warnings/host=h1/{PIVOT_PREFIX}*.parquet"))
    assert _without(PivotUnit("h1", files[:1], ("iis",), PIVOT_PREFIX + "one"), "u_ex1.log") is None


def test_a_lone_hung_file_is_skipped_too(tmp_path: Path) -> None:
    """One file is one unit: with --jobs 2 it still runs in a worker, under the watchdog (a single
    suspicious EVTX given alone is the common case a parser can spin on), not in the scan process."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "u_ex2_hang.log").write_bytes(LOG)
    options = ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False, file_timeout=2,
                          worker_hook="tests.parallel.hang_hook:install")
    result = scan([ev / "u_ex2_hang.log"], options)
    warnings = connect(tmp_path / "case" / "store").execute("SELECT path, message FROM warnings").fetchall()
    assert [(p, "--file-timeout of 2 s" in m) for p, m in warnings] == [("u_ex2_hang.log", True)]
    assert [r.rel for r in result.file_results] == ["u_ex2_hang.log"]

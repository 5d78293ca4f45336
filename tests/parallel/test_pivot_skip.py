"""The pivot pass skips a log whose raw bytes hold no indicator before parsing it; a log that may
hold one (a match anywhere, across read chunks, on a last line without a line end, UTF-16) is
parsed as before."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from exhunt.artifacts import w3c_fast
from exhunt.artifacts.linefilter import compile_patterns
from exhunt.detections.checks import CHECKS
from exhunt.detections.prefilter import build
from exhunt.parallel import units

pytest.importorskip("hyperscan", reason="hyperscan is not installed")

LINE = b"2021-03-03 01:00:00 10.0.0.5 GET /owa/ - 443 - 10.9.9.9 Mozilla/5.0 - 200 0 0 5\r\n"


@pytest.fixture
def pivot_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    plan, _ = build("triage", CHECKS)
    assert plan is not None
    monkeypatch.setattr(w3c_fast, "TRIAGE", replace(plan, pivot=compile_patterns([r"203\.0\.113\.77"]).blob))
    monkeypatch.setattr(w3c_fast, "CHUNK", 256)  # several reads per file: matches across read boundaries


def _may(data: bytes) -> bool:
    """The gate's answer, the same over the raw file the pass opens (a directory's member), an
    in-memory stream and a buffered one (archive members); each left at its start."""
    import tempfile

    answers = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "u_ex210303.log"
        path.write_bytes(data)
        with open(path, "rb", buffering=0) as raw:
            answers.append(units._may_hold_indicator(raw))
            assert raw.tell() == 0
    for stream in (io.BytesIO(data), io.BufferedReader(io.BytesIO(data))):
        answers.append(units._may_hold_indicator(stream))
        assert stream.tell() == 0
    assert len(set(answers)) == 1, answers
    return answers[0]


@pytest.mark.usefixtures("pivot_plan")
def test_only_logs_holding_an_indicator_are_parsed() -> None:
    attack = LINE.replace(b"10.9.9.9", b"203.0.113.77")
    assert not _may(LINE * 40)
    for at in range(0, 40, 7):  # the indicator's line anywhere, read boundaries anywhere in it
        assert _may(LINE * at + attack + LINE * (40 - at))
    assert _may(LINE * 40 + attack.rstrip(b"\r\n"))  # a last line without its line end
    assert _may(LINE * 3 + b"x" * 600 + attack + LINE)  # a line longer than a read chunk
    assert _may((LINE * 3 + attack).decode().encode("utf-16"))  # transcoded before the pass: parsed


def test_without_a_pivot_plan_every_log_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w3c_fast, "TRIAGE", None)
    assert _may(LINE * 3)


def test_the_pass_stores_the_same_rows_with_and_without_the_skip(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.api import ScanOptions, scan
    from exhunt.demo import DemoSpec, generate

    generate(tmp_path / "evidence", DemoSpec(days=2, per_day=300))
    seen: list[bool] = []
    real = units._may_hold_indicator

    def spy(stream):  # type: ignore[no-untyped-def]
        seen.append(real(stream))
        return seen[-1]

    def pivot_rows(case: Path) -> list[tuple]:
        import duckdb

        return sorted(duckdb.sql(f"SELECT host, path, line FROM read_parquet('{case}/store/events/*/p-*.parquet')")
                      .fetchall())

    options = ScanOptions(host="EXCH01", jobs=1, quiet=True, html_report=False)
    monkeypatch.setattr(units, "_may_hold_indicator", spy)
    skipping = scan([tmp_path / "evidence"], replace(options, out=tmp_path / "skip"))
    monkeypatch.setattr(units, "_may_hold_indicator", lambda stream: True)
    parsing = scan([tmp_path / "evidence"], replace(options, out=tmp_path / "all"))
    assert parsing.document.rules["triage"]["pivot"]["rows"] == skipping.document.rules["triage"]["pivot"]["rows"]
    assert True in seen and False in seen, "the demo's logs: some hold the attacker's indicators, some do not"
    assert skipping.document.rules["triage"]["pivot"]["rows"] > 0
    assert pivot_rows(tmp_path / "skip") == pivot_rows(tmp_path / "all")


@pytest.mark.usefixtures("pivot_plan")
def test_only_ranges_holding_an_indicator_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big log's byte ranges pass the same gate: the range with the attacker's line is parsed and
    stores it, the others are not parsed at all."""
    from exhunt.evidence.base import EvidenceFile
    from exhunt.parallel.ranges import plan_ranges

    attack = LINE.replace(b"10.9.9.9", b"203.0.113.77")
    head = b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time s-ip cs-method " \
           b"cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status " \
           b"sc-substatus sc-win32-status time-taken\r\n"
    path = tmp_path / "u_ex210303.log"
    path.write_bytes(head + LINE * 30 + attack + LINE * 30)
    st = path.stat()
    file = EvidenceFile("directory", str(tmp_path), path.name, st.st_size, st.st_mtime, st.st_ctime, st.st_atime)
    windows = plan_ranges(file, "h", "iis", 1024, 256, " ")
    assert len(windows) > 4
    parsed: list[int] = []
    real = units._parse_range
    monkeypatch.setattr(units, "_parse_range", lambda unit, ctx: (parsed.append(unit.index), real(unit, ctx)))
    rows = 0
    for window in windows:
        unit = units.PivotUnit("h", (file,), ("iis",), f"p-{window.index}", window)
        rows += sum(r.events for r in units.run_unit(unit, str(tmp_path / "store")).files)
    holding = [w.index for w in windows if w.start <= len(head) + 30 * len(LINE) < w.end]
    assert parsed == holding and rows == 1


def test_big_logs_go_in_ranges_only_when_whole_ones_would_leave_a_worker_idle(tmp_path: Path) -> None:
    """As in the first pass: planning ranges reads the whole log in the scan process, while a whole
    log's gate skips it in a worker."""
    from exhunt.evidence.base import EvidenceFile
    from exhunt.parallel.pivot import make_units
    from exhunt.parallel.pool import PoolOptions

    head = b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time s-ip cs-method " \
           b"cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status " \
           b"sc-substatus sc-win32-status time-taken\r\n"
    logs = []
    for n in range(2):
        path = tmp_path / f"u_ex21030{n}.log"
        path.write_bytes(head + LINE * 400)
        st = path.stat()
        logs.append(("h", EvidenceFile("directory", str(tmp_path), path.name, st.st_size, st.st_mtime, st.st_ctime,
                                       st.st_atime), "iis"))
    options = PoolOptions(jobs=2, split_size=4096, chunk=1024)
    assert all(u.window is None for u in make_units(logs, options))  # one log each: even
    assert all(u.window is not None for u in make_units(logs[:1], options))  # one log, two workers
    assert len(make_units(logs[:1], replace(options, scheduler="tcp://x:8786"))) > 4

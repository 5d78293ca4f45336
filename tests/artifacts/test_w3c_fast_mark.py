"""--index full's marking: the web rows stored again in ``selected_events`` are exactly the lines
triage would store, whether a segment took the fast path or the reference parser."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from exhunt.artifacts import w3c_fast
from exhunt.detections import prefilter
from exhunt.detections.checks import CHECKS
from tests.artifacts.test_w3c_fast import EXCHANGE_HEAD, IIS_HEAD, fast_always, reference_only, write
from tests.helpers import parse_paths

IIS_ROWS = [f"2021-03-03 02:{i // 60 % 60:02d}:{i % 60:02d} 10.0.0.1 GET /owa/x{i}.js - 443 - 10.0.0.{i % 200} "
            f"Mozilla/5.0+(X) 200" for i in range(3000)]
EXCHANGE_ROWS = [f"2021-03-03T02:00:{i % 60:02d}Z,15,1,2176,2,/owa/x{i},,,1.2.3.4,200,GET,\"UA, {i}\""
                 for i in range(3000)]
HITS = {  # lines the prefilter selects (web-shell, SSRF and tunnel traffic of the checks)
    IIS_HEAD: [(700, "2021-03-03 02:11:40 10.0.0.1 POST /ecp/y.js - 443 - 203.0.113.7 python-requests 200"),
               (1900, "2021-03-03 02:31:40 10.0.0.1 POST /aspnet_client/shell.aspx - 443 - 203.0.113.7 x 200")],
    EXCHANGE_HEAD: [(1200, "2021-03-03T02:00:00Z,15,1,2176,2,/ecp/y.js,,\"ServerInfo~a]@x:444/ecp\",1,200,POST,u")],
}


def _log(head: str) -> str:
    rows = list(IIS_ROWS if head == IIS_HEAD else EXCHANGE_ROWS)
    for at, line in HITS[head]:
        rows[at] = line
    return head + "\r\n".join(rows) + "\r\n"


def _lines(tmp: Path, root: Path, rel: str) -> tuple[list[int], list[int]]:
    """Line numbers of the rows in ``events`` and in ``selected_events`` after one parse."""
    con = parse_paths(tmp, root, [rel])
    return tuple([r[0] for r in con.execute(f"SELECT line FROM {t} ORDER BY line").fetchall()]  # type: ignore[return-value]
                 for t in ("events", "selected_events"))


@pytest.mark.parametrize("head", [IIS_HEAD, EXCHANGE_HEAD], ids=["iis", "httpproxy"])
def test_marked_rows_are_the_lines_triage_stores(tmp_path: Path, head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = write(tmp_path / "ev", "u_ex1.log" if head == IIS_HEAD else "x.LOG", _log(head).encode())
    plan = prefilter.build("triage", CHECKS)[0]
    assert plan is not None and plan.blob is not None
    monkeypatch.setattr(w3c_fast, "TRIAGE", plan)
    triage = _lines(tmp_path / "triage", tmp_path / "ev", rel)[0]
    monkeypatch.setattr(w3c_fast, "TRIAGE", replace(plan, mark=True))
    marked: list[int] = []
    real = w3c_fast.W3cEngine._mark_rows

    def spy(self: w3c_fast.W3cEngine, table: object, *args: object) -> None:
        marked.append(1)
        real(self, table, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(w3c_fast.W3cEngine, "_mark_rows", spy)
    with fast_always():
        every, fast = _lines(tmp_path / "fast", tmp_path / "ev", rel)
    assert marked, "the fast path was not taken"
    with reference_only():
        every_slow, slow = _lines(tmp_path / "slow", tmp_path / "ev", rel)
    first = len(head.splitlines()) + 1
    assert every == every_slow == list(range(first, first + 3000))
    assert [first + at for at, _ in HITS[head]] == [n for n in triage if n not in (first, first + 2999)]
    assert fast == slow == triage

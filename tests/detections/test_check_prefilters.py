"""Every check's triage prefilter selects the raw line of every text-log row it hits in its
detection cases (tests/detections/cases), written as the parsers read it (caselogs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exhunt.artifacts import linefilter
from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.checks import CHECKS
from exhunt.detections.prefilter import Prefilter, build, from_checks
from exhunt.detections.runner import prepare
from tests.detections.caselogs import TEXT_SOURCES, row_line
from tests.detections.test_cases import BY_ID, load_cases, store_of


def test_every_check_states_a_prefilter() -> None:
    """None would force every text log to be parsed in full: no registered check may need that."""
    assert [c.id for c in CHECKS if c.prefilter is None] == []


@pytest.mark.parametrize("case", load_cases())
def test_hit_lines_match_the_prefilter(case: dict[str, Any]) -> None:
    check = BY_ID[case["check"]]()
    rows = (case.get("rows") or {}).get("events") or []
    numbered = {"events": [{**r, "line": i + 1} for i, r in enumerate(rows)],
                **{k: v for k, v in (case.get("rows") or {}).items() if k != "events"}}
    con = store_of(numbered)
    prepare(con)
    hit_rows = [rows[h.line - 1] for h in check.run(con)
                if h.line and h.path == "case.log" and h.source in TEXT_SOURCES]
    if not hit_rows:
        return
    assert check.prefilter, f"{check.id} hits text-log rows but its prefilter selects none"
    selector = LineSelector(compile_patterns(check.prefilter).blob)
    for row in hit_rows:
        line = row_line(row)
        assert line is not None
        assert selector.spans(line.encode() + b"\r\n"), f"{check.id}: prefilter misses the hit line {line!r}"


def test_prefilter_leaves_benign_lines_out() -> None:
    selector = LineSelector(compile_patterns([p for c in CHECKS for p in (c.prefilter or ())]).blob)
    benign = b"2021-03-03 01:00:00 10.0.0.1 GET /owa/ - 443 - 10.0.0.5 Mozilla/5.0 - 200 0 0 5\r\n"
    attack = b"2021-03-03 01:00:01 10.0.0.1 GET /autodiscover/autodiscover%2Ejson a=1 443 - 1.2.3.4 x - 200 0 0 5\r\n"
    start = len(benign) * 3
    assert selector.spans(benign * 3 + attack + benign) == [(start, start + len(attack))]


def test_full_index_and_unusable_rules_are_reported() -> None:
    plan, report = build("full", CHECKS)
    assert plan is None and report["index"] == "full"

    class NoPrefilter(CHECKS[0]):  # type: ignore[valid-type, misc]
        id = "test.no_prefilter"
        prefilter = None

    plan, report = build("triage", (*CHECKS, NoPrefilter))
    assert plan is not None and plan.blob is None and "*" in plan.full_sources
    assert report["full_parse"][0]["origin"] == "check test.no_prefilter"
    plan, report = build("triage", CHECKS)  # the attacker's rows come from the pivot pass: nothing in full
    assert plan is not None and plan.blob and report["index"] == "triage" and report["patterns"] > 10
    assert report["full_parse"] == [] and not plan.full_sources


def test_the_database_is_compiled_once_and_loaded_from_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path))
    first, _ = build("triage", CHECKS)
    stored = list((tmp_path / "hyperscan").glob("*.hsdb"))
    assert first is not None and first.blob and len(stored) == 1
    compiled = []
    monkeypatch.setattr(linefilter, "_database", lambda p: compiled.append(p))  # a compile would fail now
    second, report = build("triage", CHECKS)
    assert second == first and compiled == [] and report["index"] == "triage"
    stored[0].write_bytes(b"truncated")  # a damaged cache file is compiled again, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path))
    third, _ = build("triage", CHECKS)
    assert third == first and stored[0].read_bytes() == first.blob


def test_a_refused_pattern_is_named_and_the_rest_checked_alone(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path))

    class BadPattern(CHECKS[0]):  # type: ignore[valid-type, misc]
        id = "test.bad_pattern"
        prefilter = ("/owa/auth/x", "(?<=lookbehind)[")

    prefilter = Prefilter()
    from_checks(prefilter, (*CHECKS, BadPattern))
    assert prefilter.compile() is None
    assert "(?<=lookbehind)[" not in prefilter.patterns and "/owa/auth/x" in prefilter.patterns
    assert [(f["source"], f["origin"]) for f in prefilter.full] == [("*", "check test.bad_pattern")]
    assert "does not compile" in prefilter.full[0]["reason"]
    plan, report = build("triage", (*CHECKS, BadPattern))
    assert plan is not None and plan.blob is None and report["index"] == "full"
    assert not list((tmp_path / "hyperscan").glob("*.hsdb"))  # nothing stored for a refused set

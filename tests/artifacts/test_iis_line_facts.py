"""Triage reads the ``owa_build`` fact from OWA resource lines without storing them
(``IisDialect.segment_facts``): the same facts, on the same lines, as the full index's parse."""

from __future__ import annotations

import re
from pathlib import Path

import hyperscan
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.api import ScanOptions, scan
from exhunt.artifacts.iis import IisDialect, owa_build_patterns
from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.artifacts.w3c import Block
from exhunt.events.store import connect

FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
          "cs(Referer) sc-status sc-substatus sc-win32-status time-taken")


def line(n: int, stem: str, status: str = "200", ip: str = "10.0.0.7") -> str:
    return (f"2021-03-03 01:{n // 60 % 60:02d}:{n % 60:02d} 10.0.0.5 GET {stem} - 443 - {ip} "
            f"Mozilla/5.0+(Windows+NT+10.0) - {status} 0 0 15")


def write_log(root: Path) -> Path:
    lines = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
             "#Date: 2021-03-03 00:00:00", f"#Fields: {FIELDS}"]
    for n in range(3000):  # well above the fast path's minimum segment size
        if n == 10:
            lines.append(line(n, "/owa/auth/15.1.2375.7/themes/resources/logo.png", "404"))  # no fact: 4xx
        elif n == 20:
            lines.append(line(n, "/OWA/auth/15.1.2375.7/scripts/premium/owa.js", "-"))  # no status: a fact
        elif n == 30:
            lines.append(line(n, "/ecp/15.1.2375.17/themes/default/logo.png", "x1"))
        elif n == 40:
            lines.append(line(n, "/owa/auth/15.1.2375.7/scripts/x.js"))  # later line of a value seen
        elif n == 50:
            lines.append(line(n, "/owa/auth/15.1.x/scripts/x.js"))  # not a build
        elif n % 7 == 0:
            lines.append(line(n, f"/owa/auth/15.1.2176.{n % 3}/themes/resources/favicon.ico"))
        else:
            lines.append(line(n, "/owa/"))
    path = root / "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    path.parent.mkdir(parents=True)
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def facts_and_rows(case: Path) -> tuple[list[tuple[str, int]], int]:
    con = connect(case / "store")
    try:
        facts = con.execute("SELECT value, line FROM host_facts WHERE fact = 'owa_build' ORDER BY line").fetchall()
        rows = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    assert rows is not None
    return facts, rows[0]


def test_triage_reads_the_build_facts_of_lines_it_does_not_store(tmp_path: Path) -> None:
    write_log(tmp_path / "evidence")
    cases = {}
    for index in ("triage", "full"):
        scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / index, quiet=True, progress=False, index=index,
                                                  host="EXCH01", jobs=1))
        cases[index] = facts_and_rows(tmp_path / index)
    (triage_facts, triage_rows), (full_facts, full_rows) = cases["triage"], cases["full"]
    assert full_facts == [("15.1.2176.0", 5), ("15.1.2176.1", 12), ("15.1.2176.2", 19), ("15.1.2375.7", 25),
                          ("15.1.2375.17", 35)]
    assert triage_facts == full_facts
    assert full_rows == 3000 and triage_rows < 100, "triage stored the OWA resource lines"


FACT_LINE = re.compile(rb"/(?:owa|ecp)/(?:auth/)?15\.[0-9]", re.I)  # the prefilter's fact pattern (iis.py)
STEMS = ["/owa/auth/15.1.2176.2/themes/x.png", "/OWA/15.1.2176.2/scripts/a.js", "/ecp/auth/15.1.2375.7/x.css",
         "/owa/auth/15.1.2375/x.gif", "/owa/auth/15.1.x/x.js", "/owa/", "/x/owa/auth/15.1.2176.9/y.js",
         "/ecp/15.2.1118.12/z.png", "/owa/auth/15.1.2176.12345/a.js"]
REFERERS = ["-", "https://mail/owa/auth/15.1.2176.9/x.css", "https://mail/ecp/15.2.1118.12/", "/owa/15.1.2375/"]
STATUSES = ["200", "304", "404", "500", "-", "x1"]
FIELD_ORDERS = [FIELDS.split(), FIELDS.replace("cs-uri-stem cs-uri-query", "cs-uri-query").split()
                + ["cs-uri-stem"]]


def log_of(rows: list[tuple[str, str, str]], names: list[str]) -> bytes:
    """The lines of ``rows`` (stem, referer, status) in the field order ``names``."""
    lines = []
    for n, (stem, referer, status) in enumerate(rows):
        values = dict(zip(FIELDS.split(), line(n, stem, status).split(" "), strict=True))
        values["cs(Referer)"] = referer
        lines.append(" ".join(values[name] for name in names) + "\r\n")
    return "".join(lines).encode()


def reference_facts(block: Block, data: bytes, seen: set[str]) -> list[tuple[int, str, str, str]]:
    """Every line through ``line_fact``, the first line of each new value: what triage did per line."""
    found, start = [], 0
    for raw in data.splitlines(keepends=True):
        fact = IisDialect().line_fact(block, raw)
        if fact is not None and fact[1] not in seen:
            seen.add(fact[1])
            found.append((start, *fact))
        start += len(raw)
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STEMS), st.sampled_from(REFERERS), st.sampled_from(STATUSES)),
                min_size=1, max_size=40),
       st.sampled_from(FIELD_ORDERS), st.lists(st.sampled_from(["15.1.2176.2", "15.1.2375"]), max_size=2))
def test_segment_facts_match_the_line_by_line_reading(rows: list[tuple[str, str, str]], names: list[str],
                                                      seen: list[str]) -> None:
    """Distinct values of the fact lines, then ``bytes.find`` per new value: the same first lines as
    reading every line (referers holding builds, 4xx lines, a stem after the referer, values seen)."""
    block, data = Block({}, names), log_of(rows, names)
    spans, start = [], 0
    for raw in data.splitlines(keepends=True):
        if FACT_LINE.search(raw):
            spans.append((start, start + len(raw)))
        start += len(raw)
    got = IisDialect().segment_facts(block, data, spans, [("owa_build", v) for v in seen])
    assert got == reference_facts(block, data, set(seen))


VALUE_TEXT = st.text(alphabet="0123456789.", max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUE_TEXT, max_size=5), st.lists(VALUE_TEXT, max_size=8))
def test_the_unknown_value_pattern_matches_exactly_the_values_not_known(tails: list[str], probes: list[str]) -> None:
    """``owa_build_patterns``' first pattern: a build path whose value (text up to ``/``) is none of
    the known ones, and every such path (the lines a new value can come from)."""
    other, singles, values = owa_build_patterns([f"15.{t}" for t in tails])
    assert values == sorted({f"15.{t}" for t in tails}) and len(singles) == len(values)
    database = hyperscan.loadb(compile_patterns([other, *singles], single_from=1).blob, hyperscan.HS_MODE_BLOCK)
    database.scratch = hyperscan.Scratch(database)
    hits: list[int] = []
    for probe in [*tails, *probes]:
        text = f"GET /owa/auth/15.{probe}/x.js 200".encode()
        hits.clear()
        database.scan(text, match_event_handler=lambda pattern, *_: hits.append(pattern))
        assert (0 in hits) == (probe not in tails), probe
        if probe in tails:
            assert hits == [1 + values.index(f"15.{probe}")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STEMS), st.sampled_from(REFERERS), st.sampled_from(STATUSES)),
                min_size=1, max_size=40),
       st.sampled_from(FIELD_ORDERS), st.lists(st.sampled_from(["15.1.2176.2", "15.1.2375", "15.2.1118.12"]),
                                               max_size=3))
def test_segment_facts_from_learnt_values_match_the_line_by_line_reading(
        rows: list[tuple[str, str, str]], names: list[str], known: list[str]) -> None:
    """With values learnt, the prefilter reports where each known value first shows and the lines
    of other values only: the same first lines as reading every line."""
    block, data = Block({}, names), log_of(rows, names)
    other, singles, learnt = owa_build_patterns(known)
    selector = LineSelector(compile_patterns(["never-in-these-lines", other, *singles], single_from=2).blob,
                            fact_from=1, single_from=2)
    _store, spans, firsts = selector.select_firsts(data)
    got = IisDialect().segment_facts(block, data, spans, [], {learnt[i]: end for i, end in firsts.items()})
    assert got == reference_facts(block, data, set())


def test_a_worker_that_learnt_the_builds_reads_the_same_facts(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Learning from the first file on, the second file's facts come from the learnt prefilter: the
    same facts, on the same lines, as the full index."""
    from exhunt.artifacts import w3c_fast

    monkeypatch.setattr(w3c_fast, "LEARN_AFTER", 0)
    monkeypatch.setattr(w3c_fast, "_LEARNT", set())
    monkeypatch.setattr(w3c_fast, "_COMPILED", {})
    first = write_log(tmp_path / "evidence")
    second = first.with_name("u_ex210304.log")
    text = first.read_text().replace("15.1.2176.1/", "15.1.2176.4/").replace("2021-03-03", "2021-03-04")
    second.write_text(text)
    cases = {}
    for index in ("triage", "full"):
        scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / index, quiet=True, progress=False, index=index,
                                                  host="EXCH01", jobs=1))
        con = connect(tmp_path / index / "store")
        try:
            cases[index] = con.execute("SELECT path, value, line FROM host_facts WHERE fact = 'owa_build' "
                                       "ORDER BY path, line").fetchall()
        finally:
            con.close()
    assert {"15.1.2176.0", "15.1.2176.1", "15.1.2375.7"} <= w3c_fast._LEARNT
    assert any(key[2] is not None for key in w3c_fast._COMPILED), "the learnt prefilter was not used"
    assert cases["triage"] == cases["full"]
    assert [v for p, v, _ in cases["full"] if p.endswith("u_ex210304.log")] == [
        "15.1.2176.0", "15.1.2176.4", "15.1.2176.2", "15.1.2375.7", "15.1.2375.17"]


def test_learnt_values_are_used_at_once_when_their_database_is_cached(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Before a process has read many fact lines, learnt values take a database only from the disk
    cache (no compile on the critical path of a small scan)."""
    from exhunt.artifacts import linefilter, w3c_fast
    from exhunt.artifacts.base import ParseContext
    from exhunt.detections.checks import CHECKS
    from exhunt.detections.prefilter import build

    plan, _ = build("triage", CHECKS)
    assert plan is not None and plan.stored
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(w3c_fast, "TRIAGE", plan)
    monkeypatch.setattr(w3c_fast, "LEARN_AFTER", 10 ** 9)
    monkeypatch.setattr(w3c_fast, "_LEARNT", {"15.1.2176.2"})
    monkeypatch.setattr(w3c_fast, "_COMPILED", {})
    ctx = ParseContext(host="h", file=None, writer=None)  # type: ignore[arg-type]

    def selector() -> LineSelector | None:
        return w3c_fast.W3cEngine(ctx, IisDialect()).selector

    assert selector().single_from is None  # type: ignore[union-attr]
    other, singles, _ = owa_build_patterns(["15.1.2176.2"])
    learnt = (*plan.stored, other, *singles)
    assert not linefilter.is_cached(learnt, linefilter.cache_dir(), len(plan.stored) + 1)
    compile_patterns(learnt, linefilter.cache_dir(), len(plan.stored) + 1)
    assert linefilter.is_cached(learnt, linefilter.cache_dir(), len(plan.stored) + 1)
    assert selector().single_from == len(plan.stored) + 1  # type: ignore[union-attr]

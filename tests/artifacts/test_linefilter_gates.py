"""Gated prefilter patterns (linefilter.Gated): a cheap gate nominates lines, the exact pattern
decides. The selection must be exactly the one of the exact patterns alone."""

from __future__ import annotations

import random

import pytest

from exhunt.artifacts.linefilter import Gated, compile_prefilter, exact_pattern, selector_for
from exhunt.detections.checks import CHECKS

pytest.importorskip("hyperscan", reason="hyperscan is not installed")

PAGES = ["/owa/auth/logon.aspx", "/owa/auth/x.aspx", "/ews/exchange.asmx", "/aspnet_client/a.ashx",
         "/ecp/auth/timeoutlogout.aspx", "/owa/plt1.ashx", "/shell.php", "/ecp/default.aspx", "/owa/"]
METHODS = ["POST", "GET", "post"]


def _lines(count: int, seed: int) -> list[bytes]:
    """HttpProxy-like CSV lines and IIS lines mixing pages, methods, quotes and line ends."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        page, method = rng.choice(PAGES), rng.choice(METHODS)
        quote = rng.choice(['', '"'])
        if rng.random() < 0.5:
            line = f'2021-03-03T01:00:00Z,id,15,mail.x.com,{quote}{page}{quote},,Negotiate,true,' \
                   f'{rng.choice([method, "GET"])},{rng.choice(["", "x", method])}'
        else:
            line = f"2021-03-03 01:00:00 10.0.0.1 {method} {page} - 443 - 10.0.0.5 UA - 200 0 0 5"
        out.append(line.encode() + rng.choice([b"\r\n", b"\n"]))
    return out


def _every_check_pattern() -> list[str | Gated]:
    return [p for c in CHECKS for p in (c.prefilter or ())]


def test_some_check_pattern_is_gated() -> None:
    assert any(isinstance(p, Gated) for p in _every_check_pattern())


@pytest.mark.parametrize("seed", range(5))
def test_gated_selection_equals_the_exact_patterns(seed: int) -> None:
    patterns = _every_check_pattern()
    gated = selector_for(patterns)
    exact = selector_for([exact_pattern(p) for p in patterns])
    assert gated.exact is not None and exact.exact is None
    data = b"".join(_lines(400, seed))
    data = data[:-2] if seed % 2 else data  # a last line without its line end
    selected = exact.spans(data)
    assert gated.spans(data) == selected
    assert selected  # the lines do hold selections (POSTs of unusual pages)


def test_every_gate_matches_the_lines_of_its_exact_pattern() -> None:
    for pattern in _every_check_pattern():
        if not isinstance(pattern, Gated):
            continue
        gate, exact = selector_for([pattern.gate]), selector_for([pattern.exact])
        data = b"".join(_lines(600, 7))
        assert set(exact.spans(data)) <= set(gate.spans(data)), pattern.exact[:60]


def test_a_gate_without_its_exact_pattern_selects_nothing() -> None:
    selector = selector_for([Gated("post", "post /evil\\.aspx")])
    line = b"2021-03-03 01:00:00 POST /owa/auth/logon.aspx x\r\n"
    evil = b"2021-03-03 01:00:01 POST /evil.aspx x\r\n"
    assert selector.spans(line * 3) == []
    assert selector.spans(line + evil + line) == [(len(line), len(line) + len(evil))]


def test_a_gate_that_is_also_a_stored_pattern_needs_no_second_database() -> None:
    compiled = compile_prefilter(["post", Gated("post", "post /evil\\.aspx")])
    assert compiled.gates is None
    compiled = compile_prefilter(["get", Gated("post", "post /evil\\.aspx")], facts=["/owa/15"])
    assert compiled.gates is not None and compiled.gates.first == 2 and compiled.fact_from == 1

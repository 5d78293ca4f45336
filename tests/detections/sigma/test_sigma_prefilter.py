"""Sigma web rules become triage patterns (AND: one child's literals, OR: all children's); a rule
without literals makes IIS and HttpProxy logs parsed in full, and the report names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.prefilter import Prefilter
from exhunt.detections.sigma.prefilter import from_sigma
from tests.conftest import shared_path

RULE = """
title: {title}
id: 3f1d2c4b-0000-4000-8000-00000000000{n}
status: test
logsource: {{category: webserver}}
detection:
{detection}
level: high
"""


def _prefilter(tmp_path: Path, detection: str, n: int = 1) -> Prefilter:
    path = tmp_path / f"rule{n}.yml"
    path.write_text(RULE.format(title=f"rule {n}", n=n, detection=detection), encoding="utf-8")
    prefilter = Prefilter()
    from_sigma(prefilter, [path])
    return prefilter


def test_and_takes_one_child_or_takes_all(tmp_path: Path) -> None:
    detection = """  sel:
    cs-method: POST
    cs-uri-stem|contains: '/owa/auth/evil.aspx'
  other:
    cs-user-agent|contains: ['Python-urllib', 'ExchangeShell Agent']
  condition: sel or other"""
    prefilter = _prefilter(tmp_path, detection)
    assert not prefilter.full
    selector = LineSelector(compile_patterns(list(prefilter.patterns)).blob)
    assert selector.spans(b"x GET /owa/auth/evil%2Easpx - 200\n")  # the longest literal of the AND, encoded
    assert selector.spans(b"x GET / - 200 ExchangeShell+Agent\n")  # IIS writes '+' for a space
    assert not selector.spans(b"x POST /owa/auth/logon.aspx - 200 Mozilla\n")


def test_rule_without_literals_forces_a_full_parse(tmp_path: Path) -> None:
    detection = """  sel:
    sc-status: 500
  filter:
    cs-uri-stem|contains: '/owa/'
  condition: sel and not filter"""
    prefilter = _prefilter(tmp_path, detection, 2)
    assert {f["source"] for f in prefilter.full} == {"iis", "httpproxy"}
    assert "rule 2" in prefilter.full[0]["origin"] and "no text" in prefilter.full[0]["reason"]


def test_sigmahq_web_rules_all_give_patterns() -> None:
    rules = shared_path("rules", "sigma")
    if not rules.exists():
        pytest.skip(f"shared SigmaHQ rules absent ({rules})")
    prefilter = Prefilter()
    from_sigma(prefilter, [rules])
    assert len(prefilter.patterns) > 20
    selector = LineSelector(compile_patterns(list(prefilter.patterns)).blob)
    line = b"2021-08-10 01:00:00 10.0.0.1 GET /autodiscover/autodiscover.json @foo.com/mapi/nspi/?&Email=x 443\n"
    assert selector.spans(line)

"""Sigma web rules become triage patterns (AND: one child's literals, OR: all children's); a rule
without literals makes IIS and HttpProxy logs parsed in full, and the report names it."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from exhunt import api
from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.prefilter import Prefilter
from exhunt.detections.sigma.prefilter import from_sigma
from tests.conftest import shared_path
from tests.detections.caselogs import write_case_logs
from tests.helpers import evtx_respelled

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


@pytest.mark.parametrize(("detection", "line"), [
    ("  sel:\n    cs-user-agent|contains: 'evil\"ua'\n  condition: sel",  # a CSV field's quote is doubled
     b'2021-03-03T02:10:01.000Z,rid,15,Owa,/owa/,"evil""ua/1.0",198.51.100.9\n'),
    ("  sel:\n    cs-uri-query|contains: 'zz.php\\?cmd='\n  condition: sel",  # IIS: stem, space, query
     b"2021-03-03 02:10:01 10.0.0.5 GET /site/zz.php cmd=whoami 443 - 198.51.100.9 curl 200 0 0 5\n"),
    ("  sel:\n    cs-uri-query|contains: 'zz.php\\?cmd='\n  condition: sel",  # HttpProxy: stem, comma, query
     b"2021-03-03T02:10:01.000Z,rid,15,Owa,/site/zz.php,cmd=whoami,198.51.100.9\n"),
    ("  sel:\n    cs-uri-query|contains: 'kitsune='\n  condition: sel",  # U+212A, %-encoded, SQL takes for k
     b"2021-03-03 02:10:01 10.0.0.5 GET /site/x %E2%84%AAITSUNE=1 443 - 198.51.100.9 curl 200 0 0 5\n"),
    ("  sel:\n    cs-uri-query|contains: 'Kitsune='\n  condition: sel",  # another case's %-code
     b"2021-03-03 02:10:01 10.0.0.5 GET /site/x %6bitsune=1 443 - 198.51.100.9 curl 200 0 0 5\n"),
], ids=["doubled-quote", "iis-query", "httpproxy-query", "encoded-kelvin-sign", "encoded-other-case"])
def test_a_literal_is_found_as_the_raw_line_writes_it(tmp_path: Path, detection: str, line: bytes) -> None:
    """The engine matches the decoded row; the prefilter must pass the raw line that row came from."""
    selector = LineSelector(compile_patterns(list(_prefilter(tmp_path, detection, 3).patterns)).blob)
    assert selector.spans(line)


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


WINDOWS_RULE = """
title: {title}
id: 3f1d2c4b-0000-4000-8000-0000000001{n:02d}
status: test
logsource: {logsource}
detection:
{detection}
level: high
"""


PROCESS = "{category: process_creation, product: windows}"
WHOAMI = "Lateral Movement/LM_wmiexec_impacket_sysmon_whoami.evtx"


@pytest.mark.parametrize(("sample", "logsource", "detection", "respell"), [
    ("Credential Access/MSSQL_multiple_failed_logon_EventID_18456.evtx", "{product: windows, service: application}",
     "  keywords: ['login provided.  [CLIENT:']\n  condition: keywords", None),  # across two unnamed <Data> values
    ("AutomatedTestingTools/Malware/sideloading_injection_persistence_run_key.evtx", PROCESS,
     "  sel: {'CommandLine|re': 'smart[[:alpha:]]creen\\.exe'}\n  condition: sel", None),  # an RE2 POSIX class
    # the events' text spelled with what DuckDB's caseless matching takes for a letter (exhunt.sqlfold):
    # lower() folds U+0130 to i; RE2's (?i) takes the long s for s
    (WHOAMI, PROCESS, "  sel: {'CommandLine|contains': 'whoami'}\n  condition: sel", ("whoami", "whoam\u0130")),
    (WHOAMI, PROCESS, "  sel: {'Description|re|i': 'command processor'}\n  condition: sel",
     ("Processor", "Proce\u017f\u017for")),
], ids=["keyword-across-values", "re2-posix-class", "dotted-capital-i", "long-s-in-a-regex"])
def test_triage_keeps_what_the_full_index_matches(tmp_path: Path, sample: str, logsource: str,
                                                 detection: str, respell: tuple[str, str] | None) -> None:
    """Rule forms and spellings whose literals triage took wrongly: the default scan found nothing
    where ``--index full`` found the events. ``respell``: (text, as the sample is made to hold it)."""
    source = shared_path("evtx", "evtx-attack-samples", *sample.split("/"))
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    data = source.read_bytes()
    (evidence / source.name).write_bytes(evtx_respelled(data, *respell) if respell else data)
    rule = WINDOWS_RULE.format(title="probe", n=1, logsource=logsource, detection=detection)
    counts = probe_counts(tmp_path, evidence, rule)
    assert counts["full"] > 0 and counts["triage"] == counts["full"]


@pytest.mark.parametrize(("value", "agent"), [
    ("'cs-user-agent|contains': 'kitsunebot'", "k\u0130tsunebot/1.0"),  # lower() folds U+0130 to i
    ("'cs-user-agent|contains': 'kitsunebot'", "\u212aitsunebot/1.0"),  # and the Kelvin sign to k
    ("'cs-user-agent|re|i': 'kitsunebot'", "kit\u017funebot/1.0"),  # RE2's (?i) takes the long s for s
], ids=["dotted-capital-i", "kelvin-sign", "long-s-in-a-regex"])
def test_triage_keeps_a_web_row_spelling_a_literal_as_sql_folds_it(tmp_path: Path, value: str, agent: str) -> None:
    """The web row's literal spelled with a character DuckDB's caseless matching takes for its letter:
    found by the full index's detections over every row, so triage must store its line."""
    rows = [{"source": "iis", "method": "GET", "uri": "/owa/", "client_ip": "198.51.100.9", "user_agent": agent,
             "status": 200}]
    write_case_logs(tmp_path / "evidence", rows, padding=3)
    rule = RULE.format(title="probe", n=4, detection=f"  sel: {{{value}}}\n  condition: sel")
    with mock.patch.object(api, "FULL_DETECTS_SELECTED", False):  # full: the detections read every row
        counts = probe_counts(tmp_path, tmp_path / "evidence", rule)
    assert counts["full"] > 0 and counts["triage"] == counts["full"]


def probe_counts(tmp_path: Path, evidence: Path, rule: str) -> dict[str, int]:
    """The rule ``probe``'s hits in a scan of ``evidence`` with each index."""
    path = tmp_path / "rule.yml"
    path.write_text(rule, encoding="utf-8")
    counts = {}
    for index in ("triage", "full"):
        doc = api.scan([evidence], api.ScanOptions(out=tmp_path / index, host="h", jobs=1, quiet=True, progress=False,
                                                   sigma=[path], index=index, html_report=False)).document
        counts[index] = sum(f.count for f in doc.findings if f.title == "probe")
    return counts

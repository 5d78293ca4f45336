"""IOC values that log rows are matched on become triage patterns, spelled as the logs write them."""

from __future__ import annotations

from pathlib import Path

from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.iocs.prefilter import from_iocs
from exhunt.detections.prefilter import Prefilter


def test_ips_user_agents_and_domains_select_their_lines(tmp_path: Path) -> None:
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("203.0.113.77\nevil-c2.example\n", encoding="utf-8")
    prefilter = Prefilter()
    from_iocs(prefilter, [iocs])
    selector = LineSelector(compile_patterns(list(prefilter.patterns)).blob)
    assert selector.spans(b"2021-03-03 01:00:00 10.0.0.1 GET /owa/ - 443 - 203.0.113.77 x - 200\n")
    assert selector.spans(b"2021-03-03 01:00:00 10.0.0.1 GET /x q=evil-c2%2Eexample 443 - 10.0.0.5 x - 200\n")
    assert not selector.spans(b"2021-03-03 01:00:00 10.0.0.1 GET /owa/ - 443 - 203.0.113.7 x - 200\n")


def test_user_agent_as_iis_and_httpproxy_write_it() -> None:
    from exhunt.detections.iocs.prefilter import user_agent_pattern

    selector = LineSelector(compile_patterns([user_agent_pattern('Evil Agent "1"')]).blob)
    assert selector.spans(b"a Evil+Agent+\"1\" b\n")
    assert selector.spans(b'a,"Evil Agent ""1""",b\n')

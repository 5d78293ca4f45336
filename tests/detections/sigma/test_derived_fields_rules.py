"""Web Sigma rules over IIS and HttpProxy rows whose ``fields`` the store derives from the line give
the hits they give over rows that store the JSON (the reference parser's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.detections.sigma.engine import run_queries
from exhunt.events import store
from tests.artifacts.test_w3c_fast import EXCHANGE_HEAD, fast_always, reference_only, write
from tests.detections.sigma.support import ruleset_from_yaml
from tests.helpers import parse_paths

IIS = ("#Software: Microsoft Internet Information Services 10.0\n#Fields: date time cs-method cs-uri-stem "
       "cs-uri-query c-ip cs(User-Agent) cs(Referer) cs(Cookie) cs-host sc-status\n")
IIS_ROWS = [
    "2021-03-03 02:00:00 GET /owa/ - 1.2.3.4 curl/7 https://evil.example/a X-BEResource=a]@b:444/ mail.corp 200",
    '2021-03-03 02:00:01 GET /ecp/ - 1.2.3.5 say+"hi" - a=1;secret=x evil.example 200',
    "2021-03-03 02:00:02 GET /ecp/ - 1.2.3.6 C:\\x - - - 200",
]
PROXY_ROWS = [
    '2021-03-03T02:00:00Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,"Mozilla/5.0 (KHTML, like Gecko) evil"',
    "2021-03-03T02:00:01Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,evil-plain",
]


def rule(title: str, category: str, detection: dict) -> dict:
    return {"title": title, "logsource": {"category": category}, "level": "high",
            "detection": {**detection, "condition": "selection" if "selection" in detection else "keywords"}}


RULES = [
    rule("referer", "webserver", {"selection": {"cs-referer|contains": "evil.example"}}),
    rule("cookie", "webserver", {"selection": {"cs-cookie|contains": "X-BEResource"}}),
    rule("cookie again", "webserver", {"selection": {"cs-cookie|contains": "secret="}}),
    rule("host", "webserver", {"selection": {"cs-host": "evil.example"}}),
    rule("raw ua", "proxy", {"selection": {"UserAgent|contains": "evil"}}),
    rule("keywords", "webserver", {"keywords": ["C:\\x"]}),
]


def hits(tmp_path: Path, root: Path, rels: list[str]) -> dict[str, list[tuple[str, int]]]:
    con = parse_paths(tmp_path, root, rels)
    out = {}
    for query, rows in run_queries(con, ruleset_from_yaml(*RULES)).values():
        out[query.rule.title] = sorted((r["path"], r["line"]) for r in rows)
    return out


@pytest.mark.parametrize("view", [True, False], ids=["parts-view", "in-memory"])
def test_web_rules_match_derived_fields_as_stored_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       view: bool) -> None:
    """Both ways the store gives ``events``: a view over the parts (the engine copies the rows as
    stored and reads raw fields from the line) and a small store's in-memory table."""
    if view:
        monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    root = tmp_path / "ev"
    rels = [write(root, "W3SVC1/u_ex1.log", (IIS + "\n".join(IIS_ROWS) + "\n").encode()),
            write(root, "HttpProxy/Owa/p.LOG", (EXCHANGE_HEAD + "\r\n".join(PROXY_ROWS) + "\r\n").encode())]
    with fast_always():
        fast = hits(tmp_path / "fast", root, rels)
    with reference_only():
        slow = hits(tmp_path / "slow", root, rels)
    assert fast == slow
    assert fast == {"referer": [(rels[0], 3)], "cookie": [(rels[0], 3)], "cookie again": [(rels[0], 4)],
                    "host": [(rels[0], 4)], "raw ua": [(rels[1], 5), (rels[1], 6)], "keywords": [(rels[0], 5)]}

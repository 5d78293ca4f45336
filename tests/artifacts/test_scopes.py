"""Prefilter patterns scoped by a log's ``#Fields`` header (``exhunt.artifacts.scopes``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt import api
from exhunt.artifacts import scopes
from exhunt.detections.checks.proxylogon import SsrfStaticResourcePost
from exhunt.detections.checks.tunnels import TunnelTraffic
from tests.detections import caselogs
from tests.detections.caselogs import IIS_FIELDS, write_case_logs
from tests.detections.test_cases import _expand
from tests.test_api_index import assert_same, both_ways, summary

PLAN = api.triage_plan(api.ScanOptions())[0]
W3C_FORM, CSV_FORM = SsrfStaticResourcePost.prefilter[1], SsrfStaticResourcePost.prefilter[0]
POST_FIRST = TunnelTraffic.prefilter[2]
METHOD_FIRST = [f for f in caselogs.HTTPPROXY_FIELDS if f != "Method"]
METHOD_FIRST.insert(METHOD_FIRST.index("UrlStem"), "Method")


@pytest.mark.parametrize(("fields", "kept", "dropped"), [
    (IIS_FIELDS, [W3C_FORM, POST_FIRST], [CSV_FORM]),
    (caselogs.HTTPPROXY_FIELDS, [CSV_FORM], [W3C_FORM, POST_FIRST]),
    (METHOD_FIRST, [CSV_FORM, POST_FIRST], [W3C_FORM]),
    ([], [CSV_FORM, POST_FIRST], [W3C_FORM]),  # a header that names nothing: the line-long forms
])
def test_each_header_gets_the_patterns_its_scopes_name(fields: list[str], kept: list[str],
                                                       dropped: list[str]) -> None:
    assert PLAN is not None
    stored = scopes.stored_for(PLAN, [f.upper() for f in fields])  # header names compare caselessly
    assert all(p in stored for p in kept) and not any(p in stored for p in dropped)
    assert set(PLAN.stored) - set(stored) == set(dropped)


def test_lines_before_any_header_keep_every_pattern() -> None:
    assert PLAN is not None and scopes.stored_for(PLAN, None) == PLAN.stored


def test_a_csv_log_with_the_method_first_still_selects_the_tunnels_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The POST-first form is dropped only where the header puts UrlStem before Method: a tunnel in
    a CSV log written in the other order (to a page no other prefilter selects) is found by triage
    as by --index full."""
    monkeypatch.setattr(caselogs, "HTTPPROXY_FIELDS", METHOD_FIRST)
    rows = _expand([{"source": "httpproxy", "method": "POST", "uri": "/app/upload.php", "status": 200,
                     "client_ip": "203.0.113.50", "ts": "2021-03-03T10:00:00Z", "repeat": 250, "every": 0.5}])
    write_case_logs(tmp_path / "evidence", rows, padding=2)
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=1)
    assert TunnelTraffic.id in [f.check for f in full.findings]
    assert summary(triage) == summary(full)
    assert_same(triage, full, tmp_path)

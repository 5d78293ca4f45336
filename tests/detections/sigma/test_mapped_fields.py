"""Sigma over events as the parsers map them (not hand-built rows): a rule's field must see the
value the record holds, through the normalized columns and the raw ``fields`` alike."""

from __future__ import annotations

from typing import Any

import pytest

from exhunt.artifacts.winevent import event_record
from tests.detections.sigma.support import connect_rows, matched, ruleset_from_yaml


def sysmon_process(record_id: int, **data: Any) -> dict[str, Any]:
    system = {"Provider": {"@Name": "Microsoft-Windows-Sysmon"}, "EventID": 1, "EventRecordID": record_id,
              "Channel": "Microsoft-Windows-Sysmon/Operational",
              "TimeCreated": {"@SystemTime": "2021-03-03T01:00:00Z"}, "Computer": "ex1", "Level": 4}
    return event_record({"System": system, "EventData": {"Image": "C:\\x.exe", **data}})


def process_rule(name: str, selection: dict[str, Any]) -> dict[str, Any]:
    return {"title": name, "logsource": {"category": "process_creation", "product": "windows"},
            "detection": {"sel": selection, "condition": "sel"}}


ROWS = [sysmon_process(1, CommandLine=""), sysmon_process(2, CommandLine="-"), sysmon_process(3),
        sysmon_process(4, CommandLine="x.exe -a", ParentImage="", ParentCommandLine="-")]


@pytest.mark.parametrize(
    ("selection", "records"),
    [({"CommandLine": ""}, [1]), ({"CommandLine": "-"}, [2]), ({"CommandLine": None}, [3]),
     ({"CommandLine|exists": False}, [3]), ({"CommandLine|exists": True}, [1, 2, 4]),
     ({"ParentImage": ""}, [4]), ({"ParentImage": None}, [1, 2, 3]), ({"ParentCommandLine": "-"}, [4])],
)
def test_empty_dash_and_missing_are_three_things(selection: dict[str, Any], records: list[int]) -> None:
    ruleset = ruleset_from_yaml(process_rule("r", selection))
    assert ruleset.failed == []
    assert matched(connect_rows(ROWS), ruleset).get("r", []) == records


def test_level_by_name_on_a_mapped_application_event() -> None:
    """SigmaHQ's CVE-2020-0688 rule matches ``Level: Error``; the record holds Level 2."""
    def app(record_id: int, level: int) -> dict[str, Any]:
        system = {"Provider": {"@Name": "MSExchange Control Panel"}, "EventID": 4, "Level": level,
                  "EventRecordID": record_id, "Channel": "Application",
                  "TimeCreated": {"@SystemTime": "2021-03-03T01:00:00Z"}}
        return event_record({"System": system, "EventData": {"Data": ["... &__VIEWSTATE=/wEP ..."]}})

    rule = {"title": "viewstate", "logsource": {"product": "windows", "service": "application"},
            "detection": {"s1": {"EventID": 4, "Provider_Name": "MSExchange Control Panel", "Level": "Error"},
                          "s2": ["&__VIEWSTATE="], "condition": "all of s*"}}
    assert matched(connect_rows([app(1, 2), app(2, 4)]), ruleset_from_yaml(rule)) == {"viewstate": [1]}


def test_web_fields_on_httpproxy_and_iis_rows_alike() -> None:
    """HttpProxy's UrlQuery keeps its '?' (the full URI had '??'); it has no raw user-agent field, so
    'cs-user-agent: null' must not be true for every HttpProxy row (it fired SigmaHQ's reGeorg rule)."""
    rows = [
        {"source": "httpproxy", "kind": "http", "uri": "/owa/auth/tunnel.aspx", "uri_query": "?cmd=read&x=1",
         "user_agent": "Mozilla/5.0", "record_id": 1},
        {"source": "iis", "kind": "http", "uri": "/owa/auth/tunnel.aspx", "uri_query": "cmd=read&x=1",
         "user_agent": "Mozilla/5.0", "fields": {"cs(User-Agent)": "Mozilla/5.0"}, "record_id": 2},
        {"source": "iis", "kind": "http", "uri": "/x.aspx", "fields": {"cs(User-Agent)": "-"}, "record_id": 3},
    ]
    web = {"category": "webserver"}
    query = {"title": "q", "logsource": web,
             "detection": {"s": {"cs-uri-query|contains": "tunnel.aspx?cmd=read"}, "condition": "s"}}
    no_agent = {"title": "n", "logsource": web, "detection": {"s": {"cs-user-agent": None}, "condition": "s"}}
    assert matched(connect_rows(rows), ruleset_from_yaml(query, no_agent)) == {"q": [1, 2], "n": [3]}


def test_every_string_column_of_the_store_is_a_rule_field() -> None:
    """The field list derives from the store schema: backend_cookie (added to the store later)
    was once missing from it, so no rule could read the ProxyLogon cookie SSRF carrier."""
    rows = [{"source": "httpproxy", "kind": "http", "uri": "/ecp/y.js", "record_id": 1,
             "backend_cookie": "Server~exch01.corp.local/ecp/default.flt?~3"},
            {"source": "httpproxy", "kind": "http", "uri": "/ecp/y.js", "record_id": 2, "backend_cookie": "-"}]
    rule = {"title": "c", "logsource": {"category": "webserver"},
            "detection": {"s": {"backend_cookie|startswith": "Server~"}, "condition": "s"}}
    assert matched(connect_rows(rows), ruleset_from_yaml(rule)) == {"c": [1]}

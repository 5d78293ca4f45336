"""Build an event row that satisfies a Sigma rule from its own detection logic (and one that does not).

The solver walks the parsed condition: AND needs every branch, OR its first branch, NOT the negation
of its branch (satisfied by leaving the negated fields absent). Values are written the way the
artifacts write them: process fields in the normalized columns, W3C fields in the web columns,
everything else in the raw ``fields`` JSON by its Sigma name. The test then checks the engine's
answer, so a solver mistake shows up as a failing case, never as a silent pass.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaCIDRExpression,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaString,
    SpecialChars,
)

SYSMON = "Microsoft-Windows-Sysmon/Operational"
BASE: dict[tuple[str, str], dict[str, Any]] = {
    ("category", "process_creation"): {"kind": "process"},
    ("category", "webserver"): {"kind": "http", "source": "iis", "uri": "/"},
    ("category", "proxy"): {"kind": "http", "source": "httpproxy", "uri": "/"},
    ("category", "file_event"): {"channel": SYSMON, "event_id": 11},
    ("category", "file_delete"): {"channel": SYSMON, "event_id": 23},
    ("category", "network_connection"): {"channel": SYSMON, "event_id": 3},
    ("category", "process_access"): {"channel": SYSMON, "event_id": 10},
    ("category", "ps_script"): {"channel": "Microsoft-Windows-PowerShell/Operational", "event_id": 4104},
    ("category", "antivirus"): {
        "channel": "Microsoft-Windows-Windows Defender/Operational",
        "event_id": 1116,
    },
    ("service", "msexchange-management"): {"channel": "MSExchange Management", "event_id": 1},
    ("service", "security"): {"channel": "Security"},
    ("service", "application"): {"channel": "Application"},
    ("service", "iis-configuration"): {"channel": "Microsoft-IIS-Configuration/Operational"},
}
COLUMNS = {
    "process_creation": {
        "Image": "image",
        "CommandLine": "command_line",
        "ParentImage": "parent_image",
        "ParentCommandLine": "parent_command_line",
        "User": "user",
    },
    "web": {
        "cs-method": "method",
        "sc-status": "status",
        "cs-uri-stem": "uri",
        "cs-uri-query": "uri_query",
        "c-uri": "uri_query",
        "cs-uri": "uri_query",
        "cs-user-agent": "user_agent",
        "c-useragent": "user_agent",
        "cs-username": "user",
        "c-ip": "client_ip",
    },
    "windows": {"EventID": "event_id", "Provider_Name": "provider", "Channel": "channel"},
}
RAW_NAMES = {"Signature": "Threat Name"}  # Defender's EventData name (pipeline fields_antivirus)
LEVELS = {"error": 2, "warning": 3, "information": 4, "critical": 1}


def _literal(value: SigmaString) -> str:
    return "".join(
        p if isinstance(p, str) else ("" if p == SpecialChars.WILDCARD_MULTI else "x") for p in value.s
    )


def _solve(node: Any, want: bool, pos: list[tuple[str | None, Any]]) -> None:
    if isinstance(node, ConditionAND | ConditionOR):
        every = isinstance(node, ConditionAND) == want
        for arg in node.args if every else node.args[:1]:
            _solve(arg, want, pos)
    elif isinstance(node, ConditionNOT):
        _solve(node.args[0], not want, pos)
    elif isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression) and want:
        field = getattr(node, "field", None)
        value = node.value.values[0] if isinstance(node.value, SigmaExpansion) else node.value
        pos.append((field, value))


def _area(rule: SigmaRule) -> str:
    if rule.logsource.category == "process_creation":
        return "process_creation"
    return "web" if rule.logsource.category in ("webserver", "proxy") else "windows"


def base_row(rule: SigmaRule) -> dict[str, Any]:
    for (attr, value), row in BASE.items():
        if getattr(rule.logsource, attr) == value:
            return dict(row)
    raise LookupError(f"no base row for logsource {rule.logsource}")


def matching_row(rule: SigmaRule) -> dict[str, Any]:
    pos: list[tuple[str | None, Any]] = []
    _solve(rule.detection.parsed_condition[0].parsed, True, pos)
    pieces: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    numbers: dict[str, int] = {}
    keywords: list[str] = []
    for field, value in pos:
        if isinstance(value, SigmaNull):
            continue
        if field is None:
            keywords.append(_literal(value) if isinstance(value, SigmaString) else str(value))
            continue
        if isinstance(value, SigmaNumber):
            numbers[field] = int(value.number)
        elif isinstance(value, SigmaCIDRExpression):
            pieces[field]["eq"].append(str(value.network.network_address))
        elif isinstance(value, SigmaString):
            parts = value.s
            start = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
            end = bool(parts) and parts[-1] == SpecialChars.WILDCARD_MULTI
            kind = "mid" if start and end else "end" if start else "start" if end else "eq"
            pieces[field][kind].append(_literal(value))
    row = base_row(rule)
    raw: dict[str, Any] = {}
    columns = {**COLUMNS["windows"], **COLUMNS[_area(rule)]}
    for field, kinds in pieces.items():
        text = (
            kinds["eq"][0]
            if kinds["eq"]
            else "".join(kinds["start"]) + " ".join(kinds["mid"]) + "".join(kinds["end"])
        )
        if field == "Level":
            raw["Level"] = LEVELS.get(text.lower(), text)
        elif field == "Data":
            raw["Data"] = [text]
        elif field in columns:
            row[columns[field]] = text
        else:
            raw[RAW_NAMES.get(field, field)] = text
    for field, number in numbers.items():
        if field in columns:
            row[columns[field]] = number
        else:
            raw[field] = number
    if keywords:
        row["message"] = " ".join(keywords)
    if raw:
        row["fields"] = raw
    return row


def non_matching_row(rule: SigmaRule) -> dict[str, Any]:
    """The same logsource with every detection value replaced by a benign one."""
    row = matching_row(rule)
    base = base_row(rule)
    benign: dict[str, Any] = {}
    for key, value in row.items():
        if key in base and base[key] == value:
            benign[key] = value
        elif key == "fields":
            benign[key] = {
                k: ("benign" if isinstance(v, str) else [] if isinstance(v, list) else 0)
                for k, v in value.items()
            }
        else:
            benign[key] = "benign" if isinstance(value, str) else 0
    return benign

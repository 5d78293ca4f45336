"""Worker-process rules of exhunt's pack: every child or access event of a worker is reported by at most
one rule (the spawns-shell rules, the unexpected-child rule and the access rules split the events
between them), and each rule keeps the shell list of the others."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import yaml

from exhunt.detections.sigma.engine import run_queries
from exhunt.detections.sigma.loader import RuleSet, builtin_rules, load_and_convert
from tests.detections.sigma.support import connect_rows

SHELL_RULES = ("exhunt_exchange_worker_spawns_shell", "exhunt_iis_worker_spawns_shell")
CHILD_RULES = (*SHELL_RULES, "exhunt_worker_unexpected_child")
ACCESS_RULES = ("exhunt_lsass_access", "exhunt_worker_lsass_access", "exhunt_worker_process_injection")
W3WP = r"c:\windows\system32\inetsrv\w3wp.exe"
BIN = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\"
PARENTS: tuple[tuple[str, str | None, str], ...] = (  # parent image, parent command line, owner of its shells
    (W3WP, 'w3wp.exe -ap "MSExchangeOWAAppPool"', "exhunt_exchange_worker_spawns_shell"),
    (W3WP, None, "exhunt_exchange_worker_spawns_shell"),  # Security 4688: pool unknown
    (W3WP, 'w3wp.exe -ap "SharePoint - 80"', "exhunt_iis_worker_spawns_shell"),
    (BIN + "UMWorkerProcess.exe", None, "exhunt_exchange_worker_spawns_shell"),
    (BIN + "MSExchangeHMWorker.exe", None, "exhunt_exchange_worker_spawns_shell"),
    (BIN + "Microsoft.Exchange.Store.Worker.exe", None, "exhunt_exchange_worker_spawns_shell"),
)
CHILDREN: tuple[tuple[str, str | None, str], ...] = (  # image, command line, kind: shell | other | benign
    (r"C:\Windows\System32\cmd.exe", "cmd /c whoami", "shell"),
    (r"C:\Windows\System32\rundll32.exe", None, "shell"),
    (r"C:\Tools\7z.exe", "7z a x.7z", "shell"),
    (r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\csc.exe", "csc /out:C:\\ProgramData\\x.exe x.cs", "shell"),
    (r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\csc.exe", "csc /noconfig @x.cmdline", "benign"),
    (r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\csc.exe", None, "other"),
    (r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\vbc.exe", "", "other"),
    (r"C:\ProgramData\update.exe", None, "other"),
    (r"C:\Windows\System32\conhost.exe", None, "benign"),
    (r"C:\Windows\System32\WerFault.exe", "WerFault.exe -u -p 1", "benign"),
)


@cache
def pack() -> RuleSet:
    return load_and_convert([], include_builtin=True)


def fired_per_row(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[int, set[str]]:
    result: dict[int, set[str]] = {n: set() for n in range(1, len(rows) + 1)}
    for query, matched in run_queries(connect_rows(rows), pack()).values():
        if query.rule.name in names:
            for row in matched:
                result[int(row["record_id"])].add(str(query.rule.name))
    return result


def test_child_events_have_exactly_one_owner() -> None:
    cases = list(itertools.product(PARENTS, CHILDREN))
    rows = [
        {"kind": "process", "parent_image": p_image, "parent_command_line": p_cmd, "image": image,
         "command_line": cmd}
        for (p_image, p_cmd, _), (image, cmd, _) in cases
    ]
    fired = fired_per_row(rows, CHILD_RULES)
    for number, ((p_image, p_cmd, shell_owner), (image, cmd, kind)) in enumerate(cases, start=1):
        expected = {"shell": {shell_owner}, "other": {"exhunt_worker_unexpected_child"}, "benign": set()}[kind]
        assert fired[number] == expected, (p_image, p_cmd, image, cmd)


def test_access_events_have_at_most_one_owner() -> None:
    sources = (W3WP, BIN + "EdgeTransport.exe", r"C:\Users\a\procdump64.exe")
    targets = (r"C:\Windows\system32\lsass.exe", r"C:\Windows\System32\svchost.exe",
               r"C:\Windows\System32\conhost.exe")
    accesses = ("0x1fffff", "0x1010", "0x1000", None)  # None: Sysmon 8 (no GrantedAccess)
    cases = list(itertools.product(sources, targets, accesses))
    rows = []
    for source, target, access in cases:
        fields = {"SourceImage": source, "TargetImage": target}
        if access:
            fields["GrantedAccess"] = access
        rows.append({"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 10 if access else 8,
                     "fields": fields})
    fired = fired_per_row(rows, ACCESS_RULES)
    for number, (source, target, access) in enumerate(cases, start=1):
        worker = not source.endswith("procdump64.exe")
        reads = access != "0x1000"
        if worker and reads and target.endswith("lsass.exe"):
            expected = {"exhunt_worker_lsass_access"}
        elif worker and reads and target.endswith("svchost.exe"):
            expected = {"exhunt_worker_process_injection"}
        elif not worker and access in ("0x1fffff", "0x1010") and target.endswith("lsass.exe"):
            expected = {"exhunt_lsass_access"}
        else:
            expected = set()
        assert fired[number] == expected, (source, target, access)


def test_shell_lists_are_the_same_in_the_three_child_rules() -> None:
    lists = {}
    for name in CHILD_RULES:
        detection = yaml.safe_load((builtin_rules() / f"{name}.yml").read_text(encoding="utf-8"))["detection"]
        block = detection.get("selection_child") or detection["shell_or_lolbin"]
        lists[name] = sorted(v.lower() for v in block["Image|endswith"])
    assert len({tuple(v) for v in lists.values()}) == 1, lists
    assert {"\\cmd.exe", "\\pwsh.exe", "\\mshta.exe", "\\nltest.exe", "\\makecab.exe"} <= set(lists[CHILD_RULES[0]])


def test_levels_follow_the_ownership() -> None:
    levels = {q.rule.name: q.rule.level for q in pack().queries if q.rule.level is not None}
    assert levels["exhunt_worker_unexpected_child"] == "medium"
    assert levels["exhunt_worker_process_injection"] == "high"
    assert levels["exhunt_worker_lsass_access"] == "critical"

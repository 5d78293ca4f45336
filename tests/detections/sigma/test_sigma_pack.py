"""exhunt's own Sigma pack: every rule converts, each behaviour in cases/pack.yml fires or stays quiet,
and on the shared EVTX set the web-shell traces are findings while nothing else is an Exchange one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt.api import ScanOptions, scan
from exhunt.detections.sigma.engine import run_queries
from exhunt.detections.sigma.loader import builtin_rules, load_and_convert
from tests.conftest import shared_path
from tests.detections.sigma.support import connect_rows

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "pack.yml").read_text(encoding="utf-8"))
WEBSHELL_TRACES = {
    "Lateral Movement/LM_typical_IIS_webshell_sysmon_1_10_traces.evtx",
    "Credential Access/discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx",
    "Privilege Escalation/Runas_4624_4648_Webshell_CreateProcessAsUserA.evtx",
}


def test_every_pack_rule_converts_and_has_a_case() -> None:
    ruleset = load_and_convert([], include_builtin=True)
    files = sorted(builtin_rules().glob("*.yml"))
    assert ruleset.failed == []
    assert ruleset.loaded == len(files) == len(ruleset.queries)
    names = {q.rule.name for q in ruleset.queries}
    covered = {name for case in CASES for name in case["fire"]}
    assert names - covered <= {
        "exhunt_iis_worker_explicit_logon",
        "exhunt_exchange_agents_config_write",
        "exhunt_exchange_role_group_member_added",
    }  # covered by the shared EVTX test
    assert (builtin_rules() / "SOURCE.md").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_pack_case(case: dict[str, Any]) -> None:
    ruleset = load_and_convert([], include_builtin=True)
    fired = {query.rule.name for query, _ in run_queries(connect_rows(case["rows"]), ruleset).values()}
    assert fired == set(case["fire"])


@pytest.mark.slow
def test_shared_evtx_set(tmp_path: Path) -> None:
    root = shared_path("evtx")
    result = scan([root], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, progress=False))
    sigma = [f for f in result.document.findings if f.check.startswith("sigma:")]
    paths: dict[str, set[str]] = {}
    for finding in sigma:
        paths.setdefault(finding.check, set()).update(e.path for e in finding.evidence)
    shells = paths.get("sigma:exhunt_iis_worker_spawns_shell", set()) | paths.get(
        "sigma:exhunt_iis_worker_explicit_logon", set()
    )
    assert {p.split("evtx-attack-samples/", 1)[-1] for p in shells} == WEBSHELL_TRACES
    workers = {c: ps for c, ps in paths.items() if c.startswith("sigma:exhunt_worker_")}
    assert workers == {  # w3wp opening the cmd.exe it started: the only worker access in the set
        "sigma:exhunt_worker_process_injection": {
            "evtx-attack-samples/Lateral Movement/LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"
        }
    }
    exchange = {c for c in paths if "exchange" in c}
    assert exchange == {
        "sigma:exhunt_exchange_agents_config_write",
        "sigma:exhunt_exchange_role_group_member_added",
    }
    assert all(p.startswith("exchange-management/") for c in exchange for p in paths[c])
    for finding in sigma:
        assert finding.evidence and all(e.ts and e.ts.endswith("Z") and e.record_id for e in finding.evidence)
        assert finding.remediation
    assert result.document.rules["sigma"]["failed"] == []

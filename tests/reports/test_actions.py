from __future__ import annotations

from dataclasses import replace

from exhunt.findings.model import CveStatus, HostBuild
from exhunt.reports.actions import host_actions
from exhunt.reports.case import Case


def test_update_first_steps_deduplicated_and_ip_hunt_kept(case: Case) -> None:
    build = HostBuild("15.1.2176.2", cves=(CveStatus("CVE-2021-26855", "ProxyLogon", "vulnerable",
                                                     update="Exchange 2016 CU19 Mar21SU (KB5000871)"),))
    host = replace(case.document.hosts[0], build=build)
    actions = host_actions(case.document, host, limit=4)
    assert actions[0].text == "Install Exchange 2016 CU19 Mar21SU (KB5000871) on EXCH01."
    assert "CVE-2021-26855" in actions[0].why
    assert len(actions) == 4 and actions[-1].text.startswith("Block and hunt")
    assert "203.0.113.9" in actions[-1].text and "198.51.100.23" in actions[-1].text
    every = host_actions(case.document, host, limit=100)
    texts = [a.text for a in every]
    assert len(texts) == len(set(texts)), "each remediation step once"
    assert sum(len(f.remediation) for f in case.document.findings) > len(texts)


def test_nothing_read_asks_for_collection(case: Case) -> None:
    host = replace(case.document.hosts[0], host="OTHER", verdict="not assessed", build=None)
    assert host_actions(case.document, host)[0].text.startswith("Collect the Exchange and IIS logs")


def test_the_block_list_names_other_machines_only(case: Case) -> None:
    """A loopback or unspecified client address (the server's own requests) is evidence, not an
    address to block; ports and brackets are dropped, each address said once."""
    first = case.document.findings[0]
    seen = {**first.indicators, "client_ip": ["127.0.0.1", "::1", "0.0.0.0", "[2001:db8::7]:443", "203.0.113.9:51234"]}
    doc = replace(case.document, findings=(replace(first, indicators=seen), *case.document.findings[1:]))
    block = [a.text for a in host_actions(doc, doc.hosts[0], limit=100) if a.text.startswith("Block and hunt")]
    assert block and "127.0.0.1" not in block[0] and "::1" not in block[0] and "0.0.0.0" not in block[0]
    assert "2001:db8::7" in block[0] and block[0].count("203.0.113.9") == 1

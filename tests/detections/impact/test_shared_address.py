"""An attacker address that many accounts sign in from (a load balancer in front of IIS) is set aside:
reading all of its traffic as the attacker's would list every mailbox behind it as exposed."""

from __future__ import annotations

from pathlib import Path

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.detections.impact.sources import SHARED_IP_ACCOUNTS
from exhunt.reports.terminal import rule_problems

IIS = "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
ATTACKER = "203.0.113.77"


def _scan(root: Path, out: Path):  # type: ignore[no-untyped-def]
    return scan([root], ScanOptions(out=out, host="EXCH01", jobs=1, quiet=True, progress=False)).document


def test_an_address_many_accounts_use_is_set_aside(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    generate(root, DemoSpec(per_day=60, attack=True, seed=3))
    alone = _scan(root, tmp_path / "alone")
    assert "impact" not in alone.rules and alone.impact  # the demo's attacker is tied to mailboxes
    with (root / IIS).open("a", newline="") as log:  # the same address signs in for many users
        for n in range(SHARED_IP_ACCOUNTS + 2):
            log.write(f"2021-03-03 23:0{n % 10}:00 10.10.1.20 GET /owa/ - 443 CORP\\user{n} {ATTACKER} "
                      "Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 12\r\n")
    shared = _scan(root, tmp_path / "shared")
    assert shared.rules["impact"]["shared_client_ips"][ATTACKER] >= SHARED_IP_ACCOUNTS + 2
    assert not any(ATTACKER in e.sources for e in shared.impact)
    assert any(f"attacker address {ATTACKER} is shared by" in line for line in rule_problems(shared.rules))
    assert any(f.category == "compromise" for f in shared.findings)  # the findings stand

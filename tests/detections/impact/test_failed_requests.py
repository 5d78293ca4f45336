"""A request the server refused or failed read no mail: it exposes no mailbox."""

from __future__ import annotations

from pathlib import Path

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate

EWS = "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ews/HttpProxy_2021030300-1.LOG"


def test_refused_or_failed_requests_expose_no_mailbox(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    generate(root, DemoSpec(per_day=60, attack=True, seed=3))
    log = root / EWS
    lines = log.read_bytes().split(b"\r\n")
    attack = next(line for line in lines if b"203.0.113.77" in line and b"heidi@corp.example" in line)
    added = [attack.replace(b"heidi@corp.example", box).replace(b",200,", status, 1)
             for box, status in ((b"alice@corp.example", b",401,"), (b"dave@corp.example", b",403,"),
                                 (b"bob@corp.example", b",200,"))]
    assert b",401," in added[0] and b",403," in added[1]  # the rows' HttpStatus
    log.write_bytes(log.read_bytes().rstrip(b"\r\n") + b"\r\n" + b"\r\n".join(added) + b"\r\n")
    doc = scan([root], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                   progress=False)).document
    boxes = {i.mailbox for i in doc.impact}
    assert "bob@corp.example" in boxes and "heidi@corp.example" in boxes  # read: listed
    assert not boxes & {"alice@corp.example", "dave@corp.example"}  # refused: not


def test_a_row_tied_by_the_user_agent_alone_is_medium(tmp_path: Path) -> None:
    """Another client and account sending the attacker's user agent (the EWS Managed API's stock
    ExchangeServicesClient/0.0.0.0 of an ordinary app): listed, but no proof by itself."""
    root = tmp_path / "evidence"
    generate(root, DemoSpec(per_day=60, attack=True, seed=3))
    log = root / EWS
    lines = log.read_bytes().split(b"\r\n")
    attack = next(line for line in lines if b"203.0.113.77" in line and b"heidi@corp.example" in line)
    app = (attack.replace(b"heidi@corp.example", b"erin@corp.example").replace(b"203.0.113.77", b"10.10.9.9")
           .replace(b"CORP\\heidi", b"CORP\\svc-crm"))
    assert b"10.10.9.9" in app and b"erin@corp.example" in app
    log.write_bytes(log.read_bytes().rstrip(b"\r\n") + b"\r\n" + app + b"\r\n")
    doc = scan([root], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                   progress=False)).document
    by_box = {i.mailbox: i for i in doc.impact}
    assert by_box["erin@corp.example"].confidence == "medium"
    assert by_box["heidi@corp.example"].confidence == "high"  # the attacker's own address


def test_the_owners_own_traffic_from_the_attackers_address_before_the_intrusion_is_not_listed(
        tmp_path: Path) -> None:
    """A user on their own mailbox from an address the attacker uses later (a NAT, a hotel, a VPN
    exit): not the attacker's before the first row of the findings behind it; during the intrusion it is."""
    root = tmp_path / "evidence"
    generate(root, DemoSpec(per_day=60, attack=True, seed=3))
    log = root / EWS
    lines = log.read_bytes().split(b"\r\n")
    attack = next(line for line in lines if b"203.0.113.77" in line and b"heidi@corp.example" in line)
    stamp = attack.split(b",", 1)[0]

    def as_owner(name: bytes, when: bytes) -> bytes:
        row = attack.replace(b"heidi", name).replace(stamp, when)
        return row.replace(b"BeginRequest=" + stamp, b"BeginRequest=" + when)

    before, during = b"2021-03-03T00:05:00.000Z", stamp
    added = [as_owner(b"alice", before), as_owner(b"dave", during)]
    log.write_bytes(log.read_bytes().rstrip(b"\r\n") + b"\r\n" + b"\r\n".join(added) + b"\r\n")
    doc = scan([root], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                   progress=False)).document
    start = min(f.first_seen for f in doc.findings if f.category == "compromise" and f.severity in
                ("high", "critical") and f.confidence != "low" and f.first_seen)
    assert before.decode() < start <= during.decode()
    by_box = {i.mailbox: i for i in doc.impact}
    assert "alice@corp.example" not in by_box  # her own traffic, before the attacker showed
    assert by_box["dave@corp.example"].confidence == "high"  # the attacker's address during the intrusion

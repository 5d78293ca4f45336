"""Mailbox values in every form the logs use, cmdlet parameters, and safe remediation commands."""

from __future__ import annotations

import pytest

from exhunt.detections.impact import mailbox, params, remediation


@pytest.mark.parametrize(("raw", "key"), [
    ("SMTP:Alice@Corp.Example", "alice@corp.example"),
    ("smtp~alice@corp.example", "alice@corp.example"),
    ("MBX:alice@corp.example", "alice@corp.example"),
    ("alice@CORP.example", "alice@corp.example"),
    ("Sid~s-1-5-21-1-2-3-1105", "S-1-5-21-1-2-3-1105"),
    ("Sid~S-1-5-21-1-2-3-1105~RemoteUser~False", "S-1-5-21-1-2-3-1105"),
    ("CORP\\Alice", "corp\\alice"),
    ("MailboxGuid~ABC-1@corp.example", "mailboxguid:abc-1"),
    ("ServerInfo~a]@exch01:444/ews/exchange.asmx?#", None),
    ("DatabaseGuid~1234", None),
    ("-", None),
    ("", None),
    ("Alice Smith", "alice smith"),  # a display name: kept as written
])
def test_key(raw: str, key: str | None) -> None:
    assert mailbox.key(raw) == key


@pytest.mark.parametrize("value", ["NT AUTHORITY\\SYSTEM", "S-1-5-18", "CORP\\EXCH01$", "system", "-"])
def test_system_identities_are_not_mailboxes(value: str) -> None:
    assert mailbox.is_system(value)


@pytest.mark.parametrize("value", ["healthmailbox0a1b@corp.example", "corp\\healthmailboxabc",
                                   "systemmailbox{1f05a927-1b2c}@corp.example",
                                   "discoverysearchmailbox{d919}@x.example"])
def test_service_mailboxes(value: str) -> None:
    assert mailbox.is_service(value)


def test_aliases_join_what_the_evidence_pairs() -> None:
    aliases = mailbox.Aliases()
    aliases.pair("S-1-5-21-1-2-3-1105", "corp\\dave")
    aliases.by_local_part({"dave@corp.example", "S-1-5-21-1-2-3-1105", "ann", "ann@a.example", "ann@b.example"})
    assert aliases.canonical("S-1-5-21-1-2-3-1105") == "dave@corp.example"
    assert aliases.canonical("corp\\dave") == "dave@corp.example"
    assert aliases.canonical("ann") == "ann", "two addresses with that local part: not decided, kept as written"


def test_powershell_and_ecp_parameters() -> None:
    p = params.parse('-Mailbox "alice" -FilePath:\'\\\\srv\\x.pst\' -ForwardTo a@x.example,"b@x.example" -Export')
    assert p == {"mailbox": ["alice"], "filepath": ["\\\\srv\\x.pst"], "forwardto": ["a@x.example", "b@x.example"],
                 "export": ["True"]}
    ecp = params.parse(".Mailbox='victim@corp.example'.ForwardTo='evil@x.example'.Name='it''s'")
    assert ecp == {"mailbox": ["victim@corp.example"], "forwardto": ["evil@x.example"], "name": ["it's"]}
    assert params.values(params.parse("-ForwardingSmtpAddress $null"), "forwardingsmtpaddress") == []


def test_commands_quote_evidence_text() -> None:
    steps = remediation.steps("a'b\u2019c@x.example", [("forwarding", "")], ["mailbox-forwarding"], None, None)
    assert "Set-Mailbox -Identity 'a''b\u2019\u2019c@x.example'" in steps[0]

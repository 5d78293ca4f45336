"""Impact tells outside recipients apart with the same organisation domains as the checks: the
responder's --org-domain alone when given, else what the evidence shows."""

from __future__ import annotations

import duckdb

from exhunt.detections.impact.tracking import org_domains
from exhunt.detections.orgdomains import fill_org_domains


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE events (source VARCHAR, fields VARCHAR, kind VARCHAR, message VARCHAR, "
                "anchor_mailbox VARCHAR)")
    con.execute("""INSERT INTO events VALUES ('message_tracking',
        '{"sender-address": "ann@northwind.example", "directionality": "Originating"}', 'log', NULL, NULL),
        (NULL, NULL, 'accepted_domain', 'northwind-mail.example', NULL)""")
    return con


def test_the_responders_domains_win() -> None:
    con = _con()
    fill_org_domains(con, ["Corp.Example"])
    assert org_domains(con, ["bob@northwind.example"]) == {"corp.example"}


def test_evidence_domains_join_the_mailboxes_and_senders() -> None:
    con = _con()
    fill_org_domains(con)
    assert org_domains(con, ["bob@fabrikam.example"]) == {
        "fabrikam.example", "northwind.example", "northwind-mail.example"}


def test_without_the_detections_table_the_mailboxes_and_senders_serve() -> None:
    assert org_domains(_con(), ["bob@fabrikam.example"]) == {"fabrikam.example", "northwind.example"}

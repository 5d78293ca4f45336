"""Exchange cmdlet output saved by responders: ``Export-Csv``, ``ConvertTo-Json``, ``Export-Clixml``.

Recognised by content, never by name: the ``#TYPE`` line or CLIXML type names when present, else the
column / property names (``KINDS``). Every object is one ``events`` row, ``source='cmdlet_export'``,
``cmdlet`` the producing cmdlet, ``log_type`` the export form, ``line`` where the object starts,
``record_id`` its position in the export, ``fields`` every property as written (multi-valued: a
JSON list; remote PowerShell's ``SerializationData`` blob dropped). The columns that matter, per
``kind`` (mailbox = ``anchor_mailbox``):

- ``inbox_rule`` (Get-InboxRule): mailbox MailboxOwnerId (else Identity before ``\\``); ``message``
  the rule name; ForwardTo/RedirectTo/... in ``fields``.
- ``mailbox`` (Get-Mailbox): mailbox PrimarySmtpAddress; ``user`` UserPrincipalName; Forwarding* in
  ``fields``.
- ``mailbox_export_request`` (Get-MailboxExportRequest and its Statistics): mailbox Mailbox /
  SourceAlias; ``user`` RequestedBy; ``target_filename`` FilePath; ``message`` Status; ``ts``
  QueuedTimestamp or WhenCreated.
- ``mailbox_permission`` / ``ad_permission`` (Get-MailboxPermission / Get-ADPermission): mailbox
  Identity; ``user`` the grantee (User); ``parameters`` AccessRights and ExtendedRights.
- ``role_assignment`` (Get-ManagementRoleAssignment): ``user`` RoleAssigneeName (else RoleAssignee);
  ``parameters`` Role; ``message`` the assignment name; ``ts`` WhenCreated.
- ``virtual_directory`` (Get-*VirtualDirectory; ``cmdlet`` names which): ``uri`` ExternalUrl,
  ``uri_query`` InternalUrl, ``computer`` Server, ``message`` Name.
- ``exchange_server`` (Get-ExchangeServer): ``computer`` Fqdn/Name, ``message`` AdminDisplayVersion.
- ``exsetup_version`` (Get-Command ExSetup.exe, FileVersionInfo): ``message`` FileVersion.
- ``accepted_domain`` (Get-AcceptedDomain): ``message`` DomainName, ``parameters`` DomainType.

``Get-MessageTrackingLog`` objects become the rows a MessageTracking log gives (``source=
'message_tracking'``, ``kind='log'``, ``fields`` under the log's own column names). Build sources
(ExSetup, AdminDisplayVersion) also give the ``build`` host fact as the CLIXML artifact does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.clixml import CLIXML_NS, BuildFacts
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.exchange_logs import normalize
from exhunt.artifacts.psobjects import (
    US_DATE_RE,
    ZONELESS_ISO_RE,
    PsRecord,
    csv_header,
    flat,
    getter,
    ps_time,
    read_clixml,
    read_csv,
    read_json,
)
from exhunt.artifacts.timeparse import parse_ts

FORMS = {"csv": "Export-Csv", "json": "ConvertTo-Json", "clixml": "Export-Clixml"}
CLIXML_BUILD_KINDS = ("exchange_server", "exsetup_version")
# base64 of the whole object that remote PowerShell adds to each one (kilobytes, no new fact)
DROPPED = frozenset(("SerializationData",))


@dataclass(frozen=True)
class Kind:
    name: str
    cmdlet: str
    types: tuple[str, ...]  # type-name endings (``Deserialized.`` stripped)
    signatures: tuple[frozenset[str], ...]  # property sets, any of which names the cmdlet


def _sig(*names: str) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


KINDS: tuple[Kind, ...] = (
    Kind("message_tracking", "Get-MessageTrackingLog", ("MessageTrackingEvent",),
         (_sig("EventId", "MessageId", "Recipients", "Sender"),)),
    Kind("inbox_rule", "Get-InboxRule", (".InboxRule",),
         (_sig("MailboxOwnerId", "ForwardTo"), _sig("RuleIdentity", "RedirectTo"))),
    Kind("mailbox_export_request", "Get-MailboxExportRequest",
         ("MailboxExportRequest", "MailboxExportRequestStatistics"), (_sig("FilePath", "Status"),)),
    Kind("mailbox", "Get-Mailbox", (".Mailbox",),
         (_sig("PrimarySmtpAddress", "ForwardingSmtpAddress"),
          _sig("ForwardingAddress", "DeliverToMailboxAndForward"))),
    Kind("ad_permission", "Get-ADPermission", ("ADAcePresentationObject",),
         (_sig("User", "AccessRights", "ExtendedRights"),)),
    Kind("mailbox_permission", "Get-MailboxPermission", ("MailboxAcePresentationObject",),
         (_sig("User", "AccessRights", "IsInherited"),)),
    Kind("role_assignment", "Get-ManagementRoleAssignment", ("ExchangeRoleAssignmentPresentation",),
         (_sig("Role", "RoleAssigneeName"), _sig("Role", "RoleAssignee"))),
    Kind("virtual_directory", "Get-*VirtualDirectory", ("VirtualDirectory",),
         (_sig("InternalUrl", "ExternalUrl", "MetabasePath"), _sig("InternalUrl", "ExternalUrl", "Server"))),
    Kind("exchange_server", "Get-ExchangeServer", ("Management.ExchangeServer",),
         (_sig("AdminDisplayVersion", "Fqdn"), _sig("AdminDisplayVersion", "ServerRole"))),
    Kind("exsetup_version", "Get-Command ExSetup.exe", ("FileVersionInfo",),
         (_sig("FileVersion", "ProductVersion", "FileName"),)),
    Kind("accepted_domain", "Get-AcceptedDomain", ("AcceptedDomain",), (_sig("DomainName", "DomainType"),)),
)
TRACKING_FIELDS = {
    "Timestamp": "date-time", "ClientIp": "client-ip", "ClientHostname": "client-hostname", "ServerIp": "server-ip",
    "ServerHostname": "server-hostname", "SourceContext": "source-context", "ConnectorId": "connector-id",
    "Source": "source", "EventId": "event-id", "InternalMessageId": "internal-message-id",
    "MessageId": "message-id", "NetworkMessageId": "network-message-id", "Recipients": "recipient-address",
    "RecipientStatus": "recipient-status", "TotalBytes": "total-bytes", "RecipientCount": "recipient-count",
    "RelatedRecipientAddress": "related-recipient-address", "Reference": "reference",
    "MessageSubject": "message-subject", "Sender": "sender-address", "ReturnPath": "return-path",
    "MessageInfo": "message-info", "Directionality": "directionality", "TenantId": "tenant-id",
    "OriginalClientIp": "original-client-ip", "OriginalServerIp": "original-server-ip",
    "CustomData": "custom-data", "TransportTrafficType": "transport-traffic-type", "LogId": "log-id",
    "SchemaVersion": "schema-version",
}
PROP_RE = re.compile(rb'"([A-Za-z][A-Za-z0-9]*)"\s*:')
TYPE_RE = re.compile(r"<T>([^<]{1,300})</T>")
COLLECTION_RE = re.compile(r"^(System\.Collections\.|Microsoft\.Exchange\.Data\.MultiValuedProperty|"
                           r"Deserialized\.)[\w.`\[\], =]*$")


def kind_for(types: list[str], props: set[str]) -> Kind | None:
    names = [t.removeprefix("Deserialized.") for t in types]
    for kind in KINDS:
        if any(n.endswith(t) for n in names for t in kind.types):
            return kind
    lower = {p.lower() for p in props}
    for kind in KINDS:
        if any(sig <= lower for sig in kind.signatures):
            return kind
    return None


def sniff(head: bytes) -> str | None:
    """The export form (csv, json, clixml) when the head is a cmdlet export exhunt reads, else None."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<Objs") or (text.startswith("<?xml") and "<Objs" in text):
        kind = kind_for(TYPE_RE.findall(text), set()) if CLIXML_NS in text else None
        # ExSetup / Get-ExchangeServer CLIXML stays with the CLIXML build artifact (HealthChecker's files)
        return "clixml" if kind is not None and kind.name not in CLIXML_BUILD_KINDS else None
    if text.startswith(("[", "{")):
        props = {m.decode() for m in PROP_RE.findall(head[:4096])}
        return "json" if kind_for([], props) else None
    if text.startswith(('#TYPE ', '"')):
        types, columns, _ = csv_header(text)
        return "csv" if columns and kind_for(types, set(columns)) else None
    return None


class CmdletExport(Artifact):
    """Exchange cmdlet output as CSV, JSON or CLIXML (see the module docstring for the rows)."""

    name = "cmdlet_export"
    head_start = rb"(?:\xef\xbb\xbf|[ \t\r\n])*(?:<objs|<\?xml|\[|\{|#type |\")"
    is_log = True

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return sniff(head) is not None

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        stream = utf8_stream(ctx, stream)
        form = sniff(stream.peek(4096)[:4096]) if hasattr(stream, "peek") else None  # type: ignore[attr-defined]
        if form is None:
            ctx.warn("not a cmdlet export after all (head changed?)", None, 0)
            return
        reader = {"csv": read_csv, "json": read_json, "clixml": read_clixml}[form]
        Rows(ctx, FORMS[form]).add_all(reader(stream, ctx.warn))


class Rows:
    """Turns records into store rows; warns once per file about what an export lost."""

    def __init__(self, ctx: ParseContext, form: str) -> None:
        self.ctx, self.form = ctx, form
        self.kinds: dict[frozenset[str], Kind | None] = {}
        self.warned: set[str] = set()
        self.builds = BuildFacts(ctx.fact, ctx.warn, ctx.host)

    def add_all(self, records: Iterator[PsRecord]) -> None:
        for record in records:
            key = frozenset(record.props) | frozenset(record.types)
            if key not in self.kinds:
                self.kinds[key] = kind_for(record.types, set(record.props))
            kind = self.kinds[key]
            if kind is None:
                what = ", ".join(record.types[:1]) or ", ".join(sorted(record.props)[:6])
                self._once(f"unknown:{what}", f"object of a type exhunt does not read ({what}): skipped",
                           record.line)
                continue
            self._collections(record)
            self.add(kind, record)
        self.builds.finish()

    def _time(self, value: str | None, line: int) -> str | None:
        """ISO UTC of a PowerShell date; the zone-less culture form of Export-Csv is said once per file."""
        if value and US_DATE_RE.match(value.strip()):
            self._once("zone", "Export-Csv dates carry no zone and follow the collecting machine's culture: "
                       "read as en-US month/day in UTC (Export-Clixml keeps the zone)", line)
        elif value and ZONELESS_ISO_RE.match(value.strip()):
            self._once("iso-zone", "dates without a zone (ISO, no offset; a cmdlet's times are the collecting "
                       "machine's local time): read as UTC (Export-Clixml keeps the zone)", line)
        return ps_time(value)

    def _once(self, key: str, message: str, line: int | None) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.ctx.warn(message, line, None)

    def _collections(self, record: PsRecord) -> None:
        for name, value in record.props.items():
            if isinstance(value, str) and COLLECTION_RE.match(value) and "." in value:
                self._once(f"collection:{name}", f"property {name} exported as its type name ({value}), not its "
                           "values: export it with Select-Object @{n='" + name + "';e={$_." + name
                           + " -join ';'}}", record.line)

    def add(self, kind: Kind, record: PsRecord) -> None:
        props = {k: v for k, v in record.props.items() if k not in DROPPED}
        row: dict[str, Any]
        if kind.name == "message_tracking":
            fields = {TRACKING_FIELDS.get(k, k): flat(v) for k, v in props.items()}
            fields["date-time"] = self._time(fields.get("date-time"), record.line) or fields.get("date-time")
            row = normalize({k: v for k, v in fields.items() if v is not None}, "message_tracking")
            row.update(source="message_tracking", log_type="Get-MessageTrackingLog", line=record.line,
                       record_id=record.number, fields=orjson.dumps(fields).decode())
            if row.get("ts") is None:
                self.ctx.warn("message tracking record without a readable Timestamp", record.line)
            self.ctx.event(row)
            return
        row = {"kind": kind.name, "source": "cmdlet_export", "log_type": self.form, "line": record.line,
               "record_id": record.number, "cmdlet": _cmdlet(kind, record),
               "fields": orjson.dumps(props).decode()}
        get = getter(props)
        if kind.name == "inbox_rule":
            owner = get("MailboxOwnerId") or (get("Identity") or "").rpartition("\\")[0] or None
            row.update(anchor_mailbox=owner, message=get("Name"))
        elif kind.name == "mailbox":
            row.update(anchor_mailbox=get("PrimarySmtpAddress") or get("WindowsEmailAddress"),
                       user=get("UserPrincipalName"))
        elif kind.name == "mailbox_export_request":
            row.update(anchor_mailbox=get("Mailbox") or get("SourceAlias") or get("SourceMailboxIdentity"),
                       user=get("RequestedBy") or get("Requestor"), target_filename=get("FilePath"),
                       message=get("Status"))
        elif kind.name in ("mailbox_permission", "ad_permission"):
            row.update(anchor_mailbox=get("Identity"), user=get("User"),
                       parameters=" ".join(x for x in (get("AccessRights"), get("ExtendedRights")) if x))
        elif kind.name == "role_assignment":
            row.update(user=get("RoleAssigneeName") or get("RoleAssignee") or get("EffectiveUserName"),
                       parameters=get("Role"), message=get("Name"))
        elif kind.name == "virtual_directory":
            row.update(uri=get("ExternalUrl"), uri_query=get("InternalUrl"), computer=get("Server"),
                       message=get("Name") or get("Identity"))
        elif kind.name == "exchange_server":
            row.update(computer=get("Fqdn") or get("Name"), message=get("AdminDisplayVersion"))
            self.builds.server(record)
        elif kind.name == "exsetup_version":
            row.update(message=get("FileVersion") or get("ProductVersion"))
            self.builds.exsetup(record)
        elif kind.name == "accepted_domain":
            row.update(message=get("DomainName"), parameters=get("DomainType"))
        row["ts"] = parse_ts(self._time(get("QueuedTimestamp") or get("WhenCreatedUTC") or get("WhenCreated"),
                                        record.line))
        self.ctx.event(row)


VDIR_NAMES = {"oab": "Oab", "ecp": "Ecp", "owa": "Owa", "ews": "WebServices", "mapi": "Mapi",
              "microsoft-server-activesync": "ActiveSync", "autodiscover": "Autodiscover",
              "powershell": "PowerShell"}


def _cmdlet(kind: Kind, record: PsRecord) -> str:
    """Which Get-*VirtualDirectory: from the type name, else from the directory's name (``OAB (Default
    Web Site)``) as CSV and JSON exports carry no type."""
    if kind.name != "virtual_directory":
        return kind.cmdlet
    for name in record.types:
        match = re.search(r"AD(\w+)VirtualDirectory$", name)
        if match:
            return f"Get-{match[1]}VirtualDirectory"
    name = flat(record.props.get("Name")) or ""
    word = name.split(" ")[0].lower()
    return f"Get-{VDIR_NAMES[word]}VirtualDirectory" if word in VDIR_NAMES else kind.cmdlet

"""Mailbox exposure in the cmdlet logs (Rps_Cmdlet, ECP Server, MSExchange Management events and any
other store row with a cmdlet): export requests, mailbox and compliance searches with an export,
FullAccess and AD permissions, impersonation and import-export role assignments, forwarding inbox
rules and mailbox forwarding.

Confidence: high when the cmdlet ran as an attacker account, in an ECP session as SYSTEM (an SSRF),
or right after an attacker web request for the same ECP page or PowerShell cmdlet; medium for an
export or forwarding with no linked source; low for a permission or role grant an administrator
might plausibly make.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from exhunt.detections.impact import mailbox
from exhunt.detections.impact.access import REF_COLUMNS, Access, ref, rows
from exhunt.detections.impact.params import first, parse, values
from exhunt.detections.impact.sources import Sources

if TYPE_CHECKING:
    import duckdb

# Raw-line regexes (Hyperscan subset, case-insensitive) of which every cmdlet row this module can
# use matches one: the text-log triage must parse these lines whatever their source.
CMDLETS = ("new-mailboxexportrequest", "search-mailbox", "new-mailboxsearch", "set-mailboxsearch",
           "new-compliancesearch", "new-compliancesearchaction", "add-mailboxpermission", "add-adpermission",
           "add-mailboxfolderpermission", "new-managementroleassignment", "new-inboxrule", "set-inboxrule",
           "set-mailbox")
PREFILTER = (
    r"new-mailboxexportrequest", r"search-mailbox", r"(new|set)-mailboxsearch", r"new-compliancesearch",
    r"add-(mailbox|ad|mailboxfolder)permission", r"new-managementroleassignment", r"(new|set)-inboxrule",
    r"set-mailbox[^a-z].*forwarding",
)
LINK_WINDOW = timedelta(seconds=120)
WEB_TARGET_RE = re.compile(r"(?i)(\.(aspx|ashx|asmx|asp)\b|inetpub|aspnet_client|frontend.httpproxy|"
                           r"clientaccess|\\owa\\|\\ecp\\)")
ODD_TARGET_RE = re.compile(r"(?i)^\\\\(127\.|localhost|\[?::1)|\\[a-z]\$\\")
ROLES = {"applicationimpersonation": "impersonation-role", "mailboximportexport": "import-export-role"}
FORWARD_PARAMS = ("forwardto", "redirectto", "forwardasattachmentto")
# (mailbox as logged, how, confidence without a linked source or None to skip, remedy, targets)
Effect = tuple[str, str, str | None, tuple[str, str], tuple[str, ...]]
EXCERPT = "concat_ws(' ', name, params, 'user=' || actor)"


def cmdlet_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = ", ".join(f"'{c}'" for c in CMDLETS)
    return rows(con.execute(f"""
        WITH c AS (
            SELECT {REF_COLUMNS}, client_ip, "user",
                   coalesce(cmdlet, json_extract_string(fields, '$.Cmdlet')) AS name,
                   coalesce(parameters, json_extract_string(fields, '$.Parameters'), message) AS params,
                   coalesce(json_extract_string(fields, '$.Data[2]'), json_extract_string(fields, '$.param3'))
                       AS caller,
                   json_extract_string(fields, '$.ExecutingUserSid') AS sid,
                   json_extract_string(fields, '$.EventData') AS ecp
            FROM events WHERE source NOT IN ('iis', 'httpproxy')
              AND coalesce(cmdlet, json_extract_string(fields, '$.Cmdlet')) IS NOT NULL
        ), d AS (
            SELECT *, coalesce(nullif("user", ''), regexp_extract(ecp, 'S:USID=([^;]+)', 1),
                               regexp_extract(ecp, 'S:SID=(S-1-5-[0-9-]+)', 1), caller) AS actor,
                      regexp_extract(ecp, 'S:URL=([^;?]*)', 1) AS url
            FROM c WHERE lower(name) IN ({names})
        )
        SELECT *, {EXCERPT} AS excerpt FROM d"""))


def admin_accesses(cmd_rows: list[dict[str, Any]], web_rows: list[dict[str, Any]], src: Sources,
                   aliases: mailbox.Aliases) -> tuple[list[Access], set[str]]:
    """Accesses from the cmdlet rows, and the accounts granted impersonation or FullAccess."""
    searches: dict[str, list[str]] = {}
    for row in cmd_rows:
        if row["name"].lower() == "new-compliancesearch":
            p = parse(row["params"])
            searches.setdefault((first(p, "name") or "").lower(), []).extend(values(p, "exchangelocation"))
    out: list[Access] = []
    grantees: set[str] = set()
    timeline = WebIndex(web_rows)
    for row in cmd_rows:
        aliases.pair(mailbox.key(row["user"]), mailbox.key(row["sid"]))
        p = parse(row["params"])
        labels = _labels(row, timeline, src)
        for raw, how, base, remedy, targets in _effects(row["name"].lower(), p, row, searches):
            if how in ("fullaccess-permission", "ad-permission", "impersonation-role", "import-export-role",
                       "folder-permission") and remedy[1]:
                grantees.add(mailbox.key(remedy[1]) or remedy[1].lower())
            confidence = "high" if labels else base
            if confidence is None:
                continue
            out.append(Access(row["host"], raw, how, confidence, ref(row, row["excerpt"]), row["ts"],
                              labels or ((f"by {row['actor']}",) if row["actor"] else ()), remedy=remedy,
                              targets=targets, actor=row["actor"], client_ip=row["client_ip"]))
    return out, grantees


class WebIndex:
    """Attacker web rows per host in time order, to find those near a cmdlet row without a scan."""

    def __init__(self, web_rows: list[dict[str, Any]]) -> None:
        self._rows: dict[str, list[dict[str, Any]]] = {}
        for web in web_rows:
            if web["ts"] is not None:
                self._rows.setdefault(web["host"], []).append(web)
        for rows_ in self._rows.values():
            rows_.sort(key=lambda r: r["ts"])
        self._times = {h: [r["ts"] for r in rs] for h, rs in self._rows.items()}

    def near(self, host: str, ts: datetime | None) -> list[dict[str, Any]]:
        if ts is None or host not in self._rows:
            return []
        times = self._times[host]
        return self._rows[host][bisect_left(times, ts - LINK_WINDOW):bisect_right(times, ts + LINK_WINDOW)]


def _labels(row: dict[str, Any], timeline: WebIndex, src: Sources) -> tuple[str, ...]:
    labels = list(src.label(row["client_ip"], None, row["actor"]))
    if row["source"] == "ecp_server" and mailbox.is_system(row["actor"]) and row["actor"]:
        labels.append(f"ECP session as {row['actor']} (SSRF)")
    name, url = row["name"].lower(), (row["url"] or "").lower()
    for web in timeline.near(row["host"], row["ts"]):
        action = (web.get("protocol_action") or "").split(":")[0].lower()
        if (url and (web["uri"] or "").lower() == url) or action == name:
            labels.append(f"{web['client_ip']} (linked request at {web['ts'].astimezone(UTC):%H:%M:%S}Z)")
            labels.extend(src.label(web["client_ip"], web["user_agent"], None))
            break
    return tuple(dict.fromkeys(labels))


def _effects(name: str, p: dict[str, list[str]], row: dict[str, Any], searches: dict[str, list[str]]
             ) -> list[Effect]:
    """What one cmdlet did to which mailboxes (see ``Effect``)."""
    if name == "new-mailboxexportrequest":
        box, path = first(p, "mailbox", "identity"), first(p, "filepath") or ""
        if WEB_TARGET_RE.search(path):
            return [(box or "*", "export-request:web-folder", "high", ("export", path), ())]
        how = "export-request:odd-target" if ODD_TARGET_RE.search(path) else "export-request"
        return [(box or "*", how, "medium", ("export", path), ())]
    if name == "search-mailbox":
        target = first(p, "targetmailbox")
        how = "mailbox-search:delete" if "deletecontent" in p else "mailbox-search"
        how = "mailbox-search:copy" if target else how
        return [(box, how, "medium" if target else "low", ("search", target or ""), ())
                for box in values(p, "identity")[:1]]
    if name in ("new-mailboxsearch", "set-mailboxsearch"):
        target = first(p, "targetmailbox")
        boxes = values(p, "sourcemailboxes") or (["*"] if target else [])
        return [(box, "mailbox-search:export" if target else "mailbox-search", "medium" if target else "low",
                 ("search", first(p, "name", "identity") or ""), ()) for box in boxes]
    if name == "new-compliancesearch":
        return [(box, "compliance-search", "low", ("compliance", first(p, "name") or ""), ())
                for box in values(p, "exchangelocation")]
    if name == "new-compliancesearchaction":
        if "export" not in p:
            return []
        search = first(p, "searchname") or ""
        boxes = searches.get(search.lower()) or ["*"]
        return [(box, "compliance-search:export", "medium", ("compliance", search), ()) for box in boxes]
    if name in ("add-mailboxpermission", "add-adpermission", "add-mailboxfolderpermission"):
        return _permission(name, p)
    if name == "new-managementroleassignment":
        role = re.sub(r"\s+", "", (first(p, "role") or "")).lower()
        role_how = ROLES.get(role)
        grantee = first(p, "user", "securitygroup", "app") or ""
        return [("*", role_how, "low", ("role", grantee), ())] if role_how else []
    if name in ("new-inboxrule", "set-inboxrule"):
        return _rule(name, p, row)
    if name == "set-mailbox":
        targets = tuple(values(p, "forwardingsmtpaddress", "forwardingaddress"))
        box = first(p, "identity")
        return [(box, "mailbox-forwarding", "medium", ("forwarding", box), targets)] if targets and box else []
    return []


def _permission(name: str, p: dict[str, list[str]]) -> list[Effect]:
    identity, user = first(p, "identity") or "", first(p, "user") or ""
    if not identity or not user or mailbox.is_system(user) or user.lower().endswith("\\self"):
        return []
    rights = " ".join(values(p, "accessrights", "extendedrights")).lower().replace("-", "")
    if name == "add-mailboxpermission":
        return [(identity, "fullaccess-permission", "low", ("permission", user), ())] if "fullaccess" in rights else []
    if name == "add-adpermission":
        keep = any(r in rights for r in ("receiveas", "sendas", "genericall", "fullcontrol"))
        return [(identity, "ad-permission", "low", ("adpermission", user), ())] if keep else []
    return [(identity.split(":")[0], "folder-permission", "low", ("folder", user), ())]


def _rule(name: str, p: dict[str, list[str]], row: dict[str, Any]
          ) -> list[Effect]:
    identity = first(p, "identity") or ""
    box = first(p, "mailbox") or (identity.rsplit("\\", 1)[0] if identity.count("\\") >= 1 else None)
    if not box and row["url"]:
        match = re.match(r"(?i)^/ecp/([^/]+@[^/]+)/", row["url"])
        box = match.group(1) if match else None
    if not box:
        box = row["actor"]
    targets = tuple(values(p, *FORWARD_PARAMS))
    rule = first(p, "name") or identity
    if not box or mailbox.is_system(box):
        return []
    if targets:
        return [(box, "inbox-rule-forward", "medium", ("rule", rule), targets)]
    return [(box, "inbox-rule", None, ("rule", rule), ())]  # listed only from an attacker source

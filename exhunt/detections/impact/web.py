"""Mailbox access in the web logs: HttpProxy Ews/Owa/Mapi/Eas/Autodiscover rows and EWS back-end rows
(``Logging\\Ews``) from attacker sources, SSRF-fed SYSTEM back-end calls, impersonation by an account
that was granted it, and ProxyToken inbox-rule requests (``/ecp/<mailbox>/RulesEditor/…/NewObject``).

Which mailbox: an HttpProxy row names it in ``AnchorMailbox`` (else the EAS ``User=`` or the
authenticated user); an EWS row in ``ImpersonatedUser``, ``ActAsUser`` or ``ProxyAsUser`` before
``AuthenticatedUser``. EWS ``LocalIdCount + RemoteIdCount`` (item ids in the request) are the items
of GetItem, GetAttachment and ExportItems; ``ResponseBytes``/``ResponseSize`` the bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote_plus

from exhunt.detections.impact import mailbox
from exhunt.detections.impact.access import REF_COLUMNS, Access, add_fields, ref, rows, to_int
from exhunt.detections.impact.sources import SYSTEM_SQL, Sources

if TYPE_CHECKING:
    import duckdb

EWS_FIELDS = ("SoapAction", "ImpersonatedUser", "ActAsUser", "ProxyAsUser", "ResponseSize", "LocalIdCount",
              "RemoteIdCount")
MAILBOX_PROTOCOLS = ("ews", "owa", "mapi", "eas", "autodiscover", "rpchttp")
ITEM_ACTIONS = {"getitem", "getattachment", "exportitems"}
ATTACHMENT_RE = re.compile(r"(?i)(getfileattachment|getattachment|attachment\.ashx|getallattachmentsaszip|"
                           r"downloadattachment)")
PROXYTOKEN_SQL = ("regexp_matches(coalesce(uri_decoded, uri), "
                  "'^/ecp/[^/]+@[^/]+/ruleseditor/inboxrules\\.svc/newobject', 'i')")
HTTP_EXCERPT = ("concat_ws(' ', method, uri, uri_query, 'AnchorMailbox=' || anchor_mailbox, 'status=' || status, "
                "'user=' || \"user\", 'client=' || client_ip, 'UA=' || user_agent)")
SOURCE_MATCH = ("(list_contains($ips::VARCHAR[], lower(split_part(client_ip, '%', 1))) "
                "OR list_contains($uas::VARCHAR[], user_agent) "
                "OR list_contains($accounts::VARCHAR[], lower(\"user\")))")


def params(src: Sources) -> dict[str, list[str]]:
    return {"ips": sorted(src.ips), "uas": sorted(src.user_agents), "accounts": sorted(src.accounts)}


def attacker_web_rows(con: duckdb.DuckDBPyConnection, src: Sources) -> list[dict[str, Any]]:
    """Every IIS and HttpProxy row from an attacker source (the cmdlet rows are linked to them too)."""
    if not (src.ips or src.user_agents or src.accounts):
        return []
    found = rows(con.execute(f"""
        SELECT {REF_COLUMNS}, client_ip, user_agent, "user", method, uri, uri_query, uri_decoded, status,
               lower(protocol) AS protocol, anchor_mailbox, {HTTP_EXCERPT} AS excerpt
        FROM events WHERE source IN ('iis', 'httpproxy') AND {SOURCE_MATCH}""", params(src)))
    add_fields(con, found, ("ResponseBytes", "ProtocolAction"))
    for row in found:
        row["response_bytes"], row["protocol_action"] = row.pop("responsebytes"), row.pop("protocolaction")
    return found


def frontend(web_rows: list[dict[str, Any]], src: Sources) -> list[Access]:
    out = []
    for row in web_rows:
        if row["source"] != "httpproxy" or row["protocol"] not in MAILBOX_PROTOCOLS:
            continue
        if (row["status"] or 0) >= 400:  # refused, unauthenticated or failed: no mail was read (401, 403, 500)
            continue
        raw = _frontend_mailbox(row)
        labels = src.label(row["client_ip"], row["user_agent"], row["user"])
        if raw is None or own_traffic(labels, raw, row["user"], src.before_intrusion(row["ts"])):
            continue
        how = row["protocol"]
        text = " ".join(filter(None, (row["uri"], row["uri_query"], row["protocol_action"])))
        if how == "owa" and ATTACHMENT_RE.search(text):
            how = "owa:attachment"
        elif row["protocol_action"]:
            how += ":" + row["protocol_action"].split(":")[0]
        # tied by its user agent alone (no attacker address or account): an app may share a stock agent
        # (the EWS Managed API's ExchangeServicesClient/0.0.0.0), so the row is no proof by itself. An
        # Autodiscover lookup resolves the mailbox (the first step of ProxyLogon's chain) but reads no mail.
        if row["protocol"] == "autodiscover":
            confidence = "low"
        elif labels and all(label.startswith("UA ") for label in labels):
            confidence = "medium"
        else:
            confidence = "high"
        out.append(Access(row["host"], raw, how, confidence, ref(row, row["excerpt"]), row["ts"], labels,
                          bytes=to_int(row["response_bytes"]), client_ip=row["client_ip"], frontend=True))
    return out


def own_traffic(labels: tuple[str, ...], raw: str | None, user: str | None, before_intrusion: bool = False) -> bool:
    """An account on its own mailbox, tied to the attacker only by that account (the owner's own
    traffic from their usual clients), or from an attacker address or user agent before the first row
    of the findings behind them (the owner's traffic from an address the attacker used later: a NAT,
    a hotel, a VPN exit). From an attacker address during or after the intrusion it is listed."""
    if not labels or not (before_intrusion or all(label.startswith("account ") for label in labels)):
        return False
    box, who = mailbox.key(raw), mailbox.key(user)
    return bool(box and who) and (box == who or mailbox.local_part(box or "") == mailbox.local_part(who or ""))


def _frontend_mailbox(row: dict[str, Any]) -> str | None:
    anchor = row["anchor_mailbox"]
    if anchor and mailbox.key(anchor) and not mailbox.is_system(anchor):
        return str(anchor)
    if row["protocol"] == "eas" and row["uri_query"]:
        user = parse_qs(unquote_plus(row["uri_query"]).lstrip("?")).get("User")
        if user and user[0]:
            return user[0]
    user = row["user"]
    return None if mailbox.is_system(user) else str(user)


def backend_ews(con: duckdb.DuckDBPyConnection, src: Sources, grantees: set[str]) -> list[Access]:
    """EWS back-end rows from attacker sources, SSRF-fed SYSTEM calls, and impersonation by grantees."""
    # the cheap columns pick the rows; their raw fields are read afterwards (EWS logs are large)
    found = rows(con.execute(f"""
        SELECT {REF_COLUMNS}, client_ip, user_agent, "user", status FROM events
        WHERE lower(log_type) LIKE 'ews%'
          AND ({SOURCE_MATCH} OR regexp_full_match(lower("user"), '{SYSTEM_SQL}')
               OR list_contains($grantees::VARCHAR[], lower("user")))""", params(src) | {"grantees": sorted(grantees)}))
    add_fields(con, found, EWS_FIELDS)
    out = []
    for row in found:
        if (row["status"] or 0) >= 400:  # refused or failed (HttpStatus): as on the front end, no mail read
            continue
        labels = src.label(row["client_ip"], row["user_agent"], row["user"])
        if not labels and not mailbox.is_system(row["user"]) and not mailbox.clean(row["impersonateduser"]):
            continue  # a granted account's own mailbox use
        excerpt = " ".join(filter(None, (
            row["soapaction"], f"user={row['user']}", *(f"{n}={row[n]}" for n in ("impersonateduser", "actasuser",
                                                                               "proxyasuser") if row[n]),
            f"client={row['client_ip']}", f"UA={row['user_agent']}")))
        system = mailbox.is_system(row["user"])
        if system and src.is_server(row["client_ip"]) and not labels:
            continue  # the server's own SYSTEM calls (probes, assistants)
        if system:
            labels = (f"SSRF as {row['user']} from {row['client_ip']}", *labels)
        raw = next((v for v in (row["impersonateduser"], row["actasuser"], row["proxyasuser"], row["user"])
                    if mailbox.clean(v) and not mailbox.is_system(v)), None)
        if raw is None or own_traffic(labels, raw, row["user"], src.before_intrusion(row["ts"])):
            continue
        confidence = "high" if labels else "medium"
        if not labels:
            labels = (f"impersonation by {row['user']}",)
        action = (row["soapaction"] or "request").strip()
        items = None
        if action.lower() in ITEM_ACTIONS:
            counts = [to_int(row["localidcount"]), to_int(row["remoteidcount"])]
            items = sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
        out.append(Access(row["host"], raw, f"ews:{action}", confidence, ref(row, excerpt), row["ts"],
                          labels, items=items, bytes=to_int(row["responsesize"]), client_ip=row["client_ip"]))
    return out


def proxytoken(con: duckdb.DuckDBPyConnection, src: Sources) -> list[Access]:
    found = rows(con.execute(f"""
        SELECT {REF_COLUMNS}, client_ip, user_agent, "user",
               regexp_extract(coalesce(uri_decoded, uri), '^/ecp/([^/]+)/', 1) AS target, {HTTP_EXCERPT} AS excerpt
        FROM events WHERE source IN ('iis', 'httpproxy') AND {PROXYTOKEN_SQL}"""))
    add_fields(con, found, ("cs(Cookie)", "Cookie"))
    out = []
    for row in found:
        row["cookie"] = (row["cs(cookie)"] or row["cookie"] or "").lower()
        labels = src.label(row["client_ip"], row["user_agent"], row["user"])
        user = mailbox.clean(row["user"])
        if labels or "securitytoken=" in row["cookie"]:
            confidence = "high"
        elif not user:
            confidence = "medium"
        else:
            confidence = "low"  # an authenticated user managing a delegated mailbox
        if user and mailbox.key(user) == mailbox.key(row["target"]):
            continue  # the owner's own rule
        out.append(Access(row["host"], row["target"], "proxytoken-inbox-rule", confidence,
                          ref(row, row["excerpt"]), row["ts"], labels or ("ProxyToken request",),
                          remedy=("rule", ""), client_ip=row["client_ip"]))
    return out

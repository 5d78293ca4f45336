"""One mailbox, whatever form a log wrote it in.

Exchange logs name a mailbox as ``SMTP:x@y``, ``Smtp~x@y``, ``Sid~S-1-5-21-…``, ``MailboxGuid~…``,
``DOMAIN\\user``, ``x@y`` or an alias, in any letter case. ``key`` gives each form one comparable
key (lower-case address, lower-case ``domain\\user``, upper-case SID); ``Aliases`` joins keys that the
evidence itself pairs (a cmdlet row's user and SID, an audit row's UPN and SID) so that two forms of
one mailbox become one entry. A value that nothing pairs is kept as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ADDRESS_RE = re.compile(r"^[^@\s\\/]+@[^@\s\\/]+\.[^@\s\\/]+$")
SID_RE = re.compile(r"(?i)\bS-1-5-[0-9-]+\b")
PREFIX_RE = re.compile(r"^(?P<kind>[A-Za-z]+)[:~](?P<value>.+)$")
# AnchorMailbox and routing prefixes that name a mailbox, and those that name something else
MAILBOX_PREFIXES = {"smtp", "mbx", "mailbox", "primarysmtp", "x500", "upn", "liveidmembername"}
GUID_PREFIXES = {"mailboxguid"}
NOT_MAILBOX_PREFIXES = {"serverinfo", "serverversion", "databaseguid", "databasename", "domain", "domainanchor",
                        "organizationaddress", "externaldirectoryobjectid", "oid", "puid", "tenant", "anonymous"}
# Who the server itself runs as: the account of an SSRF-fed back-end call, never a mailbox
SYSTEM_RE = re.compile(r"(?i)^(nt authority\\system|system|s-1-5-18|[^\\@]+\\system|local ?system|"
                       r"nt authority\\.*|autorit[ée] nt\\.*|[^@]*\$|anonymous|-|)$")
# Mailboxes Exchange keeps for itself: monitoring, arbitration, discovery, migration, federation
SERVICE_RE = re.compile(r"(?i)(^|[\\/:~])(healthmailbox|systemmailbox\{|discoverysearchmailbox|federatedemail\.|"
                        r"migration\.|sm_|extest_|microsoft ?exchange|exchange ?online-applicationaccount)")


def clean(value: str | None) -> str:
    text = (value or "").strip().strip("'\"").strip()
    return "" if text in ("-", "$null", "null") else text


def key(value: str | None) -> str | None:
    """The comparable key of one logged mailbox value, or None when it names no mailbox."""
    text = clean(value)
    if not text:
        return None
    match = PREFIX_RE.match(text)
    if match and "\\" not in text:
        kind = match["kind"].lower()
        rest = match["value"].strip()
        if kind in NOT_MAILBOX_PREFIXES:
            return None
        if kind == "sid":
            sid = SID_RE.search(rest)
            return sid.group(0).upper() if sid else None
        if kind in GUID_PREFIXES:
            return "mailboxguid:" + rest.split("@")[0].lower()
        if kind in MAILBOX_PREFIXES:
            text = rest
    sid = SID_RE.fullmatch(text)
    if sid:
        return text.upper()
    return text.lower()


def is_address(k: str) -> bool:
    return bool(ADDRESS_RE.match(k))


def is_system(value: str | None) -> bool:
    """The server's own or no account (SYSTEM, S-1-5-18, a machine account ``X$``, anonymous)."""
    return bool(SYSTEM_RE.match(clean(value)))


def is_service(k: str) -> bool:
    """A health, system, discovery or other mailbox that Exchange keeps for itself."""
    return bool(SERVICE_RE.search(k))


def local_part(k: str) -> str | None:
    if "\\" in k:
        return k.rsplit("\\", 1)[1]
    if is_address(k):
        return k.split("@", 1)[0]
    return None


class Aliases:
    """Keys that the evidence pairs (union-find); the canonical one is an SMTP address if any."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _find(self, k: str) -> str:
        root = k
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        self._parent[k] = root
        return root

    def pair(self, a: str | None, b: str | None) -> None:
        if not a or not b or a == b or is_system(a) or is_system(b):
            return
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            winner, loser = (ra, rb) if (_rank(ra), rb) > (_rank(rb), ra) else (rb, ra)
            self._parent[loser] = winner
            self._parent.setdefault(winner, winner)

    def by_local_part(self, known: Iterable[str]) -> None:
        """``DOMAIN\\user`` or a bare alias pairs with the one address whose local part is ``user``:
        the account name equals the alias part of the address in a default Exchange set-up. Two
        addresses with that local part: the evidence does not decide, nothing is paired."""
        keys = set(known) | set(self._parent)
        addresses: dict[str, list[str]] = {}
        for k in keys:
            if is_address(k):
                addresses.setdefault(k.split("@", 1)[0], []).append(k)
        for k in keys:
            if is_address(k) or k.startswith(("S-1-", "mailboxguid:")):
                continue
            name = local_part(k) or (k if re.fullmatch(r"[\w.\-]+", k) else None)
            matches = addresses.get(name or "", [])
            if len(matches) == 1:
                self.pair(k, matches[0])

    def canonical(self, k: str) -> str:
        return self._find(k)


def _rank(k: str) -> int:
    """Which form names a mailbox best: address > domain\\user > alias > SID > mailbox GUID."""
    if is_address(k):
        return 4
    if "\\" in k:
        return 3
    if k.startswith("mailboxguid:"):
        return 0
    if k.startswith("S-1-"):
        return 1
    return 2

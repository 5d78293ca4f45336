"""Cmdlet parameters as the logs write them, into ``{name: [values]}`` (names lower-case).

Rps_Cmdlet logs and MSExchange Management events write PowerShell syntax
(``-Mailbox "alice" -FilePath:'\\\\srv\\x.pst' -ForwardTo a@x.example,b@x.example -Export``);
the ECP Server log writes ``.Name='value'`` after the cmdlet name (``S:CMD=New-InboxRule.Mailbox='x'``).
A switch has the value ``True``.
"""

from __future__ import annotations

import re

TOKEN_RE = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|,|[^\s,]+')
NAME_RE = re.compile(r"^-([A-Za-z][A-Za-z0-9_]*)(?::(.*))?$", re.S)
ECP_RE = re.compile(r"\.([A-Za-z][A-Za-z0-9_]*)=(?:'((?:[^']|'')*)'|([^.;']*))")


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        q = text[0]
        return text[1:-1].replace(q + q, q)
    return text


def parse(text: str | None) -> dict[str, list[str]]:
    if not text:
        return {}
    if text.lstrip().startswith(".") or ("='" in text and not re.search(r"(^|\s)-[A-Za-z]", text)):
        return _parse_ecp(text)
    out: dict[str, list[str]] = {}
    current: str | None = None
    for token in TOKEN_RE.findall(text):
        if token == ",":
            continue
        name = NAME_RE.match(token)
        if name:
            current = name.group(1).lower()
            values = out.setdefault(current, [])
            if name.group(2):
                values.extend(v for v in (unquote(x) for x in name.group(2).split(",")) if v)
            continue
        if current is not None:
            out[current].append(unquote(token))
    for values in out.values():
        if not values:
            values.append("True")
    return out


def _parse_ecp(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, quoted, bare in ECP_RE.findall(text):
        value = quoted.replace("''", "'") if quoted else bare
        out.setdefault(name.lower(), []).extend(v.strip() for v in re.split(r"[,;]", value) if v.strip())
    return out


def first(params: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        for value in params.get(name, ()):
            if value and value.lower() not in ("$null", "null", "$false", "false"):
                return value
    return None


def values(params: dict[str, list[str]], *names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        for value in params.get(name, ()):
            for part in value.split(","):
                part = unquote(part)
                if part and part.lower() not in ("$null", "null", "$false", "false", "true", "$true"):
                    out.append(part)
    return out

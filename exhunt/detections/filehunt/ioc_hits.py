"""IOC lists against files (hashes, path/filename regexes) and log events (IPs, user agents,
domains in URIs and referers)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from exhunt.detections.base import EXCERPT_CHARS, Check, Hit
from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check
from exhunt.detections.iocs import IocSet
from exhunt.detections.iocs.model import Indicator, ip_key, ip_network, url_body
from exhunt.detections.iocs.pathmatch import PathMatcher, windows_form

DOMAIN_TOKEN = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"


HASH_CHECK = make_check(
    "ioc.file_hash",
    "File hash on an IOC list",
    "critical",
    "The file's SHA-256/SHA-1/MD5 is listed by an IOC feed given with --iocs.",
    ("T1505.003",),
)
PATH_CHECK = make_check(
    "ioc.file_path",
    "File name or path on an IOC list",
    "high",
    "The file's path matches a path or filename regex from an IOC list given with --iocs.",
    ("T1505.003",),
)


def file_ioc_findings(ctx: FileHuntContext, iocs: IocSet) -> None:
    hashes = iocs.of("md5", "sha1", "sha256")
    if hashes:
        table = pa.table(
            {
                "kind": [i.kind for i in hashes],
                "value": [i.value for i in hashes],
                "name": [i.name for i in hashes],
                "origin": [i.source for i in hashes],
            }
        )
        ctx.con.register("ioc_hashes", table)
        rows = ctx.con.execute(
            "SELECT DISTINCT f.host, f.path, f.sha256, f.mtime, i.kind, i.value, i.name, i.origin "
            "FROM files f "
            "JOIN ioc_hashes i ON (i.kind = 'sha256' AND lower(f.sha256) = i.value) "
            "OR (i.kind = 'sha1' AND lower(f.sha1) = i.value) OR (i.kind = 'md5' AND lower(f.md5) = i.value)"
        ).fetchall()
        ctx.con.unregister("ioc_hashes")
        ctx.flagged.update((r[0], r[1]) for r in rows)
        ctx.emit(
            HASH_CHECK,
            (
                file_hit(HASH_CHECK, h, path, sha, mtime, f"{kind} {value} listed in {Path(origin).name}: {name}",
                         "iocs", key=sha, ioc_list=Path(origin).name)
                for h, path, sha, mtime, kind, value, name, origin in rows
            ),
        )
    regexes, paths = iocs.of("filename_regex"), iocs.of("path")
    if not regexes and not paths:
        return
    files = ctx.con.execute("SELECT host, path, sha256, mtime FROM files ORDER BY host, path").fetchall()
    ctx.emit(PATH_CHECK, _path_hits(files, regexes, paths, ctx.flagged))


def _path_hits(
    files: list[tuple], regexes: list, paths: list, flagged: set[tuple[str, str]]
) -> Iterator[Hit]:
    seen: set[tuple[int, str]] = set()
    matched: list[tuple[int, Any]] = []
    if regexes:
        matched.extend(PathMatcher(regexes).match([f[1] for f in files]))
    by_name: dict[str, list] = defaultdict(list)
    for ind in paths:
        by_name[ind.value.rsplit("\\", 1)[-1]].append(ind)
    for n, f in enumerate(files):
        win = windows_form(f[1]).lower()
        for ind in by_name.get(win.rsplit("\\", 1)[-1], ()):
            if win.endswith(ind.value):
                matched.append((n, ind))
    for n, ind in matched:
        if (n, ind.value) in seen:
            continue
        seen.add((n, ind.value))
        host, path, sha, mtime = files[n]
        score = ind.score if ind.score is not None else 80
        flagged.add((host, path))
        yield file_hit(PATH_CHECK, host, path, sha, mtime,
                       f"{ind.kind} {ind.value} (score {score}) from {Path(ind.source).name}: {ind.name}",
                       "iocs", "high" if score >= 75 else "medium" if score >= 60 else "low")


IP_CHECK = make_check(
    "ioc.client_ip",
    "Requests from an IP address on an IOC list",
    "high",
    "IIS/HttpProxy/Exchange log rows whose client IP is listed by an IOC feed.",
    ("T1190",),
    ("Review everything the listed address requested; block it at the perimeter.",),
)
UA_CHECK = make_check(
    "ioc.user_agent",
    "Requests with a user agent on an IOC list",
    "medium",
    "Log rows whose user agent is listed by an IOC feed (used by 2021 Exchange exploitation).",
    ("T1190",),
    ("Review the requests and what the same clients did next.",),
)
DOMAIN_CHECK = make_check(
    "ioc.domain",
    "A domain on an IOC list in a request or referer",
    "high",
    "A domain listed by an IOC feed appears in a request URI, query or referer.",
    ("T1071",),
    ("Block the domain; review the requests and the hosts that made them.",),
)
URL_CHECK = make_check(
    "ioc.url",
    "A URL on an IOC list in a request or referer",
    "high",
    "A URL listed by an IOC feed appears in a request URI, query or referer.",
    ("T1071", "T1105"),
    ("Block the URL's host; review the requests and the hosts that made them.",),
)


def _events_hits(ctx: FileHuntContext, check: Check, sql: str, table: pa.Table, what: str) -> None:
    """``sql`` selects EVENT_COLUMNS, the listed value, its name and list, and optionally the value
    as the log wrote it (the finding's indicator; the listed value otherwise)."""
    ctx.con.register("ioc_values", table)
    cursor = ctx.con.execute(sql)
    hits = []
    while batch := cursor.fetchmany(10_000):
        for host, path, source, ts, line, record_id, excerpt, value, name, origin, *logged in batch:
            seen = logged[0] if logged else value
            listed = value if seen == value else f"{value} ({seen})"
            hits.append(
                Hit(
                    check=check.id,
                    host=host,
                    key=value,
                    path=path,
                    source=source,
                    ts=ts,
                    line=line,
                    record_id=record_id,
                    confidence="medium",
                    excerpt=f"{excerpt} [{what} {listed} from {Path(origin).name}: {name}]"[:EXCERPT_CHARS],
                    indicators={what: seen},
                )
            )
    ctx.con.unregister("ioc_values")
    ctx.emit(check, hits)


EVENT_COLUMNS = (
    "e.host, e.path, e.source, e.ts, e.line, e.record_id, "
    "concat_ws(' ', e.method, e.uri, e.uri_query, 'status=' || e.status, 'client=' || e.client_ip, "
    "'UA=' || e.user_agent)"
)


def event_ioc_findings(ctx: FileHuntContext, iocs: IocSet) -> None:
    def table(kind: str, normalize: Any = str) -> pa.Table | None:
        items = {normalize(i.value): i for i in iocs.of(kind)}
        if not items:
            return None
        return pa.table(
            {
                "value": list(items),
                "name": [i.name for i in items.values()],
                "origin": [i.source for i in items.values()],
            }
        )

    ips = _client_ips(ctx, iocs)
    if ips is not None:
        _events_hits(
            ctx,
            IP_CHECK,
            f"SELECT {EVENT_COLUMNS}, i.value, i.name, i.origin, i.logged FROM events e "
            "JOIN ioc_values i ON e.client_ip = i.logged",
            ips,
            "client_ip",
        )
    uas = table("user_agent", lambda v: v.replace("+", " ").strip().lower())
    if uas is not None:
        _events_hits(
            ctx,
            UA_CHECK,
            f"SELECT {EVENT_COLUMNS}, i.value, i.name, i.origin FROM events e "
            "JOIN ioc_values i ON lower(trim(replace(e.user_agent, '+', ' '))) = i.value",
            uas,
            "user_agent",
        )
    domains = table("domain", lambda v: v.lower())
    if domains is not None:
        _events_hits(
            ctx,
            DOMAIN_CHECK,
            f"""
            WITH tokens AS (
                SELECT e.*, unnest(regexp_extract_all(lower(concat_ws(' ', e.uri, e.uri_query, e.uri_decoded,
                       json_extract_string(e.fields, '$."cs(Referer)"'),
                       json_extract_string(e.fields, '$.Referer'))),
                       '{DOMAIN_TOKEN}')) AS token
                FROM events e WHERE e.kind = 'http')
            SELECT DISTINCT {EVENT_COLUMNS}, i.value, i.name, i.origin FROM tokens e
            JOIN ioc_values i ON e.token = i.value OR ends_with(e.token, '.' || i.value)""",
            domains,
            "domain",
        )
    urls = _urls(iocs)
    if urls is not None:
        _events_hits(
            ctx,
            URL_CHECK,
            f"""
            SELECT DISTINCT {EVENT_COLUMNS}, i.value, i.name, i.origin FROM events e
            JOIN ioc_values i ON regexp_matches(lower(concat_ws(' ', e.uri, e.uri_query, e.uri_decoded,
                 json_extract_string(e.fields, '$."cs(Referer)"'), json_extract_string(e.fields, '$.Referer'))),
                 i.regex)
            WHERE e.kind = 'http'""",
            urls,
            "url",
        )


# what may follow a URL's last path name in a request (decoded or not) or a referer: not more of the name
_PATH_END = "(?:[^a-z0-9._~%-]|%(?:2f|3f|23|26|20|22|27)|$)"


def _urls(iocs: IocSet) -> pa.Table | None:
    """(value, name, origin, regex): the URL's text preceded by no host character (``evil.example/x``
    is not ``notevil.example/x``) and, for a bare host, followed by none; a URL with a path ending in
    a name is followed by no character of that name (``evil.example/a`` is not ``evil.example/about``,
    ``pastebin.com/raw/abc`` not another paste; ``evil.example/dir`` still holds ``evil.example/dir/x``)."""
    rows: dict[str, list[str]] = {"value": [], "name": [], "origin": [], "regex": []}
    for ind in iocs.of("url"):
        text = url_body(ind.value)
        if not text:
            continue
        bare = not re.search(r"[/?#]", text)
        rows["value"].append(ind.value)
        rows["name"].append(ind.name)
        rows["origin"].append(ind.source)
        end = "(?:[^a-z0-9.-]|$)" if bare else _PATH_END if re.search(r"[a-z0-9._~-]$", text) else ""
        rows["regex"].append(f"(?:^|[^a-z0-9.-]){re.escape(text)}{end}")
    return pa.table(rows) if rows["value"] else None


def _client_ips(ctx: FileHuntContext, iocs: IocSet) -> pa.Table | None:
    """(logged, value, name, origin) for every client address the events hold that an IP indicator
    lists: compared as addresses (``model.ip_key``: port, brackets, zone and IPv4-mapped form aside,
    IPv6 in any spelling), a CIDR indicator by containment."""
    listed = iocs.of("ip")
    if not listed:
        return None
    exact: dict[Any, Indicator] = {}
    ranges: list[tuple[Any, Indicator]] = []
    for ind in listed:
        network = ip_network(ind.value)
        if network is not None:
            ranges.append((network, ind))
        elif (address := ip_key(ind.value)) is not None:
            exact.setdefault(address, ind)
    rows: dict[str, list[str]] = {"logged": [], "value": [], "name": [], "origin": []}
    cursor = ctx.con.execute("SELECT DISTINCT client_ip FROM events WHERE client_ip IS NOT NULL")
    while batch := cursor.fetchmany(100_000):
        for (logged,) in batch:
            address = ip_key(logged)
            if address is None:
                continue
            found = [exact[address]] if address in exact else []
            found.extend(ind for network, ind in ranges
                         if network.version == address.version and address in network)
            for ind in found:
                rows["logged"].append(logged)
                rows["value"].append(ind.value)
                rows["name"].append(ind.name)
                rows["origin"].append(ind.source)
    return pa.table(rows) if rows["logged"] else None

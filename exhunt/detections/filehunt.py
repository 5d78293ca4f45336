"""The file-hunting engine: YARA matches, IOC lists, known-good baselines and content heuristics.

Runs over a finished store (``matches`` written by the workers, ``files``, ``events``,
``host_facts``), so it re-runs without re-parsing. Registered in ``runner.ENGINES``; its rules
report (YARA packs loaded/skipped, IOC lists loaded/skipped, baselines) lands in
``document.rules['yara']``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from exhunt.detections.base import EXCERPT_CHARS, Check, Hit
from exhunt.detections.baselines import deviations, install_relative, load_baselines
from exhunt.detections.builds import best_build_fact
from exhunt.detections.iocs import IocSet, load_iocs
from exhunt.detections.iocs.pathmatch import PathMatcher, windows_form
from exhunt.detections.yara import CompiledRules, RuleSource, load_rules
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits

SHELL_REMEDIATION = (
    "Preserve the file (hash, copy, timestamps), then remove it; search every Exchange server for the same "
    "SHA-256 and name.",
    "Review IIS/HttpProxy logs for requests to the page and everything the requesting clients did.",
    "Reset credentials usable on the server and look for persistence (tasks, accounts, transport agents).",
)
SEVERITIES = ("critical", "high", "medium", "low", "info")
NEWER_DAYS = 30
DOMAIN_TOKEN = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"


def scan_rules(
    yara_paths: Sequence[Path], ioc_paths: Sequence[Path] = (), iocs: IocSet | None = None
) -> CompiledRules:
    """The rules every worker runs: exhunt's pack, user packs and YARA rules found in IOC lists."""
    if iocs is None:
        iocs = load_iocs(ioc_paths) if ioc_paths else IocSet()
    extra = [
        RuleSource(origin, f"iocs_{n}", text.encode()) for n, (origin, text) in enumerate(iocs.yara_rules)
    ]
    return load_rules(yara_paths, extra=extra)


def _check(
    cid: str,
    title: str,
    severity: str,
    description: str,
    attack: tuple[str, ...] = (),
    remediation: tuple[str, ...] = SHELL_REMEDIATION,
    cves: tuple[str, ...] = (),
) -> Check:
    cls = type(
        "FileCheck",
        (Check,),
        {
            "id": cid,
            "title": title,
            "severity": severity,
            "description": description,
            "attack": attack,
            "remediation": remediation,
            "cves": cves,
        },
    )
    check: Check = cls()
    return check


class FileHuntContext:
    def __init__(self, con: duckdb.DuckDBPyConnection, hit_rows: list[dict]) -> None:
        self.con = con
        self.hit_rows = hit_rows
        self.findings: list[Finding] = []
        self.flagged: set[tuple[str, str]] = set()  # (host, path) with a YARA or IOC hit

    def emit(self, check: Check, hits: Iterable[Hit]) -> None:
        hits = list(hits)
        if hits:
            self.findings.extend(group_hits(check, hits, self.hit_rows))


def file_engine(
    con: duckdb.DuckDBPyConnection, context: Any, hit_rows: list[dict]
) -> tuple[list[Finding], dict]:
    ctx = FileHuntContext(con, hit_rows)
    iocs = load_iocs(context.iocs) if context.iocs else IocSet()
    report: dict[str, Any] = {"rules": scan_rules(context.yara, iocs=iocs).report, "iocs": iocs.report()}
    yara_findings(ctx)
    file_ioc_findings(ctx, iocs)
    event_ioc_findings(ctx, iocs)
    report["baselines"] = baseline_findings(ctx, context.baselines)
    heuristic_findings(ctx)
    report["not_yara_scanned"] = _one(
        con,
        "SELECT count(*) FROM warnings WHERE artifact = 'yara' "
        "AND message LIKE 'larger than the YARA size limit%'",
    )
    report["yara_errors"] = _one(
        con, "SELECT count(*) FROM warnings WHERE artifact = 'yara' AND message LIKE 'YARA scan failed%'"
    )
    return ctx.findings, report


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _strings_excerpt(rule: str, strings_json: str | None) -> str:
    strings = orjson.loads(strings_json or "[]")
    parts = [f"{s['identifier']}@{s['offset']} '{s['excerpt']}'" for s in strings[:8]]
    more = f" (+{len(strings) - 8} more)" if len(strings) > 8 else ""
    return f"{rule}: " + "; ".join(parts) + more


def _severity(meta: dict[str, Any]) -> tuple[str, str]:
    """(severity, confidence) from rule metadata: exhunt's ``severity``, or a LOKI/THOR ``score``."""
    sev = str(meta.get("severity", "")).lower()
    if sev in SEVERITIES:
        return sev, "high"
    score = meta.get("score")
    if isinstance(score, int | float):
        return ("high", "high") if score >= 75 else ("high", "medium") if score >= 60 else ("medium", "low")
    return "high", "medium"


def yara_findings(ctx: FileHuntContext) -> None:
    rows = ctx.con.execute(
        "SELECT m.host, m.path, m.rule, m.namespace, m.tags, m.meta, m.strings, m.sha256, f.mtime "
        "FROM matches m LEFT JOIN files f ON f.host = m.host AND f.path = m.path "
        "WHERE m.engine = 'yara' ORDER BY m.namespace, m.rule, m.host, m.path"
    ).fetchall()
    by_rule: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        by_rule[(row[3], row[2])].append(row)
        ctx.flagged.add((row[0], row[1]))
    for (namespace, rule), group in by_rule.items():
        meta = orjson.loads(group[0][5] or "{}")
        severity, confidence = _severity(meta)
        own = namespace.startswith("exhunt.")
        check = _check(
            f"yara.{namespace}.{rule}",
            f"YARA {rule}: {meta.get('description') or 'rule matched'}"[:160],
            severity,
            f"File content matched YARA rule {namespace}.{rule}"
            f"{' (exhunt pack)' if own else ''}. {meta.get('description', '')}".strip(),
            attack=tuple(a.strip() for a in str(meta.get("attack", "T1505.003")).split(",") if a.strip()),
            cves=tuple(c.strip() for c in str(meta.get("cve", "")).split(",") if c.strip()),
        )
        ctx.emit(
            check,
            (
                Hit(
                    check=check.id,
                    host=h,
                    key=sha or path,
                    path=path,
                    source="yara",
                    ts=mtime,
                    excerpt=_strings_excerpt(rule, strings)[:EXCERPT_CHARS],
                    confidence=confidence,
                    indicators={"sha256": sha or "", "file_path": path, "yara_rule": rule},
                )
                for h, path, _r, _ns, _t, _m, strings, sha, mtime in group
            ),
        )


HASH_CHECK = _check(
    "ioc.file_hash",
    "File hash on an IOC list",
    "critical",
    "The file's SHA-256/SHA-1/MD5 is listed by an IOC feed given with --iocs.",
    ("T1505.003",),
)
PATH_CHECK = _check(
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
                Hit(
                    check=HASH_CHECK.id,
                    host=h,
                    key=sha,
                    path=path,
                    source="iocs",
                    ts=mtime,
                    excerpt=f"{kind} {value} listed in {Path(origin).name}: {name}"[:EXCERPT_CHARS],
                    indicators={"sha256": sha, "file_path": path, "ioc_list": Path(origin).name},
                )
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
        yield Hit(
            check=PATH_CHECK.id,
            host=host,
            key=path,
            path=path,
            source="iocs",
            ts=mtime,
            excerpt=f"{ind.kind} {ind.value} (score {score}) from {Path(ind.source).name}: {ind.name}"[
                :EXCERPT_CHARS
            ],
            confidence="high" if score >= 75 else "medium" if score >= 60 else "low",
            indicators={"sha256": sha or "", "file_path": path},
        )


IP_CHECK = _check(
    "ioc.client_ip",
    "Requests from an IP address on an IOC list",
    "high",
    "IIS/HttpProxy/Exchange log rows whose client IP is listed by an IOC feed.",
    ("T1190",),
    ("Review everything the listed address requested; block it at the perimeter.",),
)
UA_CHECK = _check(
    "ioc.user_agent",
    "Requests with a user agent on an IOC list",
    "medium",
    "Log rows whose user agent is listed by an IOC feed (used by 2021 Exchange exploitation).",
    ("T1190",),
    ("Review the requests and what the same clients did next.",),
)
DOMAIN_CHECK = _check(
    "ioc.domain",
    "A domain on an IOC list in a request or referer",
    "high",
    "A domain listed by an IOC feed appears in a request URI, query or referer.",
    ("T1071",),
    ("Block the domain; review the requests and the hosts that made them.",),
)


def _events_hits(ctx: FileHuntContext, check: Check, sql: str, table: pa.Table, what: str) -> None:
    ctx.con.register("ioc_values", table)
    cursor = ctx.con.execute(sql)
    hits = []
    while batch := cursor.fetchmany(10_000):
        for host, path, source, ts, line, record_id, excerpt, value, name, origin in batch:
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
                    excerpt=f"{excerpt} [{what} {value} from {Path(origin).name}: {name}]"[:EXCERPT_CHARS],
                    indicators={what: value},
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

    ips = table("ip")
    if ips is not None:
        _events_hits(
            ctx,
            IP_CHECK,
            f"SELECT {EVENT_COLUMNS}, i.value, i.name, i.origin FROM events e "
            "JOIN ioc_values i ON e.client_ip = i.value",
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


MODIFIED_CHECK = _check(
    "baseline.modified",
    "Exchange web file differs from the known-good baseline",
    "low",
    "A file in an Exchange web folder has a path known to the CSS-Exchange baseline of this "
    "build but another hash: an edited legitimate page (or an unlisted update).",
    ("T1505.003",),
)
UNKNOWN_CHECK = _check(
    "baseline.unknown",
    "Script page absent from the known-good baseline",
    "low",
    "A script page in an Exchange web folder is not in the CSS-Exchange baseline of this build.",
    ("T1505.003",),
)


def baseline_findings(ctx: FileHuntContext, paths: Sequence[Path]) -> dict[str, Any]:
    if not paths:
        return {"files": []}
    baselines = load_baselines(paths)
    report = baselines.report()
    report["hosts"] = {}
    for (host,) in ctx.con.execute("SELECT DISTINCT host FROM files ORDER BY 1").fetchall():
        fact = best_build_fact(ctx.con, host)
        build = fact[0] if fact else None
        baseline = baselines.for_build(build)
        if baseline is None:
            report["hosts"][host] = f"no baseline for build {build or 'unknown'}: not compared"
            continue
        rows = ctx.con.execute("SELECT path, sha256, mtime FROM files WHERE host = ?", [host]).fetchall()
        mtimes = {p: m for p, _s, m in rows}
        sha = {p: s for p, s, _m in rows}
        found = deviations([(p, s) for p, s, _m in rows], baseline)
        report["hosts"][host] = f"build {build}: {len(found)} deviations"
        for kind, check in (("modified", MODIFIED_CHECK), ("unknown", UNKNOWN_CHECK)):
            ctx.emit(
                check,
                (
                    Hit(
                        check=check.id,
                        host=host,
                        key=path,
                        path=path,
                        source="baseline",
                        ts=mtimes[path],
                        excerpt=f"{sub} sha256={sha[path]} build={build}"
                        f"{' + YARA/IOC hit on the same file' if (host, path) in ctx.flagged else ''}",
                        confidence="high" if (host, path) in ctx.flagged else "medium",
                        indicators={"sha256": sha[path] or "", "file_path": path},
                    )
                    for path, k, sub in found
                    if k == kind
                ),
            )
    _raise_corroborated(ctx)
    return report


def _raise_corroborated(ctx: FileHuntContext) -> None:
    """Low severity unless other signals agree: a baseline deviation with a YARA/IOC hit becomes high."""
    from dataclasses import replace

    for n, f in enumerate(ctx.findings):
        if f.check.startswith("baseline.") and f.confidence == "high":
            ctx.findings[n] = replace(f, severity="high")


OBFUSCATED_CHECK = _check(
    "heuristic.obfuscated_page",
    "Obfuscated or high-entropy script page",
    "low",
    "A server-side script page has high entropy, long base64 runs or dense escapes/"
    "concatenations: common in packed web shells, rare in hand-written pages.",
    ("T1027",),
)
HIDDEN_CHECK = _check(
    "heuristic.hidden_file",
    "Hidden or system attribute on a file in the evidence",
    "low",
    "The file carries the hidden/system attribute (kept by this evidence).",
    ("T1564.001",),
)
NEWER_CHECK = _check(
    "heuristic.newer_page",
    "Script page much newer than the Exchange install around it",
    "low",
    f"A script page in an Exchange web folder was written more than {NEWER_DAYS} days after "
    "most files of the install (median modification time): dropped later, not installed.",
    ("T1505.003",),
)


def heuristic_findings(ctx: FileHuntContext) -> None:
    rows = ctx.con.execute(
        "SELECT m.host, m.path, m.rule, m.meta, m.sha256, f.mtime FROM matches m "
        "LEFT JOIN files f ON f.host = m.host AND f.path = m.path WHERE m.engine = 'heuristic'"
    ).fetchall()
    for rule, check in (
        ("obfuscated_script_page", OBFUSCATED_CHECK),
        ("hidden_or_system_file", HIDDEN_CHECK),
    ):
        ctx.emit(
            check,
            (
                Hit(
                    check=check.id,
                    host=h,
                    key=p,
                    path=p,
                    source="heuristic",
                    ts=mt,
                    confidence="medium",
                    excerpt=f"{rule} {meta}"[:EXCERPT_CHARS],
                    indicators={"sha256": sha or "", "file_path": p},
                )
                for h, p, r, meta, sha, mt in rows
                if r == rule
            ),
        )
    ctx.emit(NEWER_CHECK, _newer_pages(ctx.con))


def _newer_pages(con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
    rows = con.execute(
        "SELECT host, path, mtime, sha256 FROM files WHERE mtime IS NOT NULL AND "
        "regexp_matches(lower(path), '(^|/)v15/') AND position('!' IN path) = 0"
    ).fetchall()
    by_host: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_host[row[0]].append(row)
    for host, items in by_host.items():
        if len(items) < 20:
            continue
        times = sorted(r[2] for r in items)
        median = times[len(times) // 2]
        for _h, path, mtime, sha in items:
            sub = install_relative(path) or ""
            if (
                re.search(r"\.(aspx|ashx|asmx|asp|asax|cshtml)$", sub)
                and sub.startswith(("frontend/", "clientaccess/"))
                and (mtime - median).days > NEWER_DAYS
            ):
                yield Hit(
                    check=NEWER_CHECK.id,
                    host=host,
                    key=path,
                    path=path,
                    source="files",
                    ts=mtime,
                    confidence="medium",
                    excerpt=f"{path} mtime {mtime:%Y-%m-%d}, install median {median:%Y-%m-%d}",
                    indicators={"sha256": sha or "", "file_path": path},
                )

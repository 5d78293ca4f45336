"""YARA matches (``matches`` table, engine ``yara``) -> one finding per rule and file hash."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check

SEVERITIES = ("critical", "high", "medium", "low", "info")


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
        check = make_check(
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
                file_hit(check, h, path, sha, mtime, _strings_excerpt(rule, strings), "yara", confidence,
                         key=sha or path, yara_rule=rule)
                for h, path, _r, _ns, _t, _m, strings, sha, mtime in group
            ),
        )

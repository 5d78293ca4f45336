"""YARA matches (``matches`` table) -> one finding per rule and file hash.

Engine ``yara`` is a match on the bytes as written; ``yara_normalised`` a match of exhunt's own rules
on a page's normalised view only (``detections.pagescan``): its own check per rule
(``yara.<namespace>.<rule>.deobfuscated``) whose evidence names the obfuscation undone and quotes the
view (offsets are in the view, not the file)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check

SEVERITIES = ("critical", "high", "medium", "low", "info")
VIEW_ENGINE = "yara_normalised"  # pagescan.ENGINE (not imported: the worker side pulls in yara-x scanning)
VIEW_NOTE = (
    "The page hides its code (escapes, concatenation, comments between tokens, character codes, Base64 "
    "or reversed strings); undone, its normalised view matched this rule and the bytes as written did not. "
)


def _undone(meta_json: str | None) -> str:
    undone = orjson.loads(meta_json or "{}").get("undone")
    return f"undone: {', '.join(map(str, undone))}; view " if isinstance(undone, list) and undone else ""


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


def _attack(meta: dict[str, Any], in_view: bool) -> tuple[str, ...]:
    ids = [a.strip() for a in str(meta.get("attack", "T1505.003")).split(",") if a.strip()]
    return tuple(ids + ["T1027"] if in_view and "T1027" not in ids else ids)  # T1027: obfuscated files


def yara_findings(ctx: FileHuntContext) -> None:
    rows = ctx.con.execute(
        "SELECT m.host, m.path, m.rule, m.namespace, m.tags, m.meta, m.strings, m.sha256, f.mtime, m.engine "
        "FROM matches m LEFT JOIN files f ON f.host = m.host AND f.path = m.path "
        f"WHERE m.engine IN ('yara', '{VIEW_ENGINE}') ORDER BY m.engine, m.namespace, m.rule, m.host, m.path"
    ).fetchall()
    by_rule: dict[tuple[str, str, bool], list[tuple]] = defaultdict(list)
    for row in rows:
        by_rule[(row[3], row[2], row[9] == VIEW_ENGINE)].append(row)
        ctx.flagged.add((row[0], row[1]))
    for (namespace, rule, in_view), group in by_rule.items():
        meta = orjson.loads(group[0][5] or "{}")
        severity, confidence = _severity(meta)
        own = namespace.startswith("exhunt.")
        about = meta.get("description") or "rule matched"
        check = make_check(
            f"yara.{namespace}.{rule}" + (".deobfuscated" if in_view else ""),
            (f"Obfuscated page, YARA {rule} once undone: {about}" if in_view else f"YARA {rule}: {about}")[:160],
            severity,
            (VIEW_NOTE if in_view else "")
            + f"File content matched YARA rule {namespace}.{rule}"
            f"{' (exhunt pack)' if own else ''}. {meta.get('description', '')}".strip(),
            attack=_attack(meta, in_view),
            cves=tuple(c.strip() for c in str(meta.get("cve", "")).split(",") if c.strip()),
        )
        ctx.emit(
            check,
            (
                file_hit(check, h, path, sha, mtime, _undone(m) + _strings_excerpt(rule, strings), "yara",
                         confidence, key=sha or path, yara_rule=rule)
                for h, path, _r, _ns, _t, m, strings, sha, mtime, _e in group
            ),
        )

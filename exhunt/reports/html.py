"""One self-contained HTML report: verdicts, what to do now, timeline chart, findings, coverage.

Jinja2 with autoescape on renders every value; log excerpts are attacker-controlled and only ever
reach the page as escaped text. The only script and style are our own, inlined and pinned by
SHA-256 in a Content-Security-Policy that also forbids every network load, so the file works
offline and an injection that slipped through escaping still could not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

from exhunt.evidence.names import visible
from exhunt.findings.model import AssessmentDocument, Finding, Severity, severity_rank
from exhunt.reports.actions import (
    host_actions,
    host_findings,
    inconclusive_reasons,
    missing_evidence,
    update_to_install,
    vulnerable_cves,
)
from exhunt.reports.case import Case, CitedEvent, cited_events, iso_utc, worst_finding
from exhunt.reports.chart import build_chart

TIMELINE_ROWS = 500
# Findings shown in full per check, in document order (most severe first); past that, one row per kind
# of finding with its count (a web root of 7,000 unknown pages made a 21 MB page that buried the YARA
# hits under them; findings.json, the store and the CSV/JSON exports keep every finding).
FINDING_DETAILS = 50
ATTACK_RE = re.compile(r"^T(\d{4})(?:\.(\d{3}))?$")


def _asset(name: str) -> str:
    return resources.files("exhunt.reports").joinpath("templates", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(css: str, script: str) -> str:
    return (f"default-src 'none'; style-src {_sha256(css)}; script-src {_sha256(script)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _environment() -> Environment:
    return Environment(loader=PackageLoader("exhunt.reports", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_visible,
                       bytecode_cache=_bytecode_cache())


@functools.cache
def report_template() -> Template:
    """The report's template, loaded once per process (the scan loads it while its workers parse:
    the environment, the compiled template from the cache and its globals cost ~15-20 ms)."""
    return _environment().get_template("report.html.j2")


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """The compiled template under ``$EXHUNT_CACHE/jinja`` (like the rule caches): compiling it cost
    ~0.1 s of every scan's report. Jinja keys it by the template's checksum, so an edited template
    is compiled again; a folder that cannot be made means no cache."""
    base = os.environ.get("EXHUNT_CACHE")
    folder = (Path(base) if base else Path.home() / ".cache" / "exhunt") / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


def _visible(value: Any) -> Any:
    """Every text value the page shows, before escaping: control and bidi characters from evidence as
    escapes (our own pinned CSS/JS and JSON arrive as Markup and pass untouched)."""
    return visible(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def render(case: Case, out: BinaryIO) -> None:
    out.write(render_text(case).encode("utf-8"))


def render_text(case: Case) -> str:
    doc = case.document
    css, script = _asset("report.css"), _asset("timeline.js")
    events = list(cited_events(case))
    chart = build_chart(doc, events)
    shown, rest = _split_findings(doc.findings)
    anchors = {f.id: f"finding-{i + 1}" for i, f in enumerate(shown)}
    by_id = case.findings_by_id  # a property that builds the dict: once, not once per timeline row
    template = report_template()
    return template.render(
        doc=doc,
        summary_title=", ".join(f"{h.host}: {h.verdict}" for h in doc.hosts) or "no hosts",
        hosts=[_host_view(doc, h) for h in doc.hosts],
        any_build_cves=any(h.build and h.build.cves for h in doc.hosts),
        chart=chart,
        severities=[s.value for s in Severity],
        timeline=[_timeline_row(e, by_id, anchors) for e in islice(events, TIMELINE_ROWS)],
        timeline_total=len(events),
        findings=[_finding_view(f, anchors[f.id]) for f in shown],
        more_findings=_more_findings(rest),
        finding_details=FINDING_DETAILS,
        rules=_rules_view(doc),
        css=Markup(css),  # noqa: S704 - our own packaged stylesheet, pinned by hash in the CSP
        script=Markup(script),  # noqa: S704 - our own packaged script, pinned by hash in the CSP
        csp=content_security_policy(css, script),
    )


def _host_view(doc: AssessmentDocument, host: Any) -> dict[str, Any]:
    b = host.build
    if b and b.build:
        parts = [p for p in (b.product, b.cu, b.update) if p]
        build = b.build + (f" ({' '.join(parts)})" if parts else "")
        build += f", from {b.source}" if b.source else ""
    else:
        build = "unknown"
    findings = host_findings(doc, host.host)
    worst = max((f.severity for f in findings), key=severity_rank, default=None)
    return {"host": host.host, "verdict": host.verdict, "build": build, "build_known": bool(b and b.build),
            "vulnerable": vulnerable_cves(host), "install": update_to_install(host),
            "cves_evaluated": bool(b and b.cves),
            "findings": len(findings), "worst": worst, "first_seen": host.first_seen,
            "last_seen": host.last_seen, "actions": host_actions(doc, host),
            "missing": missing_evidence(host), "inconclusive": inconclusive_reasons(host)}


def _timeline_row(e: CitedEvent, findings: dict[str, Finding], anchors: dict[str, str]) -> dict[str, Any]:
    f = worst_finding(e, findings)
    loc = f":{e.line}" if e.line is not None else (f"#{e.record_id}" if e.record_id is not None else "")
    return {"ts": iso_utc(e.ts), "host": e.host, "title": f.title, "severity": f.severity,
            "anchor": anchors.get(f.id), "more": len(e.finding_ids) - 1, "where": e.path + loc,
            "excerpt": e.excerpt}


def attack_url(technique: str) -> str | None:
    match = ATTACK_RE.match(technique)
    if not match:
        return None
    sub = f"/{match.group(2)}" if match.group(2) else ""
    return f"https://attack.mitre.org/techniques/T{match.group(1)}{sub}/"


def _finding_view(f: Finding, anchor: str) -> dict[str, Any]:
    # Only http(s) references become links: user rule packs can carry any text there.
    refs = [{"text": r, "url": r if r.startswith(("https://", "http://")) else None} for r in f.references]
    return {"f": f, "anchor": anchor, "references": refs,
            "attack": [{"id": a, "url": attack_url(a)} for a in f.attack]}


def _split_findings(findings: tuple[Finding, ...]) -> tuple[list[Finding], list[Finding]]:
    """The first ``FINDING_DETAILS`` findings of each check, and the rest."""
    shown: list[Finding] = []
    rest: list[Finding] = []
    per_check: dict[str, int] = {}
    for f in findings:
        n = per_check[f.check] = per_check.get(f.check, 0) + 1
        (shown if n <= FINDING_DETAILS else rest).append(f)
    return shown, rest


def _more_findings(rest: list[Finding]) -> list[dict[str, Any]]:
    """The findings not shown in full: one row per (severity, check, title), in document order."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in rest:
        row = groups.setdefault((f.severity, f.check, f.title), {
            "severity": f.severity, "check": f.check, "title": f.title, "count": 0, "hosts": set()})
        row["count"] += 1
        row["hosts"].add(f.host)
    return [{**row, "hosts": ", ".join(sorted(row["hosts"]))} for row in groups.values()]


def _rules_view(doc: AssessmentDocument) -> list[dict[str, Any]]:
    rows = []
    for name, report in sorted(doc.rules.items()):
        if not isinstance(report, dict):
            rows.append({"name": name, "loaded": "", "details": str(report)})
            continue
        details = "; ".join(f"{k}: {_short(v)}" for k, v in report.items() if k not in ("loaded", "ids"))
        rows.append({"name": name, "loaded": report.get("loaded", ""), "details": details})
    return rows


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"{len(value)} ({', '.join(map(str, value[:5]))}{', …' if len(value) > 5 else ''})"
    return str(value)

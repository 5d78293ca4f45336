"""A compact rich summary: per-host verdicts, builds, top findings. Never used for piped JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from exhunt.evidence.names import printable
from exhunt.findings.coverage import UNRECOGNISED
from exhunt.findings.model import REQUIRED_FOR_CLEAN, AssessmentDocument, Finding, HostAssessment, severity_rank
from exhunt.reports.actions import host_actions, unread_evidence

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
VERDICT_STYLE = {"compromised": "bold red", "suspicious": "yellow", "clean": "green", "inconclusive": "magenta",
                 "not assessed": "dim"}
TOP = 15  # findings shown one line each; the rest are counted (--verbose: every finding, as a table)
TOP_ACTIONS = 3
QUERY_ROWS = 1_000
HOST_WIDTH = 20
VERDICT_WIDTH = max(len(v) for v in VERDICT_STYLE)


def print_summary(doc: AssessmentDocument, color: bool = True, case_dir: Path | None = None,
                  verbose: bool = False) -> None:
    """Fits an 80-column screen: one line per host (the verdict first, never cut), the most severe
    findings one line each, the next steps. ``verbose``: the full host and finding tables."""
    console = Console(color_system="auto" if color else None, highlight=False, soft_wrap=False)
    width = max(40, console.width)
    pad = min(HOST_WIDTH, max((len(printable(h.host)[0]) for h in doc.hosts), default=0))
    for h in doc.hosts:
        console.print(host_line(h, width, pad), markup=False, highlight=False)
    for h in doc.hosts:
        unread = unread_evidence(h)
        if unread:
            console.print(_fit(printable(f"{h.host}: {unread}: see the warnings")[0], width),
                          markup=False, highlight=False)
        elif h.coverage.unrecognised:
            named = [w["path"] for w in h.coverage.warning_samples if w.get("artifact") == UNRECOGNISED]
            console.print(_fit(printable(
                f"{h.host}: {h.coverage.unrecognised} structured file(s) not read"
                + (f" ({', '.join(named[:2])}{', …' if len(named) > 2 else ''})" if named else "")
                + ": see the warnings")[0], width), markup=False, highlight=False)
    if verbose:
        _tables(console, doc)
    elif not doc.findings:
        console.print("No findings.")
    else:
        console.print(f"Findings ({len(doc.findings)}), most severe first:", markup=False)
        many_hosts = len({f.host for f in doc.findings}) > 1
        worst_first = sorted(doc.findings, key=lambda f: -severity_rank(f.severity))  # stable: document order
        for f in worst_first[:TOP]:
            console.print(finding_line(f, width, many_hosts), markup=False, highlight=False)
        if len(doc.findings) > TOP:
            where = "see report.html" if case_dir is not None else "use --verbose, or --out DIR for report.html"
            console.print(f"{len(doc.findings) - TOP} more: {where}", markup=False)
    if doc.impact:
        console.print(impact_line(doc), markup=False, highlight=False)
    for h in doc.hosts:
        actions = host_actions(doc, h, limit=TOP_ACTIONS)
        if actions and (h.verdict != "clean" or doc.findings):
            console.print(f"[bold]Next for {_safe(h.host)}:[/]", highlight=False)
            for i, action in enumerate(actions, 1):
                console.print(f"  {i}. {printable(action.text)[0]}", markup=False, highlight=False)
    for line in rule_problems(doc.rules):
        console.print(printable(line)[0], markup=False, highlight=False)
    if case_dir is not None:
        console.print(f"Case written to {case_dir} (findings.json, report.html, store/)", markup=False)


def impact_line(doc: AssessmentDocument) -> str:
    """How many mailboxes the intrusion exposed, by confidence (the list: report --format impact-csv)."""
    boxes: dict[str, str] = {}
    rank = {"low": 0, "medium": 1, "high": 2}
    for e in doc.impact:
        if rank[e.confidence] >= rank[boxes.get(e.mailbox, "low")]:
            boxes[e.mailbox] = e.confidence
    counts = ", ".join(f"{n} {c}" for c in ("high", "medium", "low")
                       if (n := sum(1 for v in boxes.values() if v == c)))
    line = f"Mailboxes exposed: {len(boxes)} ({counts}): report --format impact-csv"
    return line if len(line) <= 80 else line.split("):")[0] + ")"


def host_line(h: HostAssessment, width: int, pad: int = 0) -> Text:
    """``compromised  EXCH01  build 15.1.2176.2 (Exchange 2016 CU19) · 15 CVEs · 35 files ...``:
    the verdict comes first and is never cut; the host name is shortened, then the details."""
    line = Text(h.verdict.ljust(VERDICT_WIDTH), style=VERDICT_STYLE.get(h.verdict, ""))
    line.append("  " + _fit(printable(h.host)[0], HOST_WIDTH).ljust(pad) + "  ")
    details = []
    c = h.coverage
    required = [k for k in c.missing if k in REQUIRED_FOR_CLEAN]  # event logs: named in the next steps
    if h.verdict == "inconclusive" and required:
        details.append("not seen: " + ", ".join(MISSING_SHORT.get(k, k) for k in required))
    if c.unread:
        details.append(f"{c.unread} file{'s' if c.unread != 1 else ''} not read in full")
    if c.warnings:
        details.append(f"{c.warnings} warning{'s' if c.warnings != 1 else ''}")
    details.append(f"{c.files} files, {c.events} events")
    build = h.build.build if h.build and h.build.build else None
    if build:
        details.append(f"build {build}" + (f" ({h.build.product} {h.build.cu or ''})".replace(" )", ")")
                                           if h.build and h.build.product else ""))
    vulnerable = _vulnerable(h.build.cves if h.build else ())
    if vulnerable:
        details.append("vulnerable: " + vulnerable)
    line.append(_fit(printable(" · ".join(details))[0], max(1, width - len(line.plain))))
    return line


MISSING_SHORT = {"frontend_logs": "front-end logs", "web_folders": "web folders", "build": "build",
                 "event_logs": "event logs"}


def finding_line(f: Finding, width: int, many_hosts: bool) -> Text:
    """``critical high  Exchange build vulnerable ... · build 15.1.2176.2 · 42 rows · 2021-03-03 02:10``."""
    line = Text(f.severity.ljust(8), style=SEVERITY_STYLE.get(f.severity, ""))
    line.append(f" {f.confidence:<6} ")
    first = (f.first_seen or "").replace("T", " ")[:16]
    tail = f" · {f.count} row{'s' if f.count != 1 else ''}" + (f" · {first}" if first else "")
    head = (f"{f.host}: " if many_hosts else "") + f.title + (f" · {f.key}" if f.key else "")
    room = max(1, width - len(line.plain) - len(tail))
    line.append(_fit(printable(head)[0], room) + tail)
    return line


def _fit(text: str, width: int) -> str:
    """One line of at most ``width`` characters: cut at the end with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _tables(console: Console, doc: AssessmentDocument) -> None:
    """--verbose: the full host table and every finding (wrapped to the terminal's width)."""
    hosts = Table(title="Hosts", show_lines=False)
    for col in ("host", "verdict", "build", "vulnerable to", "files", "events", "warnings", "not seen"):
        hosts.add_column(col, no_wrap=col == "verdict")
    for h in doc.hosts:
        build = h.build.build if h.build and h.build.build else "unknown"
        if h.build and h.build.product:
            build += f" ({h.build.product} {h.build.cu or ''}, {h.build.update or ''})".replace(" ,", ",")
        vulnerable = _vulnerable(h.build.cves if h.build else ())
        hosts.add_row(_safe(h.host), f"[{VERDICT_STYLE.get(h.verdict, 'default')}]{h.verdict}[/]", _safe(build),
                      vulnerable or "-", str(h.coverage.files), str(h.coverage.events), str(h.coverage.warnings),
                      ", ".join(MISSING_SHORT.get(k, k) for k in h.coverage.missing) or "-")
    console.print(hosts)
    if not doc.findings:
        console.print("No findings.")
        return
    table = Table(title=f"Findings ({len(doc.findings)})")
    many_hosts = len({f.host for f in doc.findings}) > 1
    host_column = ["host"] if many_hosts else []
    columns = ["severity", "conf.", *host_column, "finding", "key", "rows", "first seen"]
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col in ("severity", "conf.", "rows", "first seen"))
    for f in doc.findings:
        first = (f.first_seen or "-").replace("T", " ")[:16]
        table.add_row(f"[{SEVERITY_STYLE.get(f.severity, 'default')}]{f.severity}[/]", f.confidence,
                      *([_safe(f.host)] if many_hosts else []), _safe(f.title),
                      _safe(_short(f.key, 40)), str(f.count), first)
    console.print(table)


def rule_problems(rules: dict[str, Any], shown: int = 3) -> list[str]:
    """Rules that did not load, so a responder knows a pack ran only in part (all of them, with
    reasons, are in findings.json ``rules`` and the HTML report)."""
    lists = (("Sigma", "sigma", (rules.get("sigma") or {}).get("failed") or []),
             ("YARA", "yara.rules", ((rules.get("yara") or {}).get("rules") or {}).get("skipped") or []),
             ("IOC", "yara.iocs", ((rules.get("yara") or {}).get("iocs") or {}).get("skipped") or []))
    lines = []
    shared = (rules.get("impact") or {}).get("shared_client_ips") or {}
    for address, accounts in list(shared.items())[:shown]:
        lines.append(f"Impact: attacker address {address} is shared by {accounts} accounts (a load balancer, proxy "
                     "or NAT?): no mailbox access is tied to it; log X-Forwarded-For to see the real clients.")
    for name, where, failed in lists:
        if not failed:
            continue
        what = "line(s) skipped" if name == "IOC" else "rule(s) not loaded"
        lines.append(f"{name}: {len(failed)} {what} (all in findings.json rules.{where}):")
        for item in failed[:shown]:
            text = ": ".join(str(item[k]) for k in ("path", "origin", "line", "title", "rule", "reason")
                            if isinstance(item, dict) and item.get(k) not in (None, ""))
            lines.append(f"  - {text[:157] + '...' if len(text) > 160 else text}")
        if len(failed) > shown:
            lines.append(f"  ... and {len(failed) - shown} more")
    return lines


def _safe(text: str) -> str:
    """Evidence text for the terminal: control and bidi characters shown as escapes (an ESC from a
    log line must not drive the terminal), rich markup inert."""
    return escape(printable(text)[0])


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def print_rows(cursor: Any, color: bool = True, limit: int = QUERY_ROWS) -> None:
    """A query result as a table; long results are cut with a hint to use CSV or JSON."""
    console = Console(color_system="auto" if color else None, highlight=False)
    table = Table(show_lines=False)
    for d in cursor.description:
        table.add_column(_safe(str(d[0])), overflow="fold")
    rows = cursor.fetchmany(limit + 1)
    for row in rows[:limit]:
        table.add_row(*("" if v is None else _safe(str(v)) for v in row))
    console.print(table)
    more = " or more" if len(rows) > limit else ""
    hint = " (use --format csv or json for all)" if more else ""
    console.print(f"{min(len(rows), limit)}{more} rows{hint}")


def _vulnerable(cves: tuple) -> str:  # type: ignore[type-arg]
    """``15 CVEs (ProxyLogon, ProxyShell, …)``: the campaign names say more than a list of numbers."""
    open_cves = [c for c in cves if c.status == "vulnerable"]
    if not open_cves:
        return ""
    names = list(dict.fromkeys(c.name for c in open_cves if c.name))
    if len(open_cves) <= 2:
        return ", ".join(c.cve for c in open_cves)
    return f"{len(open_cves)} CVEs" + (f" ({', '.join(names)})" if names else "")

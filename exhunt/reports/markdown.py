"""A Markdown summary for tickets and e-mail: verdicts, what to do now, findings, coverage.

Evidence text is attacker-controlled: excerpts go into code spans whose fence is longer than any
backtick run inside, and every other piece of evidence-derived text (keys, paths, indicator values)
has Markdown and HTML metacharacters escaped, so a ticket system never renders a log line as
markup or a link.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from exhunt.evidence.names import visible
from exhunt.findings.model import AssessmentDocument, Finding
from exhunt.reports.actions import (
    host_actions,
    host_findings,
    inconclusive_reasons,
    missing_evidence,
    update_to_install,
    vulnerable_cves,
)
from exhunt.reports.case import Case

EVIDENCE_ROWS = 5
MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&])")
SAFE_URL = re.compile(r"^https?://[^\s<>`|\\]+$")


def text(value: object) -> str:
    """Plain text safe in a Markdown paragraph or table cell (control and bidi characters escaped)."""
    return MD_SPECIAL.sub(r"\\\1", visible(str(value))).replace("\r", " ").replace("\n", " ")


def code(value: str) -> str:
    """An inline code span that holds any text literally (newlines folded, control characters escaped)."""
    value = visible(value).replace("\r", " ").replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}" if value else ""


def cell(value: str) -> str:
    return code(value).replace("|", "\\|")


def render(case: Case, out: BinaryIO) -> None:
    out.write(render_text(case.document).encode("utf-8"))


def render_text(doc: AssessmentDocument) -> str:
    lines = [f"# Exchange compromise assessment ({len(doc.hosts)} host{'s' if len(doc.hosts) != 1 else ''}, "
             f"{len(doc.findings)} finding{'s' if len(doc.findings) != 1 else ''})", "",
             f"Generated {doc.generated_at} by exhunt {doc.tool_version}. All times UTC.", "",
             "## Verdict", "", "| Host | Verdict | Build | Vulnerable to | Install | Findings |",
             "|---|---|---|---|---|---|"]
    for h in doc.hosts:
        build = h.build.build if h.build and h.build.build else "unknown"
        lines.append(f"| {text(h.host)} | **{h.verdict}** | {text(build)} | "
                     f"{', '.join(vulnerable_cves(h)) or '–'} | {text(update_to_install(h) or '–')} | "
                     f"{len(host_findings(doc, h.host))} |")
    for h in doc.hosts:
        if h.verdict == "inconclusive":
            lines += ["", f"**{text(h.host)} is inconclusive**: nothing was found, but "
                      + ", and ".join(text(m) for m in inconclusive_reasons(h)) + "."]
    lines += ["", "## What to do now", ""]
    for h in doc.hosts:
        lines.append(f"**{text(h.host)}**")
        lines.append("")
        actions = host_actions(doc, h)
        lines += [f"{i}. {text(a.text)}" for i, a in enumerate(actions, 1)] or ["Nothing urgent."]
        lines.append("")
    lines += _impact(doc)
    lines += ["## Findings", ""]
    if not doc.findings:
        lines += ["No findings.", ""]
    for n, f in enumerate(doc.findings, 1):
        lines += _finding(n, f)
    lines += ["## Coverage", ""]
    for h in doc.hosts:
        c = h.coverage
        parsed = ", ".join(f"{text(k)} {v}" for k, v in sorted(c.events_by_source.items())) or "none"
        lines.append(f"- **{text(h.host)}**: {c.files} files ({c.bytes} bytes), {c.events} events "
                     f"({parsed}), {c.warnings} warnings"
                     + (f", {c.unrecognised} structured files not recognised (see warnings)" if c.unrecognised else "")
                     + (f", {c.unread} evidence files not read in full (see warnings)" if c.unread else "")
                     + (". Not seen: " + "; ".join(text(m) for m in missing_evidence(h)) if c.missing else "")
                     + ".")
    lines.append("")
    return "\n".join(lines)


def _impact(doc: AssessmentDocument) -> list[str]:
    """The mailboxes exposed, one table row each (the actions and evidence are in the HTML report)."""
    if not doc.impact:
        return []
    out = ["## Mailboxes exposed", "", "| Confidence | Host | Mailbox | How | First → last | Sources |",
           "|---|---|---|---|---|---|"]
    for m in doc.impact:
        out.append(f"| {m.confidence} | {text(m.host)} | {cell(m.mailbox)} | {text(', '.join(m.how))} | "
                   f"{m.first_seen or '–'} → {m.last_seen or '–'} | {text('; '.join(m.sources))} |")
    return [*out, ""]


def _finding(n: int, f: Finding) -> list[str]:
    facts = [f"**{f.severity}** ({f.confidence} confidence)", f"host {text(f.host)}", f"{f.count} rows",
             f"{f.first_seen or '–'} → {f.last_seen or '–'}"]
    if f.cves:
        facts.append("CVEs " + ", ".join(f.cves))
    if f.attack:
        facts.append("ATT&CK " + ", ".join(f.attack))
    out = [f"### {n}. {text(f.title)}", "", " · ".join(facts), "", text(f.description), ""]
    if f.key:
        out += [f"Key: {code(f.key)}", ""]
    for name, values in f.indicators.items():
        out.append(f"- {text(name)}: " + ", ".join(code(v) for v in values[:10])
                   + (f" (+{len(values) - 10})" if len(values) > 10 else ""))
    if f.indicators:
        out.append("")
    if f.evidence:
        out += ["| UTC time | Where | Excerpt |", "|---|---|---|"]
        for e in f.evidence[:EVIDENCE_ROWS]:
            where = e.path + (f":{e.line}" if e.line is not None else
                              f" record {e.record_id}" if e.record_id is not None else "")
            out.append(f"| {e.ts or '–'} | {cell(where)} | {cell(e.excerpt)} |")
        if f.count > min(len(f.evidence), EVIDENCE_ROWS):
            out.append(f"\n{min(len(f.evidence), EVIDENCE_ROWS)} of {f.count} rows shown.")
        out.append("")
    if f.remediation:
        out += ["Remediation:", ""] + [f"{i}. {text(step)}" for i, step in enumerate(f.remediation, 1)] + [""]
    if f.references:
        out += ["References: " + " · ".join(f"<{r}>" if SAFE_URL.match(r) else text(r) for r in f.references),
                ""]
    return out

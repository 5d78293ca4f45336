"""What a finding of a Sigma rule says: severity from ``level``, ATT&CK and CVEs from ``tags``,
confidence from ``status``, remediation from the rule's family (exhunt/data/sigma/remediation.yml)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from exhunt.detections.base import Check
from exhunt.detections.sigma.ruleinfo import RuleInfo

SEVERITY = {"informational": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
CONFIDENCE = {"stable": "high", "test": "high", "experimental": "medium"}
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.I)
_CVE = re.compile(r"^cve\.(\d{4})[.-](\d+)$", re.I)


@cache
def families() -> list[dict[str, Any]]:
    text = resources.files("exhunt").joinpath("data", "sigma", "remediation.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return list(data["families"])


def family(rule: RuleInfo) -> dict[str, Any]:
    """The first family whose words occur in the rule's title, tags, logsource or file name."""
    logsource = rule.logsource or {}
    haystack = " ".join(
        [
            rule.title or "",
            rule.description or "",
            " ".join(rule.tags),
            rule.path or "",
            " ".join(str(v) for v in logsource.values()),
        ]
    ).lower()
    for fam in families():
        if any(word.lower() in haystack for word in fam.get("match", [])):
            return fam
    return families()[-1]


def check_id(rule: RuleInfo) -> str:
    name = rule.name or rule.id or rule.title or "untitled"
    return f"sigma:{name}"


def rule_check(rule: RuleInfo) -> Check:
    """A Check carrying the rule's metadata, so triage groups Sigma hits like any other check's."""
    attack = sorted({m.group(1).upper() for t in rule.tags if (m := _TECHNIQUE.match(t))})
    cves = sorted({f"CVE-{m.group(1)}-{m.group(2)}" for t in rule.tags if (m := _CVE.match(t))})
    level = rule.level or "medium"
    status = rule.status or "experimental"
    fam = family(rule)
    description = (rule.description or rule.title or "").strip()
    if rule.id:
        description += f" (Sigma rule {rule.id})"
    attrs = {
        "id": check_id(rule),
        "title": rule.title or check_id(rule),
        "severity": SEVERITY.get(level, "medium"),
        "category": "compromise" if level in ("medium", "high", "critical") else "hygiene",
        "description": description,
        "cves": tuple(cves),
        "attack": tuple(attack),
        "references": rule.references,
        "remediation": tuple(fam.get("remediation", [])),
        "confidence": CONFIDENCE.get(status, "medium"),
        "family": fam.get("name", "generic"),
    }
    cls = type("SigmaRuleCheck", (Check,), attrs)
    check: Check = cls()
    return check

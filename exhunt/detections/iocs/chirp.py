"""CISA CHIRP indicator YAML: multi-document, ``ioc_type`` network / yara / events / registry.

``network`` IPs and domains become indicators; ``yara`` rules are handed to the YARA pack so they
run in the same file pass; ``events`` and ``registry`` indicators query Windows event logs or the
registry with CHIRP's own matching language and are listed as skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from exhunt.detections.iocs.model import IocSet, classify


def detect(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in (".yaml", ".yml") and b"ioc_type" in head


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    origin = str(path)
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        out.skip(origin, f"invalid YAML: {' '.join(str(exc).split())[:200]}")
        return out
    for doc in docs:
        name = str(doc.get("name") or "")
        kind = str(doc.get("ioc_type") or "")
        indicator: Any = doc.get("indicator") or {}
        if kind == "network" and isinstance(indicator, dict):
            for key in ("ips", "domains", "urls"):
                for value in str(indicator.get(key) or "").split():
                    item = classify(value, origin, name)
                    if item is None:
                        out.skip(origin, f"{name}: unrecognised {key} value {value!r}")
                    out.add(item)
        elif kind == "yara" and isinstance(indicator, dict) and str(indicator.get("rule") or "").strip():
            out.yara_rules.append((f"{origin}#{name}", str(indicator["rule"])))
        elif kind == "yara":
            out.skip(origin, f"{name}: yara indicator without a rule text")
        else:
            out.skip(
                origin, f"{name}: CHIRP '{kind}' indicators query live event logs/registry; not applicable"
            )
    return out

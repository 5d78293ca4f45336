"""STIX 2.1 bundles: ``indicator`` objects whose pattern is a simple comparison or an OR of them.

Supported object paths: file hashes and names, IPv4/IPv6, domain names, URLs and the HTTP
User-Agent header. Patterns joining different observations with AND / FOLLOWEDBY need state
that a list match cannot give; they are listed as skipped with the pattern.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from exhunt.detections.iocs.model import Indicator, IocSet, classify, hash_kind

COMPARISON = re.compile(r"([a-z0-9_-]+:[A-Za-z0-9_.'\-]+?)\s*(=|LIKE|MATCHES)\s*'((?:[^'\\]|\\.)*)'", re.I)
PATHS = {
    "file:hashes.'sha-256'": "sha256",
    "file:hashes.sha256": "sha256",
    "file:hashes.'sha256'": "sha256",
    "file:hashes.'sha-1'": "sha1",
    "file:hashes.sha1": "sha1",
    "file:hashes.md5": "md5",
    "file:hashes.'md5'": "md5",
    "file:name": "filename",
    "ipv4-addr:value": "ip",
    "ipv6-addr:value": "ip",
    "domain-name:value": "domain",
    "url:value": "url",
    "network-traffic:extensions.'http-request-ext'.request_header.'user-agent'": "user_agent",
}


def detect(path: Path, head: bytes) -> bool:
    return head.lstrip().startswith(b"{") and b'"bundle"' in head or b'"type": "bundle"' in head


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    origin = str(path)
    try:
        bundle: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        out.skip(origin, f"invalid JSON: {exc}")
        return out
    objects = bundle.get("objects", []) if isinstance(bundle, dict) else []
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        name = str(obj.get("name") or obj.get("id") or "")
        pattern = str(obj.get("pattern") or "")
        if obj.get("pattern_type", "stix") != "stix":
            out.skip(origin, f"{name}: pattern type {obj.get('pattern_type')!r} not supported")
            continue
        if re.search(r"\]\s*(AND|FOLLOWEDBY)\s*\[|\bAND\b", pattern, re.I):
            out.skip(origin, f"{name}: compound pattern not supported: {pattern[:160]}")
            continue
        found = COMPARISON.findall(pattern)
        if not found:
            out.skip(origin, f"{name}: unsupported pattern: {pattern[:160]}")
        for obj_path, op, value in found:
            value = value.replace("\\'", "'").replace("\\\\", "\\")
            kind = PATHS.get(obj_path.lower())
            if kind is None or op.upper() != "=":
                out.skip(origin, f"{name}: unsupported comparison {obj_path} {op}")
            elif kind in ("sha256", "sha1", "md5"):
                out.add(Indicator(kind, value.lower(), origin, name) if hash_kind(value) == kind else None)
            else:
                item = classify(value, origin, name, kind if kind in ("filename", "user_agent") else "")
                if item is None:
                    out.skip(origin, f"{name}: unrecognised value {value[:80]!r}")
                out.add(item)
    return out

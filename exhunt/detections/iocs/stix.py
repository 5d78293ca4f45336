"""STIX 2.1 bundles: ``indicator`` objects whose pattern is a simple comparison or an OR of them.

An indicator's latest version (by ``modified``) is read; a revoked one is listed as skipped. One
past its ``valid_until`` is used: a hunt reads logs of the time it was valid.

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
    "file:hashes.'sha1'": "sha1",
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
    """A bundle's ``"type": "bundle"`` or its ``"bundle--"`` id (keys written sorted put ``type`` after
    every object: past the head of a large bundle)."""
    return head.lstrip().startswith(b"{") and (b'"bundle"' in head or b'"bundle--' in head) or (
        b'"type": "bundle"' in head)


def _current(objects: list[Any]) -> list[dict[str, Any]]:
    """Each indicator's latest version (a bundle may carry several of one id; ``modified`` orders them)."""
    latest: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if isinstance(obj, dict) and obj.get("type") == "indicator":
            key = str(obj.get("id") or id(obj))
            if key not in latest or str(obj.get("modified") or "") >= str(latest[key].get("modified") or ""):
                latest[key] = obj
    return list(latest.values())


def read(path: Path, text: str) -> IocSet:
    out = IocSet()
    origin = str(path)
    try:
        bundle: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        out.skip(origin, f"invalid JSON: {exc}")
        return out
    objects = bundle.get("objects", []) if isinstance(bundle, dict) else []
    for obj in _current(objects):
        name = str(obj.get("name") or obj.get("id") or "")
        pattern = str(obj.get("pattern") or "")
        if obj.get("revoked") is True:  # withdrawn by its producer (often: a false positive)
            out.skip(origin, f"{name}: revoked: {pattern[:160]}")
            continue
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

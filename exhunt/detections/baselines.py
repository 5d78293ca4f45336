"""Known-good hash baselines of Exchange web folders (CSS-Exchange ``hash,build,relative path``).

A file in an Exchange web folder is compared, by its path relative to the install folder
(``.../Exchange Server/V15/``), with the baseline of the host's build: a known path with another
hash is a modified file (an attacker's edit of a legitimate page), a script page the baseline does
not know is an unknown page. Both are weak alone (low severity); the engine raises them when YARA
or an IOC points at the same file.

CSS-Exchange has published baselines relative to ``V15`` (``\\FrontEnd\\HttpProxy\\...``,
``\\ClientAccess\\owa\\...``) and relative to ``V15\\ClientAccess`` (``owa\\...``); a baseline
whose paths never start with ``ClientAccess`` or ``FrontEnd`` is read as the latter.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.artifacts.pages import SERVER_PAGES, WEB_CODE
from exhunt.errors import UsageError

INSTALL_RE = re.compile(r"(?:^|/)v15/(.+)$")
ROOTS = ("clientaccess/", "frontend/")
WEB_ROOTS = ("frontend/httpproxy/", "clientaccess/")


def build_key(value: str) -> tuple[int, ...] | None:
    """``15.01.2176.002`` and ``15.1.2176.2`` are the same build."""
    parts = re.findall(r"\d+", value)
    return tuple(int(p) for p in parts[:4]) if len(parts) >= 3 else None


def install_relative(rel: str) -> str | None:
    """Evidence path -> path under ``V15`` (lower case, '/'), or None when not in an Exchange install."""
    match = INSTALL_RE.search(rel.replace("\\", "/").lower())
    return match.group(1) if match else None


@dataclass
class Baselines:
    by_build: dict[tuple[int, ...], dict[str, set[str]]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def for_build(self, build: str | None) -> dict[str, set[str]] | None:
        key = build_key(build) if build else None
        return self.by_build.get(key) if key else None

    def report(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "builds": [".".join(map(str, k)) for k in sorted(self.by_build)],
            "entries": sum(len(v) for v in self.by_build.values()),
            "skipped": self.skipped[:100],
        }


def load_baselines(paths: Sequence[Path]) -> Baselines:
    out = Baselines()
    for path in paths:
        if not path.exists():
            raise UsageError(f"--baseline {path}: no such file or folder")
        files = [path] if path.is_file() else sorted(path.rglob("*.csv"))
        for file in files:
            _load_file(file, out)
    return out


def _load_file(path: Path, out: Baselines) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        out.skipped.append({"origin": str(path), "reason": f"cannot read: {exc.strerror or exc}"})
        return
    rows: list[tuple[str, tuple[int, ...], str]] = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if len(row) < 3:
            continue
        digest, build, rel = row[0].strip().lower(), build_key(row[1]), row[2].strip()
        if len(digest) != 64 or build is None:
            if n > 1:
                out.skipped.append(
                    {"origin": str(path), "line": n, "reason": "expected hash,build,relative path"}
                )
            continue
        rows.append((digest, build, rel.replace("\\", "/").lstrip("/").lower()))
    if not rows:
        out.skipped.append({"origin": str(path), "reason": "no baseline rows"})
        return
    under_v15 = any(r[2].startswith(ROOTS) for r in rows)
    for digest, build, rel in rows:
        key = rel if under_v15 else "clientaccess/" + rel
        out.by_build.setdefault(build, {}).setdefault(key, set()).add(digest)
    out.files.append(str(path))


def deviations(files: Sequence[tuple[str, str]], baseline: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(evidence path, sha256) of one host -> (path, kind, install-relative path), kind modified|unknown.
    Only under the web roots the baseline covers: a baseline written relative to ClientAccess holds no
    FrontEnd file, and every FrontEnd page had been "unknown" against it."""
    out = []
    covered = tuple(root for root in WEB_ROOTS if any(key.startswith(root) for key in baseline))
    for rel, sha256 in files:
        sub = install_relative(rel)
        if sub is None or not covered or not sub.startswith(covered) or "!" in rel:
            continue
        known = baseline.get(sub)
        if known is not None:
            if sha256 and sha256.lower() not in known and sub.endswith(WEB_CODE):
                out.append((rel, "modified", sub))
        elif sub.endswith(SERVER_PAGES):
            out.append((rel, "unknown", sub))
    return out

"""The issue-19 web-root row: 20,000 small pages, signature-base pack, ``exhunt scan`` vs ``yara -p N``.

The 1 GB corpus of ``bench_yara`` hides per-file overhead behind YARA time; a web root is mostly
small pages, where exhunt's per-file Python work (listing, hashing, name checks, heuristics, manifest
rows) decides the speed. The corpus is generated here: variations of the shared benign ASPX pages
(cut to 0.5-4 KB, each with its own comment so no two files are equal) plus every shared web shell
planted once under a ``planted-`` name. Runs alternate (yara, exhunt, yara, exhunt, ...) so both
sides see the same machine load; medians are reported, with the goal of issue 19 (<= 1.1x).
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

GOAL = 1.1
PLANTED = "planted-"


def generate_pages(target: Path, shared: Path, folders: tuple[str, ...], files: int) -> list[str]:
    """Write the corpus once (``.complete`` marker); return the planted shells' relative paths."""
    shells = sorted(p for p in (shared / "webshells").rglob("*") if p.is_file() and "LICENSE" not in p.name)
    planted = [f"{folders[i % len(folders)]}/{PLANTED}{i:02d}-{p.name}" for i, p in enumerate(shells)]
    marker = target / ".complete"
    if marker.exists():
        return planted
    if target.exists():
        shutil.rmtree(target)
    benign = [p.read_bytes() for p in sorted((shared / "benign" / "aspx").rglob("*.as*")) if p.is_file()]
    rng = random.Random(19)
    for n in range(files - len(shells)):
        folder = target / folders[n % len(folders)] / f"d{n % 97:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        page = rng.choice(benign)
        size = min(len(page), rng.randint(512, 4096))
        data = page[:size] + f"\r\n<%-- page {n} rev {rng.getrandbits(32):08x} --%>\r\n".encode()
        name = f"p{n}.{rng.choice(['aspx', 'aspx', 'aspx', 'ashx', 'asmx', 'js', 'css', 'htm'])}"
        (folder / name).write_bytes(data)
    for rel, shell in zip(planted, shells, strict=True):
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(shell.read_bytes())
    marker.write_text("ok")
    return planted


Run = tuple[float, int, set[str], float]  # wall s, peak RSS KiB, flagged paths, CPU s
Timed = Callable[[], Run]


def alternate(sides: dict[str, Timed], rounds: int) -> dict[str, list[Run]]:
    """Run each side ``rounds`` times, interleaved, so load changes hit both alike."""
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            runs[name].append(run())
    return runs


def missed(planted: list[str], flagged: set[str]) -> list[str]:
    """Planted shells a tool did not flag (paths compared relative to the corpus, '/' separated)."""
    return [rel for rel in planted if rel not in flagged]


def table(runs: dict[str, list[Run]], planted: list[str], n_files: int) -> list[str]:
    """Markdown rows: median wall seconds, files/s, ratio to the first side, median CPU seconds and
    their ratio (steadier on a shared machine), RSS, planted found; goal row."""
    lines = [
        "| tool | runs (s) | median s | files/s | x yara time | CPU s | x yara CPU | peak RSS MB | planted found |",
        "|" + "---|" * 9,
    ]
    medians = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    cpus = {name: statistics.median(r[3] for r in rs) for name, rs in runs.items()}
    reference, cpu_reference = next(iter(medians.values())), next(iter(cpus.values()))
    for name, rs in runs.items():
        secs = ", ".join(f"{r[0]:.1f}" for r in rs)
        rss = max(r[1] for r in rs) / 1024
        found = len(planted) - len(missed(planted, rs[-1][2]))
        lines.append(
            f"| {name} | {secs} | {medians[name]:.1f} | {n_files / medians[name]:,.0f} "
            f"| {medians[name] / reference:.2f}x | {cpus[name]:.1f} | {cpus[name] / cpu_reference:.2f}x "
            f"| {rss:.0f} | {found}/{len(planted)} |"
        )
    ratio = list(medians.values())[-1] / reference
    verdict = "met" if ratio <= GOAL else "not met"
    lines.append(f"| goal (issue 19) | | | | <= {GOAL:.1f}x: **{verdict}** ({ratio:.2f}x) | | | | all |")
    return lines


def findings_fingerprint(findings_json: Path) -> dict[str, object]:
    """What must not change when the scan gets faster: every finding's check, key, severity,
    confidence and row count (not times or ids), as a SHA-256 of the sorted lines and counts per check."""
    doc = json.loads(findings_json.read_bytes())
    lines = sorted(
        f"{f['check']}\t{f['key']}\t{f['severity']}\t{f['confidence']}\t{f['count']}" for f in doc["findings"]
    )
    per_check = collections.Counter(f["check"] for f in doc["findings"])
    return {"findings": len(lines), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "per_check": dict(sorted(per_check.items()))}


def check_findings(findings_json: Path, reference: Path, update: bool) -> str:
    """Compare with the committed reference (written when absent or with ``update``); a difference
    stops the benchmark with the checks whose counts moved (a fast wrong answer does not count)."""
    got = findings_fingerprint(findings_json)
    if update or not reference.exists():
        reference.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
        return f"findings reference written: {got['findings']} findings"
    want = json.loads(reference.read_text(encoding="utf-8"))
    if got != want:
        moved = {c: (want["per_check"].get(c, 0), got["per_check"].get(c, 0))
                 for c in set(want["per_check"]) | set(got["per_check"])
                 if want["per_check"].get(c) != got["per_check"].get(c)}
        raise SystemExit(f"findings differ from {reference.name}: {got['findings']} vs {want['findings']}; "
                         f"per check (reference, now): {moved or 'same counts, other keys or severities'}")
    return f"findings identical to the reference ({got['findings']}, sha256 {str(got['sha256'])[:12]})"

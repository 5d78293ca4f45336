"""A scan with the rule set on disk runs its Sigma detections without pySigma: a new process loads
the plain set and runs the engine with neither ``sigma`` nor ``pyparsing`` imported, and its
findings are those of a process that parsed and converted the rules itself. A damaged plain file
costs time only: the same findings, and the next process reads the rewritten file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from exhunt.detections.sigma.loader import load
from tests.conftest import ROOT, SHARED
from tests.detections.sigma.casegen import matching_row
from tests.detections.sigma.test_sigma_correlation import BASE, correlation, proc

CASES = Path(__file__).parent / "cases" / "pack.yml"
SHARED_SIGMA = SHARED / "rules" / "sigma"
# A new process: load the rule set, run the engine over the rows, say what it found and imported.
SCAN = """
import dataclasses, sys
from pathlib import Path
import orjson
from exhunt.detections.sigma.engine import run
from exhunt.detections.sigma.loader import load_and_convert
from tests.detections.sigma.support import connect_rows
paths = [Path(p) for p in sys.argv[2:]]
rows = orjson.loads(Path(sys.argv[1]).read_bytes())
ruleset = load_and_convert(paths)
findings, report = run(connect_rows(rows), paths)
sys.stdout.write(orjson.dumps({
    "findings": [dataclasses.asdict(f) for f in findings], "report": report, "queries": len(ruleset.queries),
    "imported": sorted(m for m in ("sigma", "pyparsing") if m in sys.modules)}, default=str).decode())
"""


def _setup(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The rows (every pack case's, a burst the correlation fires on, one row per shared rule when
    that pack is present) and the rule folders beside the builtin pack."""
    folder = tmp_path / "correlated"
    folder.mkdir()
    (folder / "base.yml").write_text(BASE, encoding="utf-8")
    (folder / "burst.yml").write_text(correlation("event_count", "{gte: 3}", extra="level: high"), encoding="utf-8")
    paths = [folder]
    rows: list[dict[str, Any]] = [row for case in yaml.safe_load(CASES.read_text(encoding="utf-8"))
                                  for row in case["rows"]]
    rows += [proc(f"2024-01-01T10:0{minute}:00Z") for minute in (0, 1, 2)]
    if SHARED_SIGMA.is_dir():
        paths.append(SHARED_SIGMA)
        rows += [matching_row(rule) for rule in load([SHARED_SIGMA], include_builtin=False)[0]]
    stored = tmp_path / "rows.json"
    stored.write_bytes(orjson.dumps(rows))
    return stored, paths


def _scan(cache: Path, rows: Path, paths: list[Path]) -> dict[str, Any]:
    env = {**os.environ, "EXHUNT_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCAN, str(rows), *map(str, paths)], capture_output=True,
                          text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def _plain_files(cache: Path) -> list[Path]:
    return sorted((cache / "sigma").glob("*.plain.pickle"))


def test_warm_rules_run_without_pysigma_and_find_the_same(tmp_path: Path) -> None:
    rows, paths = _setup(tmp_path)
    cache = tmp_path / "cache"
    cold = _scan(cache, rows, paths)
    assert cold["imported"] == ["pyparsing", "sigma"]  # parsed and converted in this process
    checks = {f["check"]: f["severity"] for f in cold["findings"]}
    assert checks["sigma:exhunt_exchange_worker_spawns_shell"] == "critical" and checks["sigma:burst"] == "high"
    # the builtin pack's cases and the correlation fire 19 rules; the shared pack, when present, more
    assert cold["report"]["failed"] == [] and len(checks) >= (40 if SHARED_SIGMA.is_dir() else 19), checks

    warm = _scan(cache, rows, paths)
    assert warm["imported"] == []
    assert warm == {**cold, "imported": []}  # findings (ids, counts, severities, evidence) and report

    (plain,) = _plain_files(cache)
    plain.write_bytes(plain.read_bytes()[:200])
    damaged = _scan(cache, rows, paths)
    assert {**damaged, "imported": []} == warm
    assert _scan(cache, rows, paths) == warm  # the plain file was written again

    for stored in (cache / "sigma").glob("*.pickle"):
        stored.write_bytes(stored.read_bytes()[:200])
    assert _scan(cache, rows, paths) == cold  # both damaged: parsed and converted again
    assert _scan(cache, rows, paths) == warm

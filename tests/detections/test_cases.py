"""Runs every YAML case in tests/detections/cases against its check (rows in -> findings out)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt.artifacts.timeparse import parse_ts
from exhunt.detections.checks import CHECKS
from exhunt.detections.runner import run_checks
from exhunt.events.schema import TABLES, TS
from exhunt.events.store import StoreWriter, connect

CASES_DIR = Path(__file__).parent / "cases"
CHECKS_BY_ID = {c.id: c for c in CHECKS}


def _load_cases() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in spec["cases"]:
            params.append(pytest.param(spec["check"], case, id=f"{path.stem}:{case['name']}"))
    return params


def _row(table: str, row: dict[str, Any], index: int) -> dict[str, Any]:
    out = {"host": "h", "path": "case.log", **row}
    if table == "events":
        out.setdefault("line", index + 1)
    for name in TABLES[table].names:
        value = out.get(name)
        if TABLES[table].field(name).type == TS and isinstance(value, str | datetime):
            out[name] = parse_ts(value) if isinstance(value, str) else value
    return out


@pytest.mark.parametrize(("check_id", "case"), _load_cases())
def test_case(tmp_path: Path, check_id: str, case: dict[str, Any]) -> None:
    assert check_id in CHECKS_BY_ID, f"unknown check {check_id}"
    with StoreWriter(tmp_path / "store", "h") as writer:
        for table, rows in case["rows"].items():
            for i, row in enumerate(rows):
                writer.add(table, _row(table, row, i))
    con = connect(tmp_path / "store")
    findings = run_checks(con, [CHECKS_BY_ID[check_id]()])
    expect = case["expect"]
    assert len(findings) == expect["findings"], [f.key for f in findings]
    if "confidence" in expect:
        assert sorted(f.confidence for f in findings) == sorted(expect["confidence"])
    if "keys" in expect:
        assert sorted(f.key for f in findings) == sorted(expect["keys"])
    if "rows" in expect:
        assert sum(f.count for f in findings) == expect["rows"]


def test_every_check_has_a_case() -> None:
    covered = {yaml.safe_load(p.read_text(encoding="utf-8"))["check"] for p in CASES_DIR.glob("*.yml")}
    missing = sorted(set(CHECKS_BY_ID) - covered)
    assert not missing, f"checks without a detection case: {missing}"

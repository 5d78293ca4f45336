"""Bytes in, rows out: every parser case in tests/artifacts/cases/*.yml through the worker's task."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt.utctime import iso_utc
from tests.helpers import parse_bytes

CASES = Path(__file__).parent / "cases"


def _cases() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["cases"]:
            out.append(pytest.param(doc["artifact"], case, id=f"{path.stem}: {case['name']}"))
    return out


def _content(case: dict[str, Any]) -> bytes:
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    text: str = case["text"]
    ending = "\r\n" if case.get("crlf") else "\r" if case.get("cr") else "\n"
    return text.replace("\n", ending).encode("utf-8")


def _plain(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else value


@pytest.mark.parametrize(("artifact", "case"), _cases())
def test_parser_case(tmp_path: Path, artifact: str, case: dict[str, Any]) -> None:
    con = parse_bytes(tmp_path, case["path"], _content(case))
    assert con.execute("SELECT artifact FROM files").fetchall() == [(artifact,)]
    wanted: list[dict[str, Any]] = case.get("events") or []
    columns = sorted({c for row in wanted for c in row} | {"line"})
    rows = con.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY line").fetchall()
    got = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    assert len(got) == len(wanted), f"{len(got)} events, expected {len(wanted)}: {got}"
    for row, want in zip(got, wanted, strict=True):  # only the columns a case names are compared
        assert {c: row[c] for c in want} == want
    warnings = [m for (m,) in con.execute("SELECT message FROM warnings ORDER BY line, message").fetchall()]
    expected_warnings = case.get("warnings") or []
    assert len(warnings) == len(expected_warnings), warnings
    for message, part in zip(warnings, expected_warnings, strict=True):
        assert part in message
    facts = sorted(list(f) for f in con.execute("SELECT fact, value FROM host_facts").fetchall())
    assert facts == sorted(case.get("facts") or [])

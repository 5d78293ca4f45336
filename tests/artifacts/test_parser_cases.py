"""Bytes in, rows out: every parser case in tests/artifacts/cases/*.yml through the worker's task; the
cases of an artifact with a fast path (the ``#Fields`` logs) through both its parsers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt.artifacts import RANGE_ARTIFACTS, w3c_fast
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


def _parsed_cases() -> list[Any]:
    """Every case with the parser it runs through: both for an artifact with a fast path, else its own."""
    return [pytest.param(*p.values, parser, id=f"{p.id} [{parser}]" if parser else p.id)
            for p in _cases() for parser in (("reference", "fast") if p.values[0] in RANGE_ARTIFACTS else (None,))]


def _use_parser(monkeypatch: pytest.MonkeyPatch, artifact: str, parser: str | None) -> None:
    """Small files take the reference parser: force the one the case runs with (the fast path still
    hands the reference a segment it declines)."""
    if parser == "reference":
        monkeypatch.setattr(RANGE_ARTIFACTS[artifact][0], "fast", False)
    elif parser == "fast":
        monkeypatch.setattr(w3c_fast, "MIN_FAST_BYTES", 0)


def _content(case: dict[str, Any]) -> bytes:
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    text: str = case["text"]
    ending = "\r\n" if case.get("crlf") else "\r" if case.get("cr") else "\n"
    return text.replace("\n", ending).encode("utf-8")


def _plain(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else value


@pytest.mark.parametrize(("artifact", "case", "parser"), _parsed_cases())
def test_parser_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifact: str, case: dict[str, Any],
                     parser: str | None) -> None:
    _use_parser(monkeypatch, artifact, parser)
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

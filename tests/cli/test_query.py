from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from exhunt.api import ScanResult
from exhunt.cli import main
from exhunt.reports.query import TABLES, open_case


def test_pivot_on_an_ip_as_csv(scanned: ScanResult, capsys: pytest.CaptureFixture) -> None:
    sql = "SELECT host, path, line, uri FROM events WHERE client_ip = '203.0.113.9' ORDER BY ts"
    assert main(["query", str(scanned.case_dir), sql, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["uri"] for r in rows] == ["/ecp/y.js", "/ecp/y.js", "/aspnet_client/system_web/shell.aspx"]


def test_json_and_table_output(scanned: ScanResult, capsys: pytest.CaptureFixture) -> None:
    sql = "SELECT h.host, h.verdict, count(f.id) AS n FROM hosts h JOIN findings f USING (host) GROUP BY ALL"
    assert main(["query", str(scanned.case_dir), sql, "-f", "json"]) == 0
    n = len(scanned.document.findings)
    assert orjson.loads(capsys.readouterr().out) == [{"host": "EXCH01", "verdict": "compromised", "n": n}]
    assert main(["query", str(scanned.case_dir), "SELECT finding_id, ts FROM hits", "--no-color"]) == 0
    out = capsys.readouterr().out
    hits = sum(f.count for f in scanned.document.findings)
    assert "finding_id" in out and "\x1b[" not in out and f"{hits} rows" in out


def test_every_documented_table_exists(scanned: ScanResult) -> None:
    con = open_case(scanned.case_dir, None)
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(TABLES) <= names
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for table in TABLES:
        assert f"`{table}`" in readme, f"README documents table {table}"


@pytest.mark.parametrize("sql", ["DROP VIEW events", "COPY (SELECT 1) TO 'x.csv'", "SELECT 1; SELECT 2",
                                 "ATTACH ':memory:' AS x", "SET threads = 1", "SELEC nonsense",
                                 "SELECT * FROM read_parquet('https://example.invalid/x.parquet')"])
def test_only_one_read_only_select(scanned: ScanResult, sql: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["query", str(scanned.case_dir), sql]) == 2
    assert capsys.readouterr().err.startswith("exhunt: error:")


def test_missing_store_is_a_case_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["query", str(tmp_path), "SELECT 1"]) == 2

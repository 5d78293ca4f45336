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


def test_csv_cells_a_spreadsheet_would_run_are_text(scanned: ScanResult, capsys: pytest.CaptureFixture) -> None:
    sql = "SELECT '=cmd|''/c calc''!A1' AS ua, '@SUM(1)' AS b, 'plain' AS c, NULL AS d"
    assert main(["query", str(scanned.case_dir), sql, "--format", "csv"]) == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row == {"ua": "'=cmd|'/c calc'!A1", "b": "'@SUM(1)", "c": "plain", "d": ""}


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
                                 "SELECT * FROM read_parquet('https://example.invalid/x.parquet')",
                                 "EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '{case}/findings.json' (FORMAT csv)",
                                 "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
                                 "SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM glob('/*')",
                                 "SELECT * FROM read_csv('{case}/../x.csv')"])
def test_only_one_read_only_select(scanned: ScanResult, sql: str, capsys: pytest.CaptureFixture) -> None:
    """One SELECT, reading nothing but the case's own store: never a write, never the machine's files."""
    findings = (scanned.case_dir / "findings.json").read_bytes()
    (scanned.case_dir.parent / "x.csv").write_text("a\n1\n")
    assert main(["query", str(scanned.case_dir), sql.format(case=scanned.case_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exhunt: error:") and err.count("\n") == 1, err
    assert (scanned.case_dir / "findings.json").read_bytes() == findings


def test_control_characters_never_reach_the_terminal(scanned: ScanResult, capsys: pytest.CaptureFixture) -> None:
    sql = "SELECT 'esc' || chr(27) || '[31mred' || chr(27) || '[0m' || chr(8238) || 'gpj.aspx' AS v, '[bold]x[/]' AS m"
    assert main(["query", str(scanned.case_dir), sql, "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[31mred" in out and "\\u202egpj.aspx" in out and "[bold]x[/]" in out


def test_missing_store_is_a_case_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["query", str(tmp_path), "SELECT 1"]) == 2

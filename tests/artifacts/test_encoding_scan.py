"""A whole collection whose every text file was re-saved as UTF-16LE (Windows PowerShell 5.1's
``Out-File``) gives the same findings, evidence lines and warnings as the UTF-8 original."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.findings.model import AssessmentDocument
from tests.artifacts.psexport import export
from tests.artifacts.test_cmdlet_exports import EXPORTS, EXSETUP

TEXT_ARTIFACTS = ("iis", "exchange_log", "oab_generator", "ndjson", "cmdlet_export")


def _summary(doc: AssessmentDocument) -> list[tuple]:
    return sorted((f.check, f.key, f.confidence, f.count, tuple((e.path, e.line) for e in f.evidence))
                  for f in doc.findings)


def test_utf16_copy_of_every_text_file_gives_the_same_findings(tmp_path: Path) -> None:
    evidence = tmp_path / "utf8"
    generate(evidence, DemoSpec(per_day=300, days=2))
    exports = evidence / "collected"
    exports.mkdir()
    for number, (cmdlet, (type_name, objects, _, _)) in enumerate(EXPORTS.items()):
        form = ("csv", "csv7", "json7")[number % 3]
        (exports / f"{cmdlet}.{form}").write_bytes(export(objects, form, type_name))
    (exports / "exsetup.json").write_bytes(export([EXSETUP], "json7", "System.Diagnostics.FileVersionInfo"))
    first = scan([evidence], ScanOptions(out=tmp_path / "case8", host="EXCH01", jobs=1, quiet=True,
                                         html_report=False))
    con = duckdb.connect()
    text_files = [r[0] for r in con.execute(
        f"SELECT path FROM read_parquet('{tmp_path}/case8/store/files/**/*.parquet') "
        f"WHERE artifact IN {TEXT_ARTIFACTS}").fetchall()]
    assert len(text_files) > 10 and any(p.endswith(".csv") for p in text_files)

    copy = tmp_path / "utf16"
    shutil.copytree(evidence, copy)
    for rel in text_files:
        target = copy / rel
        text = target.read_bytes().decode("utf-8-sig")
        target.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    second = scan([copy], ScanOptions(out=tmp_path / "case16", host="EXCH01", jobs=1, quiet=True,
                                      html_report=False))
    assert first.document.findings and _summary(second.document) == _summary(first.document)
    artifacts16 = con.execute(
        f"SELECT path, artifact FROM read_parquet('{tmp_path}/case16/store/files/**/*.parquet') "
        f"WHERE artifact IN {TEXT_ARTIFACTS} ORDER BY path").fetchall()
    artifacts8 = con.execute(
        f"SELECT path, artifact FROM read_parquet('{tmp_path}/case8/store/files/**/*.parquet') "
        f"WHERE artifact IN {TEXT_ARTIFACTS} ORDER BY path").fetchall()
    assert artifacts16 == artifacts8
    (host8,), (host16,) = first.document.hosts, second.document.hosts
    assert (host16.coverage.events, host16.coverage.warnings) == (host8.coverage.events, host8.coverage.warnings)

"""One small ProxyLogon case per test session, scanned once through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanResult
from exhunt.findings.document import load_document
from exhunt.reports.case import Case
from tests.reports.evidence import build_case


@pytest.fixture(scope="session")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    return build_case(tmp_path_factory.mktemp("reports-case"))


@pytest.fixture
def case_dir(scanned: ScanResult) -> Path:
    return scanned.case_dir


@pytest.fixture
def case(case_dir: Path) -> Case:
    return Case(load_document(case_dir), case_dir / "store")

"""The bundled build/CVE tables are exactly what tools/refresh_builds.py derives from the shared data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_path

BUNDLED = ROOT / "exhunt" / "data" / "builds"


def _tool():  # tools/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("refresh_builds", ROOT / "tools" / "refresh_builds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["builds.csv", "cves.csv", "SOURCE.md"])
def test_bundled_tables_agree_with_shared_data(name: str) -> None:
    derived = _tool().derive(shared_path("exchange-builds"))
    assert (BUNDLED / name).read_text(encoding="utf-8") == derived[name], (
        f"exhunt/data/builds/{name} is stale: run tools/refresh_builds.py ../shared/data/exchange-builds"
    )


def test_refresh_writes_the_three_files(tmp_path: Path) -> None:
    shared = shared_path("exchange-builds")
    assert _tool().main([str(shared), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SOURCE.md", "builds.csv", "cves.csv"]


def test_refresh_refuses_a_folder_without_tables(tmp_path: Path) -> None:
    assert _tool().main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_bundled_tables_cover_all_17_exploited_cves() -> None:
    from exhunt.detections.buildtable import build_rows, cve_ids

    assert len(cve_ids()) == 17
    assert len(build_rows()) >= 269

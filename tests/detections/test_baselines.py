"""Known-good baselines: both CSS-Exchange path styles, build matching, modified and unknown files."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.detections.baselines import build_key, deviations, install_relative, load_baselines
from tests.conftest import shared_path

GOOD = "1" * 64
V15 = "C/Program Files/Microsoft/Exchange Server/V15/"


def _write(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def baselines(tmp_path: Path):  # type: ignore[no-untyped-def]
    _write(
        tmp_path,
        "baseline_15.1.2176.2.csv",
        [
            f"{GOOD.upper()},15.1.2176.2,\\FrontEnd\\HttpProxy\\owa\\auth\\logon.aspx",
            f"{GOOD},15.1.2176.2,\\ClientAccess\\ecp\\default.aspx",
        ],
    )
    _write(tmp_path, "baseline_15.2.792.3.csv", [f"{GOOD},15.2.792.3,owa\\auth.owa", "junk line"])
    return load_baselines([tmp_path])


def test_builds_in_any_spelling_match(baselines) -> None:  # type: ignore[no-untyped-def]
    assert build_key("15.01.2176.002") == build_key("15.1.2176.2")
    assert baselines.for_build("15.01.2176.002") is not None
    assert baselines.for_build("15.2.792.3") == {"clientaccess/owa/auth.owa": {GOOD}}  # ClientAccess-relative
    assert baselines.for_build("15.2.1118.7") is None and baselines.for_build(None) is None


CASES = [
    ("known page, same hash", V15 + "FrontEnd/HttpProxy/owa/auth/logon.aspx", GOOD, None),
    ("known page, other hash", V15 + "FrontEnd/HttpProxy/owa/auth/logon.aspx", "2" * 64, "modified"),
    (
        "case and separators differ",
        "c/PROGRAM FILES/microsoft/exchange server/v15/ClientAccess/ECP/Default.aspx",
        "2" * 64,
        "modified",
    ),
    ("unknown page", V15 + "FrontEnd/HttpProxy/owa/auth/errorEE.aspx", "3" * 64, "unknown"),
    ("unknown non-page", V15 + "FrontEnd/HttpProxy/owa/auth/readme.txt", "3" * 64, None),
    ("outside the web folders", V15 + "Bin/x.aspx", "3" * 64, None),
    ("not an Exchange install", "inetpub/wwwroot/x.aspx", "3" * 64, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_deviations(baselines, case) -> None:  # type: ignore[no-untyped-def]
    _name, path, sha, expected = case
    found = deviations([(path, sha)], baselines.for_build("15.1.2176.2"))
    assert [k for _p, k, _s in found] == ([expected] if expected else [])


def test_install_relative() -> None:
    assert install_relative("x/Exchange Server/V15/FrontEnd/a.aspx") == "frontend/a.aspx"
    assert install_relative("V15/ClientAccess/ecp/b.aspx") == "clientaccess/ecp/b.aspx"
    assert install_relative("inetpub/wwwroot/a.aspx") is None


def test_shared_baselines_load() -> None:
    loaded = load_baselines([shared_path("css-exchange", "baselines")])
    assert sorted(loaded.report()["builds"]) == ["15.1.2176.2", "15.2.792.3"]
    logon = loaded.for_build("15.1.2176.2")
    assert logon is not None and "frontend/httpproxy/owa/auth/logon.aspx" in logon
    assert any(k.startswith("clientaccess/owa/") for k in loaded.for_build("15.2.792.3") or {})


@pytest.mark.parametrize(("path", "expected"), [
    (V15 + "FrontEnd/HttpProxy/owa/auth/logon.aspx", []),  # the baseline holds no FrontEnd file: no verdict
    (V15 + "ClientAccess/owa/auth/errorEE.aspx", ["unknown"]),
    (V15 + "ClientAccess/owa/auth.owa", []),
])
def test_a_baseline_judges_only_the_web_roots_it_covers(baselines, path: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    """A baseline written relative to ClientAccess (CSS-Exchange's 2019 one) had made every FrontEnd
    page "unknown", and a clean host suspicious."""
    found = deviations([(path, "4" * 64)], baselines.for_build("15.2.792.3"))
    assert [k for _p, k, _s in found] == expected

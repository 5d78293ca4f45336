"""Filename/path regex IOCs: the yara-x prefilter gives exactly what plain ``re`` gives."""

from __future__ import annotations

import re

import pytest

from exhunt.detections.iocs.model import Indicator
from exhunt.detections.iocs.pathmatch import PathMatcher, windows_form

REGEXES = [
    (r"\\owa\\auth\\[a-z0-9]{8}\.aspx$", None),
    (r"(?i)\\aspnet_client\\system_web\\[^\\]{1,20}\.aspx", None),
    (r"\\ProgramData\\[a-z]\.7z", r"\\ProgramData\\ok\.7z"),
    (r"(?<=Temp)\\x\.exe", None),  # lookbehind: yara-x rejects it, re judges alone
    (r"^\\C\\Windows\\Temp\\", None),
]
PATHS = [
    "C/Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/abcd1234.aspx",
    "C/Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/logon.aspx",
    "C/inetpub/wwwroot/ASPNET_CLIENT/System_Web/help.aspx",
    "C/ProgramData/a.7z",
    "C/Windows/Temp/x.exe",
    "C/Users/Temp/x.exe",
    "D/data/owa/auth/abcd1234.aspx.bak",
    "naïve/ünïcode/owa/auth/zzzz9999.aspx",
]


def _reference(paths: list[str]) -> set[tuple[int, str]]:
    out = set()
    for i, path in enumerate(paths):
        for regex, exclude in REGEXES:
            win = windows_form(path)
            if re.search(regex, win) and not (exclude and re.search(exclude, win)):
                out.add((i, regex))
    return out


@pytest.mark.parametrize("n", range(len(PATHS)))
def test_prefiltered_equals_plain_re(n: int) -> None:
    matcher = PathMatcher([Indicator("filename_regex", r, "t", exclude=e) for r, e in REGEXES])
    paths = PATHS[n:] + PATHS[:n]
    assert {(i, ind.value) for i, ind in matcher.match(paths)} == _reference(paths)


def test_regexes_yara_rejects_fall_back_to_re() -> None:
    matcher = PathMatcher([Indicator("filename_regex", r, "t") for r, _ in REGEXES])
    assert 3 in matcher.python

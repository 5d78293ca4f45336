"""The rules' pre-parse summary on disk: both prefilters equal with and without it, the full rule
set not loaded when it is read, and a damaged or writable-by-others file derived again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exhunt.detections import eventfilter, prefilter
from exhunt.detections.checks import CHECKS
from exhunt.detections.patterns import url_text
from exhunt.detections.sigma import loader, summary
from tests.detections.sigma.test_loader_bad_input import GOOD_RULE

WEB_RULE = """title: webshell path
id: 7d1b6f1e-0000-4000-8000-000000000052
logsource: {category: webserver}
detection:
  sel: {cs-uri-stem|contains: '/aspnet_client/evil'}
  condition: sel
level: high
"""
NO_LITERAL_WEB_RULE = WEB_RULE.replace("0052", "0053").replace("webshell path", "any 500").replace(
    "sel: {cs-uri-stem|contains: '/aspnet_client/evil'}", "sel: {sc-status: 500}")


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "rules"
    folder.mkdir()
    win = GOOD_RULE.replace("0001", "0061").replace("w3wp.exe", "zzparent.exe").replace("cmd.exe", "zzchild.exe")
    (folder / "win.yml").write_text(win, encoding="utf-8")
    (folder / "web.yml").write_text(WEB_RULE, encoding="utf-8")
    (folder / "web500.yml").write_text(NO_LITERAL_WEB_RULE, encoding="utf-8")
    return folder


def _both(rules: Path) -> tuple[object, object]:
    events = eventfilter.build("triage", CHECKS, [rules])
    gathered = prefilter.gather(CHECKS, [rules], [])
    return (events.literals, events.full_because), (gathered.patterns, gathered.full, gathered.skipped)


def _summary_files(rules: Path) -> list[Path]:
    return list((rules.parent / "cache" / "sigma").glob("*.summary.json"))


def test_prefilters_equal_from_the_summary_without_loading_the_rules(
        rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _both(rules)
    assert len(_summary_files(rules)) == 1
    events, (patterns, full, _) = first
    assert url_text("/aspnet_client/evil") in patterns
    assert any(f["origin"].startswith("sigma any 500") for f in full)
    assert events[0] is not None and {"\\zzparent.exe", "\\zzchild.exe"} & set(events[0])
    loader.forget()  # a new process
    monkeypatch.setattr(loader, "_from_disk_or_load", lambda *a: pytest.fail("the rule set was loaded"))
    assert _both(rules) == first


def test_an_edited_rule_gets_a_new_summary(rules: Path) -> None:
    _both(rules)
    (rules / "web.yml").write_text(WEB_RULE.replace("/aspnet_client/evil", "/owa/auth/other"), encoding="utf-8")
    loader.forget()
    _, (patterns, _, _) = _both(rules)
    assert url_text("/owa/auth/other") in patterns and url_text("/aspnet_client/evil") not in patterns
    assert len(_summary_files(rules)) == 2


@pytest.mark.parametrize("damage", ["truncated", "foreign", "group-writable"])
def test_a_bad_summary_is_derived_again(rules: Path, damage: str) -> None:
    first = _both(rules)
    (path,) = _summary_files(rules)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "foreign":
        path.write_bytes(b'{"web": 1}')
    else:
        if not hasattr(os, "getuid"):
            pytest.skip("POSIX permissions")
        path.write_bytes(b'{"web": [], "windows": []}')  # would drop every rule's patterns
        path.chmod(0o664)
    loader.forget()
    assert _both(rules) == first


def test_summary_lists_each_rule_once(rules: Path) -> None:
    made = summary.summary([rules])
    names = [r.name for r in made.web]
    assert len(names) == len(set(names)) and any("webshell path" in n for n in names)


def test_prefilters_from_a_stored_summary_do_not_import_pysigma(tmp_path: Path) -> None:
    """pySigma's import (~0.13 s) belongs to the rule set, loaded while the workers parse."""
    import subprocess
    import sys

    code = ("import sys\nfrom exhunt.api import ScanOptions, event_filter, triage_plan\n"
            "event_filter(ScanOptions()); triage_plan(ScanOptions())\n"
            "print('sigma.rule' in sys.modules)\n")
    env = {**os.environ, "EXHUNT_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]  # the first derives and stores it

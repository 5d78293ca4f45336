"""Sigma rules are parsed and converted once per rule set and process (a scan needs them three
times), and an edited rule file is a new rule set."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.detections.sigma import loader
from tests.detections.sigma.test_loader_bad_input import GOOD_RULE


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"load": 0, "convert": 0}
    real_load, real_convert = loader.load, loader.convert_rules

    def load(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def convert(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["convert"] += 1
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(loader, "load", load)
    monkeypatch.setattr(loader, "convert_rules", convert)
    return calls


def test_a_scan_parses_and_converts_its_rules_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "own.yml").write_text(GOOD_RULE.replace("0001", "0042"), encoding="utf-8")  # a set no other test loads
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "notes.txt").write_text("nothing\n", encoding="utf-8")
    calls = _counting(monkeypatch)
    scan([evidence], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, progress=False, sigma=[rules],
                                 html_report=False))
    assert calls == {"load": 1, "convert": 1}


def test_an_edited_rule_file_is_loaded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(GOOD_RULE.replace("0001", "0043"), encoding="utf-8")
    first = loader.load_and_convert([tmp_path], include_builtin=False)
    rule.write_text(GOOD_RULE.replace("0001", "0043").replace("cmd from w3wp", "cmd from w3wp, edited"),
                    encoding="utf-8")
    second = loader.load_and_convert([tmp_path], include_builtin=False)
    assert [q.rule.title for q in first.queries] == ["cmd from w3wp"]
    assert [q.rule.title for q in second.queries] == ["cmd from w3wp, edited"]


def test_each_caller_gets_its_own_ruleset(tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(GOOD_RULE.replace("0001", "0044"), encoding="utf-8")
    first = loader.load_and_convert([tmp_path], include_builtin=False)
    first.fail(None, "x", "a run-time failure of one scan")
    second = loader.load_and_convert([tmp_path], include_builtin=False)
    assert second.failed == [] and len(second.queries) == len(first.queries) == 1


def test_parsed_rules_are_the_rules_as_written(tmp_path: Path) -> None:
    """Converting (pySigma pipelines change rules in place) must not touch the parse others read."""
    (tmp_path / "rule.yml").write_text(GOOD_RULE.replace("0001", "0045"), encoding="utf-8")
    before = repr(loader.parsed([tmp_path], include_builtin=False)[0][0].to_dict())
    loader.load_and_convert([tmp_path], include_builtin=False)
    assert repr(loader.parsed([tmp_path], include_builtin=False)[0][0].to_dict()) == before

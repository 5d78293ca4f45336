"""The Sigma loader's disk cache: a new process (here: ``forget``) reads parse + conversion from
disk, and anything the result depends on (rule bytes, pySigma or exhunt code) is a new entry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exhunt.detections.sigma import cache, loader
from tests.detections.sigma.test_loader_bad_input import GOOD_RULE
from tests.detections.sigma.test_loader_cache import _counting


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rule.yml").write_text(GOOD_RULE.replace("0001", "0051"), encoding="utf-8")
    return folder


def _sqls(ruleset: loader.RuleSet) -> list[tuple[str, str, str]]:
    return [(q.rule.title or "", q.logsource, q.sql) for q in ruleset.queries]


def test_a_new_process_reads_the_rules_from_disk(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = loader.load_and_convert([rules])
    loader.forget()
    calls = _counting(monkeypatch)
    second = loader.load_and_convert([rules])
    parsed, _ = loader.parsed([rules])
    assert calls == {"load": 0, "convert": 0}
    assert _sqls(second) == _sqls(first) and second.report() == first.report()
    assert [r.title for r in parsed] == [r.title for r in loader.parsed([rules])[0]]
    assert len(list((rules.parent / "cache" / "sigma").glob("*.pickle"))) == 1


def test_converted_rules_stay_apart_from_the_parsed_ones(rules: Path) -> None:
    loader.load_and_convert([rules])
    loader.forget()
    converted = loader.load_and_convert([rules])
    parsed, _ = loader.parsed([rules])
    own = [q.rule for q in converted.queries if q.rule.title == "cmd from w3wp"]
    assert own and all(rule is not p for rule in own for p in parsed)


def test_an_edited_rule_is_parsed_again(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader.load_and_convert([rules])
    (rules / "rule.yml").write_text(GOOD_RULE.replace("0001", "0051").replace("cmd from w3wp", "edited"),
                                    encoding="utf-8")
    loader.forget()
    calls = _counting(monkeypatch)
    titles = {q.rule.title for q in loader.load_and_convert([rules]).queries}
    assert calls == {"load": 1, "convert": 1} and "edited" in titles


@pytest.mark.parametrize("what", ["pysigma", "exhunt code"])
def test_other_code_is_a_new_entry(rules: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    loader.load_and_convert([rules])
    loader.forget()
    cache.code_digest.cache_clear()
    if what == "pysigma":
        monkeypatch.setattr(cache, "version", lambda name: "0.0.0-other")
    else:
        monkeypatch.setattr(cache, "FORMAT", cache.FORMAT + 1000)  # stands for edited converter code
    calls = _counting(monkeypatch)
    try:
        loader.load_and_convert([rules])
    finally:
        cache.code_digest.cache_clear()
    assert calls == {"load": 1, "convert": 1}


def test_a_damaged_entry_is_parsed_again(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader.load_and_convert([rules])
    (stored,) = (rules.parent / "cache" / "sigma").glob("*.pickle")
    stored.write_bytes(stored.read_bytes()[:100])
    loader.forget()
    calls = _counting(monkeypatch)
    assert {q.rule.title for q in loader.load_and_convert([rules]).queries} >= {"cmd from w3wp"}
    assert calls == {"load": 1, "convert": 1}


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permission bits")
def test_an_entry_others_may_write_is_not_trusted(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader.load_and_convert([rules])
    (stored,) = (rules.parent / "cache" / "sigma").glob("*.pickle")
    stored.chmod(0o666)
    loader.forget()
    calls = _counting(monkeypatch)
    loader.load_and_convert([rules])
    assert calls == {"load": 1, "convert": 1}


def test_an_unwritable_cache_costs_only_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("EXHUNT_CACHE", str(blocker))
    (tmp_path / "rule.yml").write_text(GOOD_RULE.replace("0001", "0052"), encoding="utf-8")
    assert [q.rule.title for q in loader.load_and_convert([tmp_path], include_builtin=False).queries] == [
        "cmd from w3wp"]

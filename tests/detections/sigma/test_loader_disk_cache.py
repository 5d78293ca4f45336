"""The Sigma loader's disk cache: a new process (here: ``forget``) reads parse + conversion from
disk (the engine's plain set alone when it only runs the rules), and anything the result depends on
(rule bytes, pySigma or exhunt code) is a new entry."""

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


def _stored(rules: Path) -> dict[str, Path]:
    """The cache's files by kind: "pickle" (pySigma's rules) and "plain.pickle" (the engine's set)."""
    return {p.name.split(".", 1)[1]: p for p in (rules.parent / "cache" / "sigma").glob("*.pickle")}


def test_a_new_process_reads_the_rules_from_disk(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = loader.load_and_convert([rules])
    loader.forget()
    calls = _counting(monkeypatch)
    second = loader.load_and_convert([rules])
    assert loader._FULL == {}  # the plain set alone was read, not pySigma's rules
    parsed, _ = loader.parsed([rules])
    assert calls == {"load": 0, "convert": 0}
    assert second == first  # the converted set from disk is the one converted in this process
    assert _sqls(second) == _sqls(first) and second.report() == first.report()
    assert [r.title for r in parsed] == [r.title for r in loader.parsed([rules])[0]]
    assert sorted(_stored(rules)) == ["pickle", "plain.pickle"]


def test_converted_rules_stay_apart_from_the_parsed_ones(rules: Path) -> None:
    loader.load_and_convert([rules])
    loader.forget()
    converted = loader.converted_queries([rules])
    parsed, _ = loader.parsed([rules])
    own = [q.rule for q in converted if q.rule.title == "cmd from w3wp"]
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


@pytest.mark.parametrize(("damaged", "converted"), [("pickle", 0), ("plain.pickle", 0), ("both", 1)])
def test_a_damaged_entry_is_parsed_again(rules: Path, monkeypatch: pytest.MonkeyPatch, damaged: str,
                                         converted: int) -> None:
    """A truncated file: the other one serves (the plain set is written again from pySigma's), or
    with both gone the rules are parsed and converted again; the same set either way."""
    first = loader.load_and_convert([rules])
    for kind, stored in _stored(rules).items():
        if damaged in (kind, "both"):
            stored.write_bytes(stored.read_bytes()[:100])
    loader.forget()
    calls = _counting(monkeypatch)
    assert loader.load_and_convert([rules]) == first
    assert calls == {"load": converted, "convert": converted}
    loader.forget()
    assert loader.load_and_convert([rules]) == first
    assert loader._FULL == {}  # from the plain set (written again when it was the damaged one)


def test_a_foreign_plain_entry_is_not_read(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain entry naming any class but the plain ones (here: pySigma's rules) is refused unread:
    the rules then come from pySigma's pickle."""
    import pickle

    first = loader.load_and_convert([rules])
    stored = _stored(rules)
    digest = loader.digest([rules])
    stored["plain.pickle"].write_bytes(pickle.dumps((digest, cache.read(digest)[2])))
    assert cache.read_plain(digest) is None
    stored["plain.pickle"].write_bytes(pickle.dumps((digest, "not a rule set")))
    assert cache.read_plain(digest) is None
    loader.forget()
    calls = _counting(monkeypatch)
    assert loader.load_and_convert([rules]) == first and calls == {"load": 0, "convert": 0}
    assert cache.read_plain(digest) == first


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permission bits")
@pytest.mark.parametrize(("shared", "converted"), [("plain.pickle", 0), ("both", 1)])
def test_an_entry_others_may_write_is_not_trusted(rules: Path, monkeypatch: pytest.MonkeyPatch, shared: str,
                                                  converted: int) -> None:
    loader.load_and_convert([rules])
    for kind, stored in _stored(rules).items():
        if shared in (kind, "both"):
            stored.chmod(0o666)
    loader.forget()
    calls = _counting(monkeypatch)
    loader.load_and_convert([rules])
    assert calls == {"load": converted, "convert": converted}
    assert all(not p.stat().st_mode & 0o022 for p in _stored(rules).values())  # written again, private


def test_an_unwritable_cache_costs_only_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("EXHUNT_CACHE", str(blocker))
    (tmp_path / "rule.yml").write_text(GOOD_RULE.replace("0001", "0052"), encoding="utf-8")
    assert [q.rule.title for q in loader.load_and_convert([tmp_path], include_builtin=False).queries] == [
        "cmd from w3wp"]

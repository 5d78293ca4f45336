"""What a scan needs of the Sigma rules before it parses, kept on disk as JSON: each web rule's
prefilter patterns and each Windows rule's EVTX chunk texts.

Both prefilters must be ready before the workers take their first file, so whatever they cost is
on the scan's critical path. Deriving them from the rules meant loading the whole parsed and
converted rule set (the loader's pickle: ~0.1 s with the SigmaHQ pack) and walking every rule's
conditions (~0.08 s); this summary is a few kilobytes of strings, read in a millisecond. The full
rule set is then loaded while the workers parse (``loader.load_and_convert`` in a thread of the
scan process, which has nothing else to do meanwhile). Keyed like the loader's cache (the rule
files' bytes, the versions, exhunt's Sigma code) plus the code that derives the summary; used only
when this user owns it and no one else may write it (a doctored summary would blind a prefilter).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson

# modules outside detections/sigma whose code shapes the summary (the loader's key covers that folder)
SUMMARY_MODULES = (("detections", "eventfilter.py"), ("detections", "patterns.py"), ("sqlfold.py",))
FORMAT = 1


@dataclass(frozen=True)
class WebRule:
    name: str
    patterns: list[str] | None  # None: the rule has no necessary literal, its log types are parsed in full
    why: str


@dataclass(frozen=True)
class WindowsRule:
    texts: list[str]  # a chunk holding none of these has no event the rule selects
    full_because: dict[str, str] | None  # set when the rule needs every chunk parsed


@dataclass(frozen=True)
class Summary:
    web: list[WebRule]
    windows: list[WindowsRule]


def summary(paths: Sequence[Path], include_builtin: bool = True) -> Summary:
    """The builtin pack's and ``paths``' summary: from disk when this rule set was summarised before."""
    from exhunt.detections.sigma import cache
    from exhunt.detections.sigma.rulefiles import digest

    path = cache.cache_dir() / f"{_key(digest(paths, include_builtin))}.summary.json"
    stored = _read(path)
    if stored is not None:
        return stored
    made = _derive(paths, include_builtin)
    _write(path, made)
    return made


def _derive(paths: Sequence[Path], include_builtin: bool) -> Summary:
    from sigma.rule import SigmaRule

    from exhunt.detections.eventfilter import OTHER_KIND
    from exhunt.detections.sigma.literals import logsource_names, rule_literals
    from exhunt.detections.sigma.loader import converted_queries, parsed
    from exhunt.detections.sigma.prefilter import is_web_rule, rule_patterns

    web: list[WebRule] = []
    for rule in parsed(paths, include_builtin)[0]:
        if is_web_rule(rule):
            assert isinstance(rule, SigmaRule)
            patterns, why = rule_patterns(rule)
            web.append(WebRule(_name(rule), patterns, why))
    windows: list[WindowsRule] = []
    seen: set[int] = set()
    for query in converted_queries(paths, include_builtin):
        rule = query.rule
        if not query.logsource or id(rule) in seen or not isinstance(rule, SigmaRule):
            continue  # correlations: their referenced rules are queries of their own
        seen.add(id(rule))
        if OTHER_KIND.fullmatch(query.logsource.strip()):
            continue
        found, why = rule_literals(rule, field_names=True)
        found = found or logsource_names(query.logsource)
        full = None if found else {"what": _name(rule), "why": why + "; its logsource names no channel or provider"}
        windows.append(WindowsRule(list(found), full))
    return Summary(web, windows)


def _name(rule: object) -> str:
    source = getattr(rule, "source", None)
    return f"sigma {getattr(rule, 'title', None) or getattr(rule, 'id', '')}" + (
        f" ({source.path})" if source else "")


@functools.cache
def _code_digest() -> str:
    from exhunt.detections.sigma import cache

    sha = hashlib.sha256(f"{FORMAT}\0{cache.code_digest()}".encode())
    package = resources.files("exhunt")
    for parts in SUMMARY_MODULES:
        data = package.joinpath(*parts).read_bytes()
        sha.update(f"\0{parts[-1]}\0{len(data)}\0".encode() + data)
    return sha.hexdigest()


def _key(rules_digest: str) -> str:
    return hashlib.sha256(f"{rules_digest}\0{_code_digest()}".encode()).hexdigest()


def _read(path: Path) -> Summary | None:
    from exhunt.detections.sigma.cache import _trusted

    try:
        if not _trusted(path):
            return None
        data = orjson.loads(path.read_bytes())
        return Summary([WebRule(str(n), None if p is None else [str(x) for x in p], str(w)) for n, p, w in data["web"]],
                       [WindowsRule([str(x) for x in t], None if f is None else {str(k): str(v) for k, v in f.items()})
                        for t, f in data["windows"]])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # absent, damaged, foreign: derive again
        return None


def _write(path: Path, made: Summary) -> None:
    from exhunt.detections.sigma.cache import write_private

    write_private(path, orjson.dumps({"web": [[r.name, r.patterns, r.why] for r in made.web],
                                      "windows": [[r.texts, r.full_because] for r in made.windows]}))

"""Filename/path regex IOCs against many paths, fast: yara-x as the prefilter, Python ``re`` as judge.

signature-base alone has ~3,800 filename regexes; testing each with ``re`` against every path costs
milliseconds per path. Instead every regex becomes a one-string YARA rule and all paths (in their
Windows form, one per line) are scanned as one buffer; only the candidate (path, regex) pairs are
then confirmed with the list's own regex semantics (``re``, case-sensitive unless ``(?i)``, minus the
false-positive regex). Regexes yara-x cannot take are checked with ``re`` alone.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence

import yara_x

from exhunt.detections.iocs.model import Indicator

CHUNK_PATHS = 50_000
GROUP = 128


def windows_form(rel: str) -> str:
    return "\\" + rel.replace("/", "\\").lstrip("\\")


def _yara_regex(regex: str) -> tuple[str, bool]:
    nocase = False
    if regex.startswith("(?i)"):
        regex, nocase = regex[4:], True
    regex = regex.removeprefix("^")
    if regex.endswith("$") and not regex.endswith("\\$"):
        regex = regex[:-1]
    return regex.replace("/", "\\/"), nocase


class PathMatcher:
    def __init__(self, indicators: Sequence[Indicator]) -> None:
        self.indicators = list(indicators)
        self.python: list[int] = []
        self.compiled = [re.compile(i.value) for i in self.indicators]
        self.excludes = [re.compile(i.exclude) if i.exclude else None for i in self.indicators]
        sources: dict[int, str] = {}
        for n, ind in enumerate(self.indicators):
            body, nocase = _yara_regex(ind.value)
            if not body or "\n" in body:
                self.python.append(n)
            else:
                sources[n] = (
                    f"rule r{n} {{ strings: $r = /{body}/{' nocase' if nocase else ''} condition: $r }}"
                )
        compiler = yara_x.Compiler()
        compiler.ignore_invalid_rules(True)
        items = list(sources.items())
        for k in range(0, len(items), GROUP):  # groups: one bad regex costs a group, not the whole list
            group = items[k : k + GROUP]
            before = len(compiler.errors())
            compiler.new_namespace(f"g{k}")
            compiler.add_source("\n".join(src for _, src in group))
            if len(compiler.errors()) == before:
                continue
            compiler.new_namespace(f"one{k}")  # the group was dropped: its rules one by one
            for n, source in group:
                before = len(compiler.errors())
                compiler.add_source(source)
                if len(compiler.errors()) > before:
                    self.python.append(n)
        for ignored in compiler.ignored_rules():  # type: ignore[misc]
            name = str(getattr(ignored, "name", ""))
            if name.startswith("r") and name[1:].isdigit() and int(name[1:]) not in self.python:
                self.python.append(int(name[1:]))
        self.rules = compiler.build()

    def match(self, rels: Sequence[str]) -> Iterator[tuple[int, Indicator]]:
        """(index into rels, indicator) for every confirmed match."""
        for start in range(0, len(rels), CHUNK_PATHS):
            chunk = [windows_form(r) for r in rels[start : start + CHUNK_PATHS]]
            yield from ((start + i, ind) for i, ind in self._chunk(chunk))

    def _chunk(self, paths: list[str]) -> Iterator[tuple[int, Indicator]]:
        text = "\n".join(paths).encode("utf-8", "surrogateescape")
        starts, pos = [], 0
        for p in paths:
            starts.append(pos)
            pos += len(p.encode("utf-8", "surrogateescape")) + 1
        scanner = yara_x.Scanner(self.rules)
        seen: set[tuple[int, int]] = set()
        for rule in scanner.scan(text).matching_rules:
            n = int(rule.identifier[1:])
            for pattern in rule.patterns:
                for m in pattern.matches:
                    i = bisect.bisect_right(starts, m.offset) - 1
                    if (i, n) not in seen:
                        seen.add((i, n))
                        if self._confirm(n, paths[i]):
                            yield i, self.indicators[n]
        for n in self.python:
            for i, path in enumerate(paths):
                if self._confirm(n, path):
                    yield i, self.indicators[n]

    def _confirm(self, n: int, path: str) -> bool:
        exclude = self.excludes[n]
        return bool(self.compiled[n].search(path)) and not (exclude and exclude.search(path))

"""Exchange build numbers and the bundled build/CVE tables (``exhunt/data/builds``).

A build is four integers (``15.2.792.10``); Exchange writes it in several spellings (``15.02.0792.010``,
``Version 15.2 (Build 792.10)``) and OWA resource paths give only the CU level (``15.1.2176``, no
revision). ``parse_build`` accepts all of them and nothing else.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from importlib import resources

from exhunt.errors import UsageError

_NUM = r"\s*([0-9]{1,5})\s*"
_DOTTED = re.compile(rf"^{_NUM}\.{_NUM}\.{_NUM}(?:\.{_NUM})?$", re.ASCII)
_ADMIN = re.compile(rf"^version\s+{_NUM}\.{_NUM}\(\s*build\s+{_NUM}\.{_NUM}\)$", re.ASCII | re.IGNORECASE)
_LIMITS = (99, 99, 99999, 9999)


@functools.total_ordering
@dataclass(frozen=True)
class Build:
    """An Exchange build; ``revision`` is None when only the CU level is known (OWA paths)."""

    major: int
    minor: int
    build: int
    revision: int | None = None

    @property
    def cu_only(self) -> bool:
        return self.revision is None

    @property
    def line(self) -> tuple[int, int, int]:
        """The CU line: an SU never changes the first three numbers (Exchange 2013 and later)."""
        return self.major, self.minor, self.build

    def _key(self) -> tuple[int, int, int, int]:
        return self.major, self.minor, self.build, -1 if self.revision is None else self.revision

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Build):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        head = f"{self.major}.{self.minor}.{self.build}"
        return head if self.revision is None else f"{head}.{self.revision}"

    @property
    def long(self) -> str:
        """Exchange's zero-padded spelling, ``15.02.0792.010``."""
        head = f"{self.major}.{self.minor:02d}.{self.build:04d}"
        return head if self.revision is None else f"{head}.{self.revision:03d}"


@functools.lru_cache(maxsize=4096)
def parse_build(text: str) -> Build:
    """``15.2.792.10``, ``15.02.0792.010``, ``Version 15.2 (Build 792.10)`` or ``15.1.2176`` -> Build.

    Anything else raises UsageError with one readable line. Cached: a host's build facts repeat one
    value in every log header (2,000 rows of a 2 GB scan, read by the check, the hosts' builds and
    the report: ~10 us each parsed again)."""
    if not isinstance(text, str):
        raise UsageError(f"not an Exchange build number: {text!r}")
    cleaned = " ".join(text.split())
    match = _DOTTED.match(cleaned) or _ADMIN.match(cleaned)
    if match is None:
        shown = cleaned if len(cleaned) <= 60 else cleaned[:57] + "..."
        raise UsageError(
            f"not an Exchange build number: {shown!r} "
            "(expected e.g. 15.2.792.10, 15.02.0792.010, 'Version 15.2 (Build 792.10)' or 15.1.2176)"
        )
    parts = [int(g) if g is not None else None for g in match.groups()]
    for value, limit in zip(parts, _LIMITS, strict=True):
        if value is not None and value > limit:
            raise UsageError(f"not an Exchange build number: {cleaned!r} (part {value} is out of range)")
    major, minor, build, revision = parts
    assert major is not None and minor is not None and build is not None
    return Build(major, minor, build, revision)


@dataclass(frozen=True)
class BuildRow:
    """One released build (RTM/CU/SP/SU/HU/RU) from the bundled ``builds.csv``."""

    product: str
    name: str
    build: Build
    kind: str
    cu_line: str
    update: str
    release_date: str
    verified: bool
    cumulative: bool

    @property
    def is_line_base(self) -> bool:
        return self.kind in ("RTM", "CU", "SP")


@dataclass(frozen=True)
class CveRow:
    """One (CVE, product, CU line) fact from the bundled ``cves.csv``."""

    cve: str
    name: str
    cvss: str
    product: str
    cu_line: str
    cu_base_build: Build
    fixed_in: Build | None
    fix_update: str
    status: str
    verified: bool
    notes: str


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("exhunt").joinpath("data", "builds", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def build_rows() -> tuple[BuildRow, ...]:
    rows = [
        BuildRow(r["product"], r["name"], parse_build(r["build"]), r["kind"], r["cu_line"], r["update"],
                 r["release_date"], r["verified"] == "yes", r["cumulative"] != "no")
        for r in _read("builds.csv")
    ]
    return tuple(sorted(rows, key=lambda r: r.build))


@functools.cache
def cve_rows() -> tuple[CveRow, ...]:
    return tuple(
        CveRow(r["cve"], r["name"], r["cvss"], r["product"], r["cu_line"], parse_build(r["cu_base_build"]),
               parse_build(r["fixed_in_build"]) if r["fixed_in_build"] else None, r["fix_update"],
               r["status"], r["verified"] == "yes", r["notes"])
        for r in _read("cves.csv")
    )


@functools.cache
def cve_ids() -> tuple[str, ...]:
    """Every CVE in the table, in table order (ProxyLogon first)."""
    return tuple(dict.fromkeys(r.cve for r in cve_rows()))


@functools.cache
def cve_names() -> dict[str, str]:
    return {r.cve: r.name for r in cve_rows()}

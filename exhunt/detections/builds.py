"""Server build -> product, CU, update level and the status of every exploited CVE.

Follows the decision rule of the reference data (``exchange-builds/README.md``, bundled in
``exhunt/data/builds``): product from the first numbers, CU line from the third, then one row per
(CVE, product, CU line). What a build number cannot decide is reported as ``unknown`` with the reason,
never guessed: the SU level of a CU-only build (OWA paths, ``AdminDisplayVersion``), earlier SUs under a
non-cumulative ProxyLogon-only SU, Extended Protection for CVE-2024-21410, and builds not in the table.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.detections.buildtable import (
    Build,
    BuildRow,
    CveRow,
    build_rows,
    cve_ids,
    cve_names,
    cve_rows,
    parse_build,
)
from exhunt.errors import UsageError
from exhunt.findings.model import CveStatus, HostBuild

if TYPE_CHECKING:  # only annotations: the fleet probe maps builds without loading DuckDB
    import duckdb

__all__ = ["Build", "BuildFact", "assess_build", "assess_host", "best_build_fact", "build_facts",
           "assess_file", "assess_file_all", "parse_build"]

HEAD_BYTES = 4096
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
SE_FIRST_BUILD = 2562  # 15.2.x with x >= 2562 is Exchange SE (HealthChecker uses the same cut-off)
ADMIN_RE = re.compile(r"^\s*version\b", re.IGNORECASE)
EXSETUP_HINT = "read ExSetup.exe's file version (Get-Command ExSetup.exe | % {$_.FileVersionInfo})"
OUT_2010 = "Exchange 2010 is out of support (since 2020-10-13): MSRC did not assess it"
EP_NOTE = "the build cannot decide: vulnerable unless Extended Protection is enabled"


def product_of(build: Build) -> str | None:
    if build.major == 14:
        return "Exchange 2010"
    if build.major == 15:
        if build.minor == 2:
            return "Exchange SE" if build.build >= SE_FIRST_BUILD else "Exchange 2019"
        return {0: "Exchange 2013", 1: "Exchange 2016"}.get(build.minor)
    return None


@dataclass(frozen=True)
class _Line:
    """Where a build sits: its CU line's base row, or why none matches."""

    product: str | None
    base: BuildRow | None = None
    exact: BuildRow | None = None  # the released build equal to this one, if any
    older: bool = False  # below every CU line of the product: out-of-support CU, no fix
    nearest: BuildRow | None = None  # for builds between or above known lines


def _locate(build: Build) -> _Line:
    product = product_of(build)
    rows = [r for r in build_rows() if r.product == product]
    if product is None or not rows:
        return _Line(product)
    exact = next((r for r in rows if build.revision is not None and r.build == build), None)
    bases = [r for r in rows if r.is_line_base]
    if product == "Exchange 2010":  # RUs change the third number: SP3 is one line
        base = bases[0] if build.minor == 3 else None
        return _Line(product, base, exact, older=base is None)
    base = next((r for r in bases if r.build.line == build.line), None)
    if base is not None:
        return _Line(product, base, exact)
    cus = [r for r in bases if r.kind != "SP"]  # 2013 SP1 has its own rows; older CUs are not listed
    if build.line < min(r.build.line for r in cus):
        return _Line(product, older=True)
    nearest = min(bases, key=lambda r: (abs(r.build.build - build.build), r.build))
    return _Line(product, nearest=nearest)


def _row_name(product: str, cu_line: str, build: Build | None) -> str | None:
    if build is None:
        return None
    row = next((r for r in build_rows() if r.product == product and r.build == build), None)
    return row.name if row else f"{product} {cu_line} {build}"


def _nearest(line: _Line) -> str:
    near = line.nearest
    return f"; nearest known line {near.product} {near.cu_line} ({near.build})" if near else ""


def _status(cve: str, row: CveRow | None, build: Build, line: _Line, cu_only_reason: str) -> CveStatus:
    name = cve_names().get(cve, "")

    def out(status: str, note: str | None = None, fixed_in: Build | None = None) -> CveStatus:
        update = _row_name(row.product, row.cu_line, fixed_in) if row else None
        return CveStatus(cve, name, status, str(fixed_in) if fixed_in else None, update, note)

    if line.product is None:
        return out("unknown", "not an Exchange 2010 to SE build number")
    if line.older:
        product_rows = [r for r in cve_rows() if r.cve == cve and r.product == line.product]
        if not product_rows and line.product == "Exchange 2010":
            return out("unknown", OUT_2010)
        if not product_rows or all(r.status == "not_affected" for r in product_rows):
            return out("fixed", f"not affected: MSRC does not list {line.product} for this CVE")
        return out("vulnerable", "CU older than every line in the table (out of support): no fix, upgrade")
    if line.base is None:
        return out("unknown", "build not in the table (preview, private or newer build)")
    if row is None:
        if line.product == "Exchange 2010":
            return out("unknown", OUT_2010)
        return out("fixed", f"not affected: MSRC does not list {line.product} for this CVE")
    fixed_in, status = row.fixed_in, row.status
    if status == "fixed_in_cu":
        return out("fixed", None, fixed_in)
    if status == "not_affected":
        return out("fixed", "not affected: MSRC lists this CVE only for other versions")
    if status == "no_fix":
        return out("vulnerable", "no update for this CU line: upgrade to a later CU and its latest SU")
    if status == "config_required":
        return out("unknown", EP_NOTE)
    if status == "fixed_in_cu_if_EP_enabled":
        return out("fixed", "fixed while Extended Protection stays enabled (setup's default since this CU)",
                   fixed_in)
    assumed = " (assumed: MSRC did not assess this version)" if status == "not_listed_by_msrc" else ""
    if fixed_in is None:
        return out("vulnerable", f"no fixed build known{assumed}")
    if build.revision is None or cu_only_reason:
        return out("unknown", f"vulnerable unless {row.fix_update} ({fixed_in}) or later is installed: "
                   f"{cu_only_reason or 'the CU-level build does not show the SU'}{assumed}", fixed_in)
    if build < fixed_in:
        return out("vulnerable", assumed.strip(" ()") or None, fixed_in)
    special = _special_su_at_or_below(build, line)
    if special is not None and fixed_in < special.build and row.fix_update != special.update:
        return out("unknown", f"{special.update} on this CU is a ProxyLogon-only SU and not cumulative: "
                   f"{row.fix_update} ({fixed_in}) may be missing; check installed KBs (HealthChecker)",
                   fixed_in)
    return out("fixed", assumed.strip(" ()") or None, fixed_in)


def _special_su_at_or_below(build: Build, line: _Line) -> BuildRow | None:
    assert line.base is not None
    specials = [r for r in build_rows() if r.product == line.product and r.cu_line == line.base.cu_line
                and not r.cumulative and r.build <= build]
    return max(specials, key=lambda r: r.build, default=None)


def _update_label(build: Build, line: _Line, cu_only_reason: str) -> str | None:
    if line.base is None:
        return None
    if cu_only_reason:
        return f"unknown ({cu_only_reason})"
    if build.revision is None:
        return "unknown (CU-level build)"
    if line.exact is not None:
        return line.exact.update or "no SU (base build of the CU)"
    below = [r for r in build_rows() if r.product == line.product and r.cu_line == line.base.cu_line
             and r.build <= build]
    after = max(below, key=lambda r: r.build).update if below else ""
    return f"unknown revision {build.revision}" + (f" (after {after})" if after else "")


def _install(build: Build, line: _Line, statuses: tuple[CveStatus, ...], cu_only: bool) -> str | None:
    """The single most useful action for this server."""
    if line.product is None:
        return None
    if line.product == "Exchange 2010":
        return "Exchange 2010 is out of support since 2020-10-13: migrate to Exchange Server SE"
    if line.base is None and not line.older:
        return f"Unknown build {build}: confirm it, {EXSETUP_HINT}{_nearest(line)}"
    open_ = [s for s in statuses if s.status in ("vulnerable", "unknown") and s.note != EP_NOTE]
    unfixed = sorted(s.cve for s in open_ if s.status == "vulnerable" and s.fixed_in is None)
    fixes = [parse_build(s.fixed_in) for s in open_ if s.fixed_in]
    if line.older or unfixed:
        bases = [r for r in build_rows() if r.product == line.product and r.is_line_base]
        newest = max(bases, key=lambda r: r.build)
        latest = max((r for r in build_rows() if r.product == line.product and r.cu_line == newest.cu_line),
                     key=lambda r: r.build)
        if not line.older and line.base is not None and line.base.cu_line == newest.cu_line:
            # on the product's last CU: no upgrade exists, whatever its SU (an update of the line may
            # still fix the other CVEs)
            meanwhile = (f"; meanwhile install {_row_name(line.product, newest.cu_line, max(fixes))} "
                         f"({max(fixes)}) or later" if fixes else "")
            return (f"No update of {line.product} fixes {', '.join(unfixed)} ({newest.cu_line} is its last CU, "
                    f"{latest.name} the newest update in the table): migrate to Exchange Server SE{meanwhile}")
        return (f"Upgrade to {line.product} {newest.cu_line} ({newest.build}) and install its latest SU "
                f"(newest in the table: {latest.name}, {latest.build})")
    if fixes:
        target = max(fixes)
        name = _row_name(line.product, line.base.cu_line if line.base else "", target)
        if cu_only:
            return f"Make sure {name} ({target}) or later is installed: {EXSETUP_HINT}"
        return f"Install {name} ({target}) or later"
    if any(s.note == EP_NOTE for s in statuses):
        return "Make sure Extended Protection is enabled (CVE-2024-21410)"
    return None


def assess_build(build: str, source: str | None = None, confidence: str | None = None) -> HostBuild:
    """Assess one build string against the bundled tables (also used by the fleet probe).

    ``Version 15.2 (Build 986.5)`` is Get-ExchangeServer's AdminDisplayVersion, which shows the CU and
    never the SU: it is assessed as a CU-level build.
    """
    return dataclasses.replace(_assess(build), source=source, confidence=confidence)


@functools.lru_cache(maxsize=4096)
def _assess(build: str) -> HostBuild:
    """Cached: a fleet runs few distinct builds, and HostBuild is frozen."""
    parsed = parse_build(build)
    cu_only_reason = "AdminDisplayVersion shows the CU only, not the SU" if ADMIN_RE.match(build) else ""
    line = _locate(parsed)
    rows = {(r.cve, r.cu_line): r for r in cve_rows() if r.product == line.product}
    cu_line = line.base.cu_line if line.base else None
    statuses = tuple(_status(cve, rows.get((cve, cu_line or "")), parsed, line, cu_only_reason)
                     for cve in cve_ids())
    cu = "older CU (out of support, not in the table)" if line.older else cu_line
    if line.nearest is not None:
        cu = f"unknown{_nearest(line)}".replace("unknown; ", "unknown: ")
    product = line.product
    if product == "Exchange 2010" and parsed.minor != 3:
        product = "Exchange 2010 (before SP3, unsupported)"
    return HostBuild(
        build=str(parsed),
        product=product,
        cu=cu,
        update=_update_label(parsed, line, cu_only_reason),
        cves=statuses,
        install=_install(parsed, line, statuses, parsed.cu_only or bool(cu_only_reason)),
    )


@dataclass(frozen=True)
class BuildFact:
    """One build value seen for a host, normalized, with where it was first seen."""

    build: Build
    value: str
    source: str
    confidence: str
    path: str
    line: int | None
    count: int


def build_facts(con: duckdb.DuckDBPyConnection, host: str) -> list[BuildFact]:
    """Every parsable build fact of a host, best first.

    Best = highest confidence, then the highest CU line (a server's build only goes up, so older logs
    show older builds; a CU-only value of a newer CU beats a full build of an older one, which the
    server no longer runs), then a full build over a CU-only one, then the highest revision, then
    the most often seen.
    """
    rows = con.execute(
        "SELECT value, source, confidence, path, line FROM host_facts "
        "WHERE host = ? AND fact IN ('build', 'owa_build') ORDER BY path, line, value, source",
        [host],
    ).fetchall()
    groups: dict[tuple[Build, str], list[tuple]] = {}
    for value, source, confidence, path, line in rows:
        try:
            build = parse_build(value)
        except UsageError:  # a garbage fact is skipped, never fatal
            continue
        groups.setdefault((build, confidence or "low"), []).append((value, source, path, line))
    facts = [BuildFact(b, seen[0][0], seen[0][1], conf, seen[0][2], seen[0][3], len(seen))
             for (b, conf), seen in groups.items()]
    facts.sort(key=lambda f: (CONFIDENCE_ORDER.get(f.confidence, 3), _neg(f.build)[:3], f.build.cu_only,
                              _neg(f.build)[3:], -f.count))
    return facts


def _neg(build: Build) -> tuple[int, ...]:
    return tuple(-n for n in (build.major, build.minor, build.build, build.revision or -1))


def best_build_fact(con: duckdb.DuckDBPyConnection, host: str) -> tuple[str, str, str] | None:
    """The most trustworthy build seen for a host: (normalized build, source, confidence)."""
    facts = build_facts(con, host)
    if not facts:
        return None
    return str(facts[0].build), facts[0].source, facts[0].confidence


def assess_host(con: duckdb.DuckDBPyConnection, host: str) -> HostBuild | None:
    fact = best_build_fact(con, host)
    if fact is None:
        return None
    return assess_build(*fact)


def assess_file(path: Path) -> HostBuild:
    """The build stated by a HealthChecker/ExSetup CLIXML file: the most trustworthy, highest one
    when it names several (``assess_file_all`` gives each)."""
    return assess_file_all(path)[0]


def assess_file_all(path: Path) -> list[HostBuild]:
    """Each build a HealthChecker/ExSetup CLIXML file names (``exhunt build FILE``), the most
    trustworthy and highest first: an organisation's Get-ExchangeServer export names every server's,
    and one older server is what matters (keeping the highest alone called such a file safe)."""
    from exhunt.artifacts.clixml import CliXml, read_builds_file

    try:
        with path.open("rb") as stream:
            if not CliXml.claims(path.name.lower(), stream.read(HEAD_BYTES)):
                raise UsageError(f"{path}: not a HealthChecker/ExSetup CLIXML file "
                                 "(expected ExSetup FileVersion or Get-ExchangeServer AdminDisplayVersion)")
            stream.seek(0)
            found: list[tuple[str, int | None, str]] = []
            problems: list[str] = []
            read_builds_file(stream, lambda _f, value, line, conf: found.append((value, line, conf)),
                        lambda message, _line, _offset: problems.append(message))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not found:
        raise UsageError(f"{path}: {problems[0] if problems else 'no Exchange build found'}")
    found.sort(key=lambda f: (CONFIDENCE_ORDER.get(f[2], 3), _neg(parse_build(f[0]))))
    seen: set[str] = set()
    assessed = []
    for value, line, confidence in found:
        key = str(parse_build(value))
        if key in seen:
            continue
        seen.add(key)
        assessed.append(assess_build(value, f"{path.name}:{line}" if line else path.name, confidence))
    return assessed

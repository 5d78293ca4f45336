"""Triage reads the ``owa_build`` fact from OWA resource lines without storing them
(``IisDialect.line_facts``): the same facts, on the same lines, as the full index's parse."""

from __future__ import annotations

from pathlib import Path

from exhunt.api import ScanOptions, scan
from exhunt.events.store import connect

FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
          "cs(Referer) sc-status sc-substatus sc-win32-status time-taken")


def line(n: int, stem: str, status: str = "200", ip: str = "10.0.0.7") -> str:
    return (f"2021-03-03 01:{n // 60 % 60:02d}:{n % 60:02d} 10.0.0.5 GET {stem} - 443 - {ip} "
            f"Mozilla/5.0+(Windows+NT+10.0) - {status} 0 0 15")


def write_log(root: Path) -> Path:
    lines = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
             "#Date: 2021-03-03 00:00:00", f"#Fields: {FIELDS}"]
    for n in range(3000):  # well above the fast path's minimum segment size
        if n == 10:
            lines.append(line(n, "/owa/auth/15.1.2375.7/themes/resources/logo.png", "404"))  # no fact: 4xx
        elif n == 20:
            lines.append(line(n, "/OWA/auth/15.1.2375.7/scripts/premium/owa.js", "-"))  # no status: a fact
        elif n == 30:
            lines.append(line(n, "/ecp/15.1.2375.17/themes/default/logo.png", "x1"))
        elif n == 40:
            lines.append(line(n, "/owa/auth/15.1.2375.7/scripts/x.js"))  # later line of a value seen
        elif n == 50:
            lines.append(line(n, "/owa/auth/15.1.x/scripts/x.js"))  # not a build
        elif n % 7 == 0:
            lines.append(line(n, f"/owa/auth/15.1.2176.{n % 3}/themes/resources/favicon.ico"))
        else:
            lines.append(line(n, "/owa/"))
    path = root / "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    path.parent.mkdir(parents=True)
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def facts_and_rows(case: Path) -> tuple[list[tuple[str, int]], int]:
    con = connect(case / "store")
    try:
        facts = con.execute("SELECT value, line FROM host_facts WHERE fact = 'owa_build' ORDER BY line").fetchall()
        rows = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    assert rows is not None
    return facts, rows[0]


def test_triage_reads_the_build_facts_of_lines_it_does_not_store(tmp_path: Path) -> None:
    write_log(tmp_path / "evidence")
    cases = {}
    for index in ("triage", "full"):
        scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / index, quiet=True, progress=False, index=index,
                                                  host="EXCH01", jobs=1))
        cases[index] = facts_and_rows(tmp_path / index)
    (triage_facts, triage_rows), (full_facts, full_rows) = cases["triage"], cases["full"]
    assert full_facts == [("15.1.2176.0", 5), ("15.1.2176.1", 12), ("15.1.2176.2", 19), ("15.1.2375.7", 25),
                          ("15.1.2375.17", 35)]
    assert triage_facts == full_facts
    assert full_rows == 3000 and triage_rows < 100, "triage stored the OWA resource lines"

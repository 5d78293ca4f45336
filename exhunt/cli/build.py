"""``exhunt build VERSION_OR_FILE [--json]``: is this build vulnerable to an exploited CVE, what to install.

Exit status: 0 nothing vulnerable, 1 vulnerable to at least one exploited CVE, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from exhunt.errors import ExitCode

STATUS_STYLE = {"vulnerable": "bold red", "fixed": "green", "unknown": "yellow"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help="Exchange build -> product, CU, update, exploited CVEs",
                              description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("value", metavar="VERSION_OR_FILE",
                   help="15.2.792.10, 15.02.0792.010, 'Version 15.2 (Build 792.10)', 15.1.2176 (CU only) "
                        "or a HealthChecker/ExSetup CLIXML file")
    p.add_argument("--json", action="store_true", help="print the assessment as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exhunt.detections.builds import assess_build, assess_file_all

    path = Path(args.value)
    builds = assess_file_all(path) if path.is_file() else [assess_build(args.value, "command line")]
    if args.json:  # one build: its object; a file naming several (an organisation's export): a list
        import orjson

        value = [dataclasses.asdict(b) for b in builds] if len(builds) > 1 else dataclasses.asdict(builds[0])
        sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for n, host_build in enumerate(builds):
            if len(builds) > 1:
                print(f"{'' if n == 0 else chr(10)}Build {n + 1} of the {len(builds)} the file names:")
            _print(host_build)
    vulnerable = any(c.status == "vulnerable" for b in builds for c in b.cves)
    return int(ExitCode.FINDINGS if vulnerable else ExitCode.CLEAN)


def _print(hb: object) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from exhunt.findings.model import HostBuild

    assert isinstance(hb, HostBuild)
    console = Console(highlight=False)
    for label, value in (("Build", hb.build), ("Product", hb.product), ("CU", hb.cu), ("Update", hb.update),
                         ("Seen in", hb.source)):
        console.print(f"[bold]{label:8}[/] {escape(value or 'unknown')}")
    table = Table(show_lines=False)
    for column in ("CVE", "name", "status", "fixed in", "note"):
        table.add_column(column, overflow="fold")
    for c in hb.cves:
        style = STATUS_STYLE.get(c.status, "")
        table.add_row(c.cve, c.name, f"[{style}]{c.status}[/]", escape(c.update or c.fixed_in or "-"),
                      escape(c.note or ""))
    console.print(table)
    counts = {s: sum(1 for c in hb.cves if c.status == s) for s in ("vulnerable", "unknown", "fixed")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    install = hb.install or "nothing needed for the exploited CVEs in the table"
    console.print(f"[bold]Install:[/] {escape(install)}")
